"""End to end: image volumes (`spec.volumes[].image.reference`) through the real kube-apiserver.

The API server here is Kubernetes 1.35, where the ImageVolume feature is on by default, so
it stores pods with image volumes; the webhook must check and pin those images too.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from .conftest import Cluster
from .test_cluster_admission import created, eventually, k8s_workload, set_policy
from tests.builders import ACCEPT, REJECT

pytestmark = pytest.mark.e2e

OK_IMAGE = "registry.invalid/ok/app:1"


def with_image_volume(obj: dict[str, Any], reference: str, name: str = "data") -> dict[str, Any]:
    """`obj` with an image volume mounted into its first container."""
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    spec["volumes"] = [
        {"name": name, "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}
    ]
    spec["containers"][0]["volumeMounts"] = [{"name": name, "mountPath": "/data"}]
    return obj


def test_an_image_volume_the_policy_rejects_is_denied(cluster: Cluster) -> None:
    set_policy(cluster, ("registry.invalid/ok/*", ACCEPT), ("registry.invalid/bad/*", REJECT))
    assert eventually(lambda: created(cluster, k8s_workload("Pod", OK_IMAGE, name="plain")))
    pod = with_image_volume(k8s_workload("Pod", OK_IMAGE), "registry.invalid/bad/payload:1")
    result = cluster.create(pod)
    assert result.returncode != 0
    assert (
        "image registry.invalid/bad/payload:1: simple: simple signing requirement 1 is 'reject'"
        in result.stderr
    )


def test_a_signed_image_volume_is_stored_pinned_to_its_digest(
    cluster: Cluster, image_factory, simple_signer, gpg_key, lookaside_store
) -> None:
    alice = gpg_key("e2e-volume-alice")
    data = image_factory("v1")
    simple_signer.sign(data, alice.fingerprint)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "alice"},
            "type": "Opaque",
            "data": {"key": base64.b64encode(alice.public_armored.encode()).decode()},
        }
    ).check_returncode()
    signed = {
        "simple": {
            "requirements": [{"type": "signedBy", "keySecret": "alice"}],
            "storeURL": lookaside_store.url,
        }
    }
    set_policy(cluster, ("registry.invalid/ok/*", ACCEPT), (f"{data.host}/*", signed))
    pod = with_image_volume(k8s_workload("Pod", OK_IMAGE), data.ref)
    assert eventually(lambda: cluster.create(pod).returncode == 0)
    stored = cluster.get("pod", "demo")["spec"]
    assert stored["volumes"][0]["image"]["reference"] == f"{data.name}@{data.digest}"
    assert stored["containers"][0]["image"] == OK_IMAGE


def test_an_owner_vouches_for_no_volume_image_under_todays_policy(cluster: Cluster) -> None:
    set_policy(cluster, ("registry.invalid/ok/*", ACCEPT))
    replicaset = with_image_volume(
        k8s_workload("ReplicaSet", OK_IMAGE, name="rs", replicas=0), "registry.invalid/ok/data:1"
    )
    assert eventually(lambda: cluster.create(replicaset).returncode == 0)
    uid = cluster.get("replicaset", "rs")["metadata"]["uid"]
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid}
    child = with_image_volume(
        k8s_workload("Pod", OK_IMAGE, name="child", owners=[owner]), "registry.invalid/ok/data:1"
    )
    assert cluster.create(child).returncode == 0
    smuggled = with_image_volume(
        k8s_workload("Pod", OK_IMAGE, name="smuggled", owners=[owner]), "registry.invalid/x/evil:1"
    )
    result = cluster.create(smuggled)
    assert result.returncode != 0 and "registry.invalid/x/evil:1" in result.stderr
    # Narrowed: the owner's own template volume image is decided under the new policy too.
    set_policy(cluster, ("*", REJECT))
    assert eventually(lambda: not created(cluster, k8s_workload("Pod", OK_IMAGE, name="alone")))
    later = with_image_volume(
        k8s_workload("Pod", OK_IMAGE, name="later", owners=[owner]), "registry.invalid/ok/data:1"
    )
    result = cluster.create(later)
    assert result.returncode != 0 and "registry.invalid/ok/data:1" in result.stderr
