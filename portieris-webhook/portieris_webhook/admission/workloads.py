"""Where each workload kind keeps its pod spec, and which images it runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.errors import InvalidAdmissionReview


@dataclass(frozen=True)
class WorkloadKind:
    group: str
    kind: str
    versions: tuple[str, ...]
    pod_spec_path: tuple[str, ...]


WORKLOAD_KINDS: tuple[WorkloadKind, ...] = (
    WorkloadKind("", "Pod", ("v1",), ("spec",)),
    WorkloadKind("", "ReplicationController", ("v1",), ("spec", "template", "spec")),
    WorkloadKind("apps", "Deployment", ("v1",), ("spec", "template", "spec")),
    WorkloadKind("apps", "ReplicaSet", ("v1",), ("spec", "template", "spec")),
    WorkloadKind("apps", "StatefulSet", ("v1",), ("spec", "template", "spec")),
    WorkloadKind("apps", "DaemonSet", ("v1",), ("spec", "template", "spec")),
    WorkloadKind("batch", "Job", ("v1",), ("spec", "template", "spec")),
    WorkloadKind("batch", "CronJob", ("v1",), ("spec", "jobTemplate", "spec", "template", "spec")),
)
_BY_GROUP_KIND = {(w.group, w.kind): w for w in WORKLOAD_KINDS}

# Kinds whose children we admit without checks, if the owner really exists:
# the owner itself went through this webhook.
OWNER_KINDS = frozenset(
    {
        ("", "Pod"),
        ("", "ReplicationController"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
    }
)

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class ContainerImage:
    """One container's image and the JSON pointer of its `image` field."""

    field: str
    index: int
    name: str
    image: str
    pointer: str


@dataclass(frozen=True)
class PodSpec:
    pointer: str
    images: tuple[ContainerImage, ...]
    image_pull_secrets: tuple[str, ...]
    service_account: str | None


def workload_kind(group: str, version: str, kind: str) -> WorkloadKind:
    found = _BY_GROUP_KIND.get((group, kind))
    gvk = f"{group + '/' if group else ''}{version}, Kind={kind}"
    if found is None:
        raise InvalidAdmissionReview(
            f"{gvk} is not a workload portieris checks; supported kinds: "
            + ", ".join(w.kind for w in WORKLOAD_KINDS)
        )
    if version not in found.versions:
        raise InvalidAdmissionReview(
            f"{gvk}: version {version} is not supported (use {', '.join(found.versions)})"
        )
    return found


def pod_spec(obj: Mapping[str, Any], workload: WorkloadKind) -> PodSpec:
    """Find the pod spec of `obj` and every container image in it."""
    node: Any = obj
    for step in workload.pod_spec_path:
        node = node.get(step) if isinstance(node, Mapping) else None
        if node is None:
            raise InvalidAdmissionReview(
                f"{workload.kind} has no {'.'.join(workload.pod_spec_path)}"
            )
    if not isinstance(node, Mapping):
        raise InvalidAdmissionReview(
            f"{workload.kind}: {'.'.join(workload.pod_spec_path)} is not an object"
        )
    pointer = "/" + "/".join(workload.pod_spec_path)
    images: list[ContainerImage] = []
    for field in CONTAINER_FIELDS:
        containers = node.get(field)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise InvalidAdmissionReview(f"{workload.kind}: {field} is not a list")
        for index, container in enumerate(containers):
            if not isinstance(container, Mapping):
                raise InvalidAdmissionReview(f"{workload.kind}: {field}[{index}] is not an object")
            image = container.get("image")
            if not isinstance(image, str):
                raise InvalidAdmissionReview(
                    f"{workload.kind}: {field}[{index}] ({container.get('name')}) has no image"
                )
            images.append(
                ContainerImage(
                    field,
                    index,
                    str(container.get("name") or ""),
                    image,
                    f"{pointer}/{field}/{index}/image",
                )
            )
    secrets = tuple(
        str(ref["name"])
        for ref in node.get("imagePullSecrets") or []
        if isinstance(ref, Mapping) and ref.get("name")
    )
    account = node.get("serviceAccountName") or node.get("serviceAccount")
    return PodSpec(pointer, tuple(images), secrets, str(account) if account else None)
