"""Every field of a pod spec that names an image is checked and pinned; malformed specs are 400s.

Kubernetes 1.35 names images in a pod spec in four places (k8s.io/api core/v1 PodSpec):
`containers[].image`, `initContainers[].image`, `ephemeralContainers[].image` and
`volumes[].image.reference` (image volumes, the ImageVolume feature). `volumes[].rbd.image`
names a Ceph block device, not something pulled from a registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from portieris_webhook.admission.owners import OwnerRef, template_images
from portieris_webhook.admission.workloads import pod_spec, workload_kind
from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject

from tests.builders import (
    ACCEPT,
    GROUP_OF,
    REJECT,
    cluster_policy,
    decode_patch,
    memory_state,
    request_for,
    workload,
)
from tests.builders import pod_spec as spec_of
from tests.unit.test_enforce import DIGEST_A, TRUST, decide, make_enforcer

PREFIX = {"Pod": "/spec", "CronJob": "/spec/jobTemplate/spec/template/spec"}


def spec_path(kind: str) -> str:
    return PREFIX.get(kind, "/spec/template/spec")


def template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside `obj`, whatever its kind."""
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec if obj["kind"] == "Pod" else spec["template"]["spec"]


# --- where images are found ---------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(GROUP_OF))
def test_image_volumes_are_images_of_every_workload_kind(kind: str) -> None:
    obj = workload(kind, spec_of("app:1", volumes=("data:1", "models:2")))
    spec = pod_spec(obj, workload_kind(GROUP_OF[kind], "v1", kind))
    prefix = spec_path(kind)
    assert [(i.image, i.pointer) for i in spec.images] == [
        ("app:1", f"{prefix}/containers/0/image"),
        ("data:1", f"{prefix}/volumes/0/image/reference"),
        ("models:2", f"{prefix}/volumes/1/image/reference"),
    ]


def test_volumes_of_other_types_name_no_image() -> None:
    obj = workload("Pod", spec_of("app:1"))
    obj["spec"]["volumes"] = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "ceph", "rbd": {"image": "not-a-container-image", "monitors": ["m"]}},
    ]
    spec = pod_spec(obj, workload_kind("", "v1", "Pod"))
    assert [i.image for i in spec.images] == ["app:1"]


@pytest.mark.parametrize(
    "image_source",
    [{}, {"reference": ""}, {"pullPolicy": "Always"}, {"reference": None}],
    ids=["empty", "empty-reference", "no-reference", "null-reference"],
)
def test_an_image_volume_without_a_reference_cannot_be_checked(
    image_source: dict[str, Any],
) -> None:
    obj = workload("Deployment", spec_of("app:1"))
    template(obj)["volumes"] = [{"name": "data", "image": image_source}]
    with pytest.raises(UncheckableObject, match=r"volumes\[0\] \(data\) .*no reference"):
        pod_spec(obj, workload_kind("apps", "v1", "Deployment"))


# --- decisions ------------------------------------------------------------------------------


async def test_an_image_volume_is_denied_by_its_policy() -> None:
    state = memory_state(cluster_policy("c", ("good/*", ACCEPT), ("bad/*", REJECT)))
    obj = workload("Pod", spec_of("good/app:1", volumes=("bad/payload:1",)))
    response = await decide(make_enforcer(state), obj)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "image bad/payload:1: simple: simple signing requirement 1 is 'reject'" in message


async def test_an_image_volume_no_policy_matches_is_denied() -> None:
    state = memory_state(cluster_policy("c", ("good/*", ACCEPT)))
    obj = workload("Pod", spec_of("good/app:1", volumes=("elsewhere/payload:1",)))
    response = await decide(make_enforcer(state), obj)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "image elsewhere/payload:1: no ClusterImagePolicy matches" in message


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "CronJob"])
async def test_an_image_volume_is_pinned_to_the_verified_digest(kind: str) -> None:
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    obj = workload(kind, spec_of("reg.io/app:1", volumes=("reg.io/data:1",)))
    response = await decide(enforcer, obj)
    assert response["allowed"] is True
    assert decode_patch(response) == [
        {
            "op": "replace",
            "path": f"{spec_path(kind)}/containers/0/image",
            "value": f"reg.io/app@{DIGEST_A}",
        },
        {
            "op": "replace",
            "path": f"{spec_path(kind)}/volumes/0/image/reference",
            "value": f"reg.io/data@{DIGEST_A}",
        },
    ]


