"""Builders for the Kubernetes objects and AdmissionReviews tests feed the webhook."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from portieris_webhook.admission.request import AdmissionRequest
from portieris_webhook.admission.review import parse_review
from portieris_webhook.cluster.state import ADDED, MemoryState
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.outcome import Decision

GROUP_OF = {
    "Pod": "",
    "ReplicationController": "",
    "Deployment": "apps",
    "ReplicaSet": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "Job": "batch",
    "CronJob": "batch",
}


def pod_spec(
    *images: str,
    init: tuple[str, ...] = (),
    ephemeral: tuple[str, ...] = (),
    volumes: tuple[str, ...] = (),
    pull_secrets: tuple[str, ...] = (),
    service_account: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    }
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": image} for i, image in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"e{i}", "image": image} for i, image in enumerate(ephemeral)
        ]
    if volumes:
        spec["volumes"] = [
            {"name": f"v{i}", "image": {"reference": image, "pullPolicy": "IfNotPresent"}}
            for i, image in enumerate(volumes)
        ]
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    if service_account:
        spec["serviceAccountName"] = service_account
    return spec


def workload(
    kind: str,
    spec: dict[str, Any],
    *,
    name: str = "demo",
    namespace: str = "default",
    replicas: int | None = None,
    owners: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A workload object of `kind` whose pod template is `spec`."""
    group = GROUP_OF[kind]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if owners:
        metadata["ownerReferences"] = owners
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    body: dict[str, Any]
    if kind == "Pod":
        body = spec
    elif kind == "CronJob":
        body = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        body = {"template": template}
        if replicas is not None:
            body["replicas"] = replicas
    return {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": metadata,
        "spec": body,
    }


def review(obj: dict[str, Any], *, uid: str = "uid-1", operation: str = "CREATE") -> dict[str, Any]:
    group = GROUP_OF.get(obj["kind"], obj["apiVersion"].rpartition("/")[0])
    version = obj["apiVersion"].rpartition("/")[2]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "namespace": obj["metadata"].get("namespace", "default"),
            "name": obj["metadata"].get("name", ""),
            "operation": operation,
            "object": obj,
        },
    }


def request_for(obj: dict[str, Any], **kwargs: Any) -> AdmissionRequest:
    return parse_review(review(obj, **kwargs))


def pod_request(
    images: Iterable[str], namespace: str = "default", pull_secrets: Sequence[str] = ()
) -> AdmissionRequest:
    """The CREATE request of pod "p" running `images`, under a fresh uid."""
    spec = pod_spec(*images, pull_secrets=tuple(pull_secrets))
    return request_for(workload("Pod", spec, name="p", namespace=namespace), uid=str(uuid.uuid4()))


async def decide(
    enforcer: Enforcer, *images: str, namespace: str = "default", pull_secrets: Sequence[str] = ()
) -> Decision:
    """The enforcer's decision on pod "p" running `images`."""
    return await enforcer.decide(pod_request(images, namespace, pull_secrets))


def decode_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    patch = response.get("patch")
    return json.loads(base64.b64decode(patch)) if patch else []


def cluster_policy(name: str, *rules: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "portieris.cloud.ibm.com/v1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": {"repositories": [{"name": p, "policy": pol} for p, pol in rules]},
    }


def secret(
    name: str,
    data: Mapping[str, str | bytes],
    namespace: str | None = "default",
    kind: str = "Opaque",
) -> dict[str, Any]:
    """A Secret of type `kind` holding `data` (encoded here); no namespace when it is None."""
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    encoded = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": kind,
        "data": encoded,
    }


def key_secret(name: str, armored: str, namespace: str | None = "default") -> dict[str, Any]:
    """The secret a simple-signing `signedBy` requirement names: an armored public key."""
    return secret(name, {"key": armored}, namespace)


def pull_secret(
    name: str, host: str, username: str, password: str, namespace: str | None = "default"
) -> dict[str, Any]:
    """An image pull secret with one registry's credentials."""
    config = {"auths": {host: {"username": username, "password": password}}}
    return secret(
        name, {".dockerconfigjson": json.dumps(config)}, namespace, "kubernetes.io/dockerconfigjson"
    )


def image_policy(name: str, namespace: str, *rules: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    obj = cluster_policy(name, *rules)
    obj["kind"] = "ImagePolicy"
    obj["metadata"]["namespace"] = namespace
    return obj


class ManualClock:
    """A monotonic clock (`clock()` is the time in seconds) that the test moves by setting `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_state(*objects: Mapping[str, Any]) -> MemoryState:
    """A ready state holding `objects` (policies, secrets, service accounts, owners)."""
    state = MemoryState()
    for obj in objects:
        state.apply(ADDED, obj)
    state.mark_ready()
    return state


REJECT = {"simple": {"requirements": [{"type": "reject"}]}}
ACCEPT = {"simple": {"requirements": [{"type": "insecureAcceptAnything"}]}}
