"""End to end: kubectl -> real kube-apiserver -> portieris-webhook (cluster mode) -> decision."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import SKIP_LABEL, Cluster, Webhook
from tests.builders import ACCEPT, REJECT, cluster_policy, image_policy, workload
from tests.builders import pod_spec as spec_of

pytestmark = pytest.mark.e2e

IMAGE = "registry.invalid/team/app:1.0"


def k8s_workload(kind: str, image: str, name: str = "demo", **kwargs: Any) -> dict[str, Any]:
    """A workload the API server accepts (selectors, restart policies filled in)."""
    spec = spec_of(image)
    if kind in ("Job", "CronJob"):
        spec["restartPolicy"] = "Never"
    obj = workload(kind, spec, name=name, **kwargs)
    obj["metadata"].pop("namespace")
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        obj["spec"]["selector"] = {"matchLabels": {"app": name}}
    return obj


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Policies reach the webhook through a watch: give it a moment."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def set_policy(cluster: Cluster, *rules: tuple[str, dict[str, Any]], name: str = "policy") -> None:
    cluster.apply(image_policy(name, cluster.namespace, *rules)).check_returncode()


def created(cluster: Cluster, obj: dict[str, Any]) -> bool:
    result = cluster.create(obj)
    if result.returncode == 0:
        cluster.plane.kubectl(
            "delete", obj["kind"], obj["metadata"]["name"], "-n", cluster.namespace, "--wait=false"
        )
    return result.returncode == 0


def test_pod_allowed_by_an_empty_policy(cluster: Cluster) -> None:
    set_policy(cluster, ("registry.invalid/team/*", {}))
    assert eventually(lambda: cluster.create(k8s_workload("Pod", IMAGE)).returncode == 0)
    assert cluster.get("pod", "demo")["spec"]["containers"][0]["image"] == IMAGE


def test_denied_pod_shows_the_reason_to_the_user(cluster: Cluster) -> None:
    set_policy(cluster, ("registry.invalid/*", REJECT), ("registry.invalid/ok/*", {}))
    assert eventually(lambda: created(cluster, k8s_workload("Pod", "registry.invalid/ok/a:1")))
    result = cluster.create(k8s_workload("Pod", IMAGE))
    assert result.returncode != 0
    assert "admission webhook" in result.stderr and "denied the request" in result.stderr
    assert f"image {IMAGE}: simple: simple signing requirement 1 is 'reject'" in result.stderr


@pytest.mark.parametrize(
    "kind",
    [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
    ],
)
def test_every_workload_kind_is_checked(cluster: Cluster, kind: str) -> None:
    set_policy(cluster, ("registry.invalid/team/*", ACCEPT), ("registry.invalid/bad/*", REJECT))
    assert eventually(lambda: created(cluster, k8s_workload(kind, IMAGE, name="good")))
    result = cluster.create(k8s_workload(kind, "registry.invalid/bad/x:1", name="bad"))
    assert result.returncode != 0 and "registry.invalid/bad/x:1" in result.stderr


def test_zero_replica_deployment_is_checked(cluster: Cluster) -> None:
    set_policy(cluster, ("*", REJECT), ("registry.invalid/ok/*", {}))
    assert eventually(lambda: created(cluster, k8s_workload("Pod", "registry.invalid/ok/a")))
    obj = k8s_workload("Deployment", IMAGE, replicas=0)
    assert cluster.create(obj).returncode != 0


def test_cluster_policies_apply_where_the_namespace_has_none(cluster: Cluster) -> None:
    prefix = f"registry.invalid/{cluster.namespace}"
    policy = cluster_policy(f"cip-{cluster.namespace}", (f"{prefix}/*", {}))
    cluster.apply(policy, namespace=False).check_returncode()
    try:
        assert eventually(lambda: created(cluster, k8s_workload("Pod", f"{prefix}/app:1")))
        # An ImagePolicy in the namespace replaces the cluster policies there.
        set_policy(cluster, ("registry.invalid/other/*", {}))
        assert eventually(lambda: not created(cluster, k8s_workload("Pod", f"{prefix}/app:1")))
        result = cluster.create(k8s_workload("Pod", f"{prefix}/app:1"))
        assert f"no ImagePolicy in namespace '{cluster.namespace}'" in result.stderr
    finally:
        cluster.plane.kubectl("delete", "clusterimagepolicy", policy["metadata"]["name"])


def test_policy_edit_takes_effect_without_restart(cluster: Cluster) -> None:
    set_policy(cluster, ("registry.invalid/team/*", REJECT))
    assert eventually(
        lambda: "requirement 1 is 'reject'" in cluster.create(k8s_workload("Pod", IMAGE)).stderr
    )
    set_policy(cluster, ("registry.invalid/team/*", {}))
    assert eventually(lambda: created(cluster, k8s_workload("Pod", IMAGE)))
    cluster.plane.kubectl("delete", "imagepolicy", "policy", "-n", cluster.namespace, check=True)
    assert eventually(
        lambda: "no ClusterImagePolicy matches" in cluster.create(k8s_workload("Pod", IMAGE)).stderr
    )


def test_namespace_with_the_skip_label_is_not_checked(cluster: Cluster) -> None:
    set_policy(cluster, ("*", REJECT))
    assert eventually(lambda: not created(cluster, k8s_workload("Pod", IMAGE)))
    cluster.plane.kubectl("label", "namespace", cluster.namespace, f"{SKIP_LABEL}=skip", check=True)
    assert eventually(lambda: created(cluster, k8s_workload("Pod", IMAGE)))


def test_fabricated_owner_reference_does_not_bypass_the_check(cluster: Cluster) -> None:
    set_policy(cluster, ("*", REJECT))
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000001",
    }
    result = cluster.create(k8s_workload("Pod", IMAGE, owners=[owner]))
    assert result.returncode != 0 and "requirement 1 is 'reject'" in result.stderr


def test_an_existing_replicaset_vouches_for_no_image_under_a_narrowed_policy(
    cluster: Cluster,
) -> None:
    set_policy(cluster, ("registry.invalid/team/*", {}))
    replicaset = k8s_workload("ReplicaSet", IMAGE, name="rs", replicas=0)
    assert eventually(lambda: cluster.create(replicaset).returncode == 0)
    uid = cluster.get("replicaset", "rs")["metadata"]["uid"]
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid}
    assert cluster.create(k8s_workload("Pod", IMAGE, name="child", owners=[owner])).returncode == 0
    # The policy is narrowed: the owner admitted before then vouches for nothing, and its
    # new pods are refused as the same pod without an owner is.
    set_policy(cluster, ("registry.invalid/*", REJECT))
    assert eventually(lambda: not created(cluster, k8s_workload("Pod", IMAGE, name="alone")))
    later = cluster.create(k8s_workload("Pod", IMAGE, name="later-child", owners=[owner]))
    assert later.returncode != 0 and IMAGE in later.stderr
    forged = k8s_workload("Pod", IMAGE, name="forged", owners=[{**owner, "uid": str(uuid.uuid4())}])
    assert cluster.create(forged).returncode != 0
    smuggled = k8s_workload("Pod", "registry.invalid/bad/x:1", name="smuggled", owners=[owner])
    result = cluster.create(smuggled)
    assert result.returncode != 0 and "registry.invalid/bad/x:1" in result.stderr


def test_malformed_policy_is_rejected_by_the_schema(cluster: Cluster) -> None:
    bad_type = image_policy("bad", cluster.namespace, ("*", {"trust": {"enabled": "yes please"}}))
    result = cluster.apply(bad_type)
    assert result.returncode != 0 and "enabled" in result.stderr
    bad_requirement = image_policy(
        "bad", cluster.namespace, ("*", {"simple": {"requirements": [{"type": "trustMe"}]}})
    )
    result = cluster.apply(bad_requirement)
    assert result.returncode != 0 and "trustMe" in result.stderr
    missing_name = image_policy("bad", cluster.namespace, ("*", {}))
    del missing_name["spec"]["repositories"][0]["name"]
    assert cluster.apply(missing_name).returncode != 0


def test_stopped_webhook_with_failure_policy_fail_refuses_creation(
    cluster: Cluster,
    webhook: Webhook,
    tmp_path,
) -> None:
    set_policy(cluster, ("*", {}))
    assert eventually(lambda: created(cluster, k8s_workload("Pod", IMAGE)))
    second = Webhook(cluster.plane, webhook.ca, tmp_path, tmp_path / "ca.crt")
    webhook.ca.write(tmp_path)
    second.start()
    name = f"dead-{cluster.namespace}"
    try:
        second.register(
            name,
            namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": cluster.namespace}},
        )
        assert eventually(lambda: created(cluster, k8s_workload("Pod", IMAGE)))
        second.stop()
        result = cluster.create(k8s_workload("Pod", IMAGE))
        assert result.returncode != 0 and "failed calling webhook" in result.stderr
    finally:
        second.stop()
        cluster.plane.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