async def test_an_image_in_a_container_and_a_volume_is_verified_once_and_pinned_twice():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    obj = workload("Pod", spec_of("reg.io/app:1", volumes=("reg.io/app:1",)))
    response = await decide(enforcer, obj)
    assert enforcer.verifiers["trust"].seen == ["reg.io/app:1"]
    assert [op["path"] for op in decode_patch(response)] == [
        "/spec/containers/0/image",
        "/spec/volumes/0/image/reference",
    ]


async def test_an_image_volume_without_a_reference_is_denied_saying_why() -> None:
    state = memory_state(cluster_policy("c", ("*", ACCEPT)))
    obj = workload("Pod", spec_of("app:1"))
    obj["spec"]["volumes"] = [{"name": "data", "image": {"pullPolicy": "Always"}}]
    response = await decide(make_enforcer(state), obj)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "spec.volumes[0] (data) is an image volume with no reference" in message


# --- owners vouch only for images in their own template, volumes included ----------------

OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-rs"}


def replicaset(spec: dict[str, Any]) -> dict[str, Any]:
    obj = workload("ReplicaSet", spec, name="web-1")
    obj["metadata"]["uid"] = "uid-rs"
    return obj


def test_an_owners_template_images_include_its_image_volumes() -> None:
    owner = replicaset(spec_of("x/app", volumes=("x/data",)))
    images = template_images(owner, OwnerRef("apps/v1", "ReplicaSet", "web-1", "uid-rs"))
    assert images == frozenset({"x/app", "x/data"})


@pytest.mark.parametrize(
    "child",
    [
        spec_of("x/app", volumes=("x/data",)),
        spec_of("x/app"),
        spec_of("x/data", volumes=("x/app",)),
    ],
    ids=["same-volume", "no-volume", "images-in-other-places"],
)
async def test_a_child_whose_volume_images_are_in_its_owners_template_is_admitted_unpatched(
    child: dict[str, Any],
) -> None:
    """Its images are still decided under today's policy; only the mutation is skipped."""
    state = memory_state(
        cluster_policy("c", ("*", TRUST)), replicaset(spec_of("x/app", volumes=("x/data",)))
    )
    enforcer = make_enforcer(state)
    response = await decide(enforcer, workload("Pod", child, owners=[OWNER]))
    assert response["allowed"] is True and "patch" not in response
    runs = [c["image"] for c in child["containers"]]
    runs += [v["image"]["reference"] for v in child.get("volumes", [])]
    assert sorted(enforcer.verifiers["trust"].seen) == sorted(runs)


@pytest.mark.parametrize(
    "owner_spec",
    [spec_of("x/app"), spec_of("x/app", volumes=("x/data",))],
    ids=["owner-without-volumes", "owner-with-other-volume"],
)
async def test_a_child_with_a_volume_image_its_owner_does_not_name_is_checked(
    owner_spec: dict[str, Any],
) -> None:
    state = memory_state(cluster_policy("c", ("*", REJECT)), replicaset(owner_spec))
    child = workload("Pod", spec_of("x/app", volumes=("evil/payload:1",)), owners=[OWNER])
    response = await decide(make_enforcer(state), child)
    assert response["allowed"] is False
    assert "image evil/payload:1" in response["status"]["message"]


# --- malformed pod specs: the AdmissionReview is refused (HTTP 400), not denied ---------------

Mutation = Callable[[dict[str, Any]], None]


