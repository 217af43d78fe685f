"""Where each workload kind keeps its pod spec, and every image it names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject


@dataclass(frozen=True)
class WorkloadKind:
    group: str
    kind: str
    versions: tuple[str, ...]
    pod_spec_path: tuple[str, ...]

    @property
    def pod_spec_pointer(self) -> str:
        """The JSON pointer of the pod spec (`/spec/template/spec`)."""
        return "/" + "/".join(self.pod_spec_path)


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

OWNER_KINDS = frozenset(_BY_GROUP_KIND)
"""(group, kind) of the owners whose children are not mutated a second time, if the owner
really exists and the child runs only its template's images: every workload kind, since
each went through this webhook and had its template pinned then."""

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
"""Pod spec fields holding containers, each naming its image in `image`.

With `volumes[].image.reference` (image volumes) these are every field of a pod spec
that names something the kubelet pulls (k8s.io/api core/v1 PodSpec, Kubernetes 1.35).
"""


class PodImage(NamedTuple):
    """One place in a pod spec that names an image, and the JSON pointer of that string."""

    image: str
    pointer: str


@dataclass(frozen=True)
class PodSpec:
    images: tuple[PodImage, ...]
    image_pull_secrets: tuple[str, ...]
    service_account: str | None


def container_image_pointer(spec_pointer: str, field: str, index: int) -> str:
    """The JSON pointer of the image of container `index` of `field` in the pod spec."""
    return f"{spec_pointer}/{field}/{index}/image"


def volume_image_pointer(spec_pointer: str, index: int) -> str:
    """The JSON pointer of the image reference of volume `index` in the pod spec."""
    return f"{spec_pointer}/volumes/{index}/image/reference"


def service_account(name: str | None, deprecated: str | None) -> str | None:
    """The pod's service account: `serviceAccountName`, else the deprecated `serviceAccount`;
    None when neither names one."""
    return name or deprecated or None


def workload_kind(group: str, version: str, kind: str) -> WorkloadKind:
    found = _BY_GROUP_KIND.get((group, kind))
    if found is not None and version in found.versions:
        return found
    gvk = f"{group + '/' if group else ''}{version}, Kind={kind}"
    if found is None:
        raise UncheckableObject(
            f"{gvk} is not a workload portieris checks; supported kinds: "
            + ", ".join(w.kind for w in WORKLOAD_KINDS)
        )
    raise UncheckableObject(
        f"{gvk}: version {version} is not supported (use {', '.join(found.versions)})"
    )


def pod_spec(obj: Mapping[str, Any], workload: WorkloadKind) -> PodSpec:
    """Find the pod spec of `obj` and every image it names.

    A value of the wrong JSON type (a list, object or string in the Kubernetes schema
    that is something else here) means the document did not come from an API server:
    InvalidAdmissionReview. A well-typed spec that does not name an image where one is
    needed: UncheckableObject.
    """
    path = ".".join(workload.pod_spec_path)
    node: Any = obj
    for step in workload.pod_spec_path:
        node = node.get(step) if isinstance(node, Mapping) else None
        if node is None:
            raise InvalidAdmissionReview(f"{workload.kind} has no {path}")
    reader = _SpecReader(f"{workload.kind}: {path}", workload.pod_spec_pointer)
    spec = reader.mapping(node, "")
    images = [image for field in CONTAINER_FIELDS for image in reader.container_images(spec, field)]
    images.extend(reader.volume_images(spec))
    account = service_account(
        reader.string(spec, "serviceAccountName"), reader.string(spec, "serviceAccount")
    )
    return PodSpec(tuple(images), reader.pull_secrets(spec), account)


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # A decoded document holds dicts: the abstract-class check only for anything else.
    return type(value) is dict or isinstance(value, Mapping)


@dataclass(frozen=True)
class _SpecReader:
    """Reads a pod spec, checking the JSON type of every field it uses.

    `where` starts every message (`Deployment: spec.template.spec`), `pointer` every
    JSON pointer (`/spec/template/spec`).
    """

    where: str
    pointer: str

    def _invalid(self, field: str, what: str) -> InvalidAdmissionReview:
        return InvalidAdmissionReview(f"{self.where}{'.' if field else ''}{field} is not {what}")

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not _is_mapping(value):
            raise self._invalid(field, "an object")
        return value

    def objects(self, data: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
        """The objects of the list `data[field]`; none when it is absent or null."""
        value = data.get(field)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._invalid(field, "a list")
        for index, item in enumerate(value):
            if not _is_mapping(item):
                raise self._invalid(f"{field}[{index}]", "an object")
        return value

    def string(self, data: Mapping[str, Any], key: str, field: str = "") -> str:
        """`data[key]`, which must be a string; "" when absent or null."""
        value = data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._invalid(f"{field}.{key}" if field else key, "a string")
        return value

    def container_images(self, spec: Mapping[str, Any], field: str) -> list[PodImage]:
        found = []
        for index, container in enumerate(self.objects(spec, field)):
            where = f"{field}[{index}]"
            name = self.string(container, "name", where)
            image = self.string(container, "image", where)
            if not image:
                raise UncheckableObject(f"{self.where}.{where} ({name}) has no image")
            found.append(PodImage(image, container_image_pointer(self.pointer, field, index)))
        return found

    def volume_images(self, spec: Mapping[str, Any]) -> list[PodImage]:
        found = []
        for index, volume in enumerate(self.objects(spec, "volumes")):
            where = f"volumes[{index}]"
            name = self.string(volume, "name", where)
            if volume.get("image") is None:
                continue
            source = self.mapping(volume["image"], f"{where}.image")
            reference = self.string(source, "reference", f"{where}.image")
            if not reference:
                # A pod template may leave it for a tool to fill in later, but what the
                # pods would pull cannot be checked before it is named.
                raise UncheckableObject(
                    f"{self.where}.{where} ({name}) is an image volume with no reference"
                )
            found.append(PodImage(reference, volume_image_pointer(self.pointer, index)))
        return found

    def pull_secrets(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        names = (
            self.string(ref, "name", f"imagePullSecrets[{index}]")
            for index, ref in enumerate(self.objects(spec, "imagePullSecrets"))
        )
        return tuple(name for name in names if name)