def _set(field: str, value: Any) -> Mutation:
    return lambda spec: spec.__setitem__(field, value)


def _in_first(field: str, key: str, value: Any) -> Mutation:
    return lambda spec: spec[field][0].__setitem__(key, value)


MALFORMED: dict[str, tuple[Mutation, str]] = {
    "pull-secrets-object": (
        _set("imagePullSecrets", {"name": "s"}),
        "imagePullSecrets is not a list",
    ),
    "pull-secrets-number": (_set("imagePullSecrets", 5), "imagePullSecrets is not a list"),
    "pull-secrets-string": (_set("imagePullSecrets", "s"), "imagePullSecrets is not a list"),
    "pull-secret-entry-string": (
        _set("imagePullSecrets", ["s"]),
        r"imagePullSecrets\[0\] is not an object",
    ),
    "pull-secret-name-number": (
        _set("imagePullSecrets", [{"name": 5}]),
        r"imagePullSecrets\[0\].name is not a string",
    ),
    "service-account-number": (_set("serviceAccountName", 5), "serviceAccountName is not a string"),
    "deprecated-service-account-list": (
        _set("serviceAccount", ["sa"]),
        "serviceAccount is not a string",
    ),
    "volumes-object": (_set("volumes", {"name": "v"}), "volumes is not a list"),
    "volume-string": (_set("volumes", ["v"]), r"volumes\[0\] is not an object"),
    "volume-image-string": (
        _set("volumes", [{"name": "v", "image": "reg.io/x:1"}]),
        r"volumes\[0\].image is not an object",
    ),
    "volume-reference-number": (
        _set("volumes", [{"name": "v", "image": {"reference": 5}}]),
        r"volumes\[0\].image.reference is not a string",
    ),
    "volume-name-list": (
        _set("volumes", [{"name": ["v"], "image": {"reference": "x:1"}}]),
        r"volumes\[0\].name is not a string",
    ),
    "containers-object": (_set("containers", {"image": "x"}), "containers is not a list"),
    "container-string": (_set("containers", ["x"]), r"containers\[0\] is not an object"),
    "container-image-number": (
        _in_first("containers", "image", 5),
        r"containers\[0\].image is not a string",
    ),
    "container-image-list": (
        _in_first("containers", "image", ["x:1"]),
        r"containers\[0\].image is not a string",
    ),
    "container-name-object": (
        _in_first("containers", "name", {"n": 1}),
        r"containers\[0\].name is not a string",
    ),
}


@pytest.mark.parametrize(("mutate", "message"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_pod_spec_is_an_invalid_admission_review(
    mutate: Mutation, message: str
) -> None:
    state = memory_state(cluster_policy("c", ("*", ACCEPT)))
    obj = workload("Pod", spec_of("x/app:1"))
    mutate(obj["spec"])
    with pytest.raises(InvalidAdmissionReview, match=message):
        await make_enforcer(state).decide(request_for(obj))


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": ["x"]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}},
    ],
    ids=["spec-not-an-object", "no-template"],
)
async def test_a_workload_without_a_pod_spec_is_an_invalid_admission_review(
    obj: dict[str, Any],
) -> None:
    state = memory_state(cluster_policy("c", ("*", ACCEPT)))
    with pytest.raises(InvalidAdmissionReview):
        await make_enforcer(state).decide(request_for(obj))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}},
            "not a workload portieris checks",
        ),
        (workload("Pod", {"containers": [{"name": "c"}]}), r"containers\[0\] \(c\) has no image"),
    ],
    ids=["unsupported-kind", "container-without-image"],
)
async def test_a_well_formed_object_portieris_cannot_check_is_denied(
    obj: dict[str, Any], message: str
) -> None:
    state = memory_state(cluster_policy("c", ("*", ACCEPT)))
    decision = await make_enforcer(state).decide(request_for(obj))
    assert decision.response.allowed is False
    assert decision.reason_kinds == ("unsupported-object",)
    assert re.search(message, decision.response.message)
