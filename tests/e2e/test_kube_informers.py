"""Cluster mode's caches against the real API server: sync, follow, reconnect, owners."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import tracemalloc
import uuid
from collections.abc import Callable

import pytest
import yaml

from portieris_webhook.admission.owners import OwnerRef
from portieris_webhook.cluster.kube import ClusterState, cluster_state

from .conftest import CRD_DIR, SKIP_LABEL
from .controlplane import ControlPlane
from tests.builders import cluster_policy, image_policy

pytestmark = pytest.mark.e2e


async def until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def kubectl_apply(plane: ControlPlane, obj: dict) -> None:
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=True)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    name = f"informer-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name, check=True)
    # These tests look at the caches only; keep a session webhook (if any) out of the way.
    control_plane.kubectl("label", "namespace", name, f"{SKIP_LABEL}=skip", check=True)
    return name


def image_policy_names(state: ClusterState, namespace: str) -> list[str]:
    return [p.name for p in state.image_policies() if p.namespace == namespace]


async def test_caches_follow_policies_secrets_and_service_accounts(
    control_plane: ControlPlane, namespace: str
) -> None:
    async with cluster_state(control_plane.kubeconfig) as state:
        assert await until(state.is_ready)
        kubectl_apply(control_plane, image_policy("p", namespace, ("reg.io/*", {})))
        assert await until(lambda: image_policy_names(state, namespace) == ["p"])
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "keys", "namespace": namespace},
            "data": {"key": base64.b64encode(b"armoured").decode()},
        }
        await asyncio.to_thread(kubectl_apply, control_plane, secret)
        assert await until(lambda: state.secret(namespace, "keys") is not None)
        assert state.secret(namespace, "keys").data == {"key": b"armoured"}
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": namespace},
            "imagePullSecrets": [{"name": "pull"}],
        }
        await asyncio.to_thread(kubectl_apply, control_plane, account)
        assert await until(lambda: state.service_account(namespace, "builder") is not None)
        assert state.service_account(namespace, "builder").image_pull_secrets == ("pull",)
        await asyncio.to_thread(
            control_plane.kubectl, "delete", "imagepolicy", "p", "-n", namespace, check=True
        )
        assert await until(lambda: image_policy_names(state, namespace) == [])
        await asyncio.to_thread(
            control_plane.kubectl, "delete", "secret", "keys", "-n", namespace, check=True
        )
        assert await until(lambda: state.secret(namespace, "keys") is None)


async def test_watch_ended_by_the_server_is_resumed_without_missing_events(
    control_plane: ControlPlane, namespace: str
) -> None:
    async with cluster_state(control_plane.kubeconfig, watch_seconds=1) as state:
        assert await until(state.is_ready)
        informer = next(i for i in state.informers if i.resource.kind == "ClusterImagePolicy")
        assert await until(lambda: informer.watches >= 3)
        name = f"cip-{namespace}"
        await asyncio.to_thread(kubectl_apply, control_plane, cluster_policy(name, ("x/*", {})))
        try:
            assert await until(lambda: name in [p.name for p in state.cluster_image_policies()])
            assert informer.relists == 1
        finally:
            await asyncio.to_thread(control_plane.kubectl, "delete", "clusterimagepolicy", name)


async def test_not_ready_until_every_cache_has_listed() -> None:
    with ControlPlane(extra_apiserver_args=["--enable-aggregator-routing=true"]) as plane:
        async with cluster_state(plane.kubeconfig) as state:
            # No CRDs yet: policies cannot be listed, so the webhook must not claim readiness.
            assert not await until(state.is_ready, timeout=2.0)
            for crd in sorted(CRD_DIR.glob("*.yaml")):
                await asyncio.to_thread(plane.kubectl, "apply", "-f", str(crd), check=True)
            assert await until(state.is_ready, timeout=60.0)


async def test_owners_are_looked_up_by_uid_with_their_template_images(
    control_plane: ControlPlane, namespace: str
) -> None:
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "rs"}},
            "template": {
                "metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "c", "image": "x/y"}]},
            },
        },
    }
    await asyncio.to_thread(kubectl_apply, control_plane, replicaset)
    out = await asyncio.to_thread(
        control_plane.kubectl,
        "get",
        "rs",
        "rs",
        "-n",
        namespace,
        "-o",
        "jsonpath={.metadata.uid}",
        check=True,
    )
    uid = out.stdout.strip()
    async with cluster_state(control_plane.kubeconfig) as state:
        assert isinstance(state, ClusterState)
        assert await state.owner_images(
            namespace, OwnerRef("apps/v1", "ReplicaSet", "rs", uid)
        ) == {"x/y"}
        assert None is await state.owner_images(
            namespace, OwnerRef("apps/v1", "ReplicaSet", "rs", str(uuid.uuid4()))
        )
        assert None is await state.owner_images(
            namespace, OwnerRef("apps/v1", "ReplicaSet", "gone", uid)
        )
        assert None is await state.owner_images(
            "default", OwnerRef("apps/v1", "ReplicaSet", "rs", uid)
        )


def deep_policy(name: str, namespace: str, levels: int = 3000) -> str:
    """An ImagePolicy (JSON text) whose unknown field `spec.nested` nests `levels` deep: the
    CRD keeps unknown fields, so the API server stores and serves it back."""
    policy = image_policy(name, namespace, ("lab/*", {}))
    policy["spec"]["nested"] = "PLACEHOLDER"
    return json.dumps(policy).replace('"PLACEHOLDER"', '{"a":' * levels + "1" + "}" * levels)


async def other_namespace(control_plane: ControlPlane) -> str:
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(control_plane.kubectl, "create", "namespace", name, check=True)
    await asyncio.to_thread(
        control_plane.kubectl, "label", "namespace", name, f"{SKIP_LABEL}=skip", check=True
    )
    return name


async def test_a_deeply_nested_policy_of_one_tenant_never_stops_later_events(
    control_plane: ControlPlane, namespace: str
) -> None:
    """One namespace owner stores a 3,000-level ImagePolicy: listed or watched, it is kept as
    an invalid policy of that namespace only, and every later event still takes effect."""
    tenant = await other_namespace(control_plane)
    listed = deep_policy("deep-listed", tenant)
    await asyncio.to_thread(control_plane.kubectl, "create", "-f", "-", input=listed, check=True)
    kubectl_apply(control_plane, image_policy("allow", namespace, ("lab/app:unsigned", {})))
    async with cluster_state(control_plane.kubeconfig) as state:
        assert await until(state.is_ready)
        assert image_policy_names(state, namespace) == ["allow"]
        invalid = {(r.namespace, r.name): r.error for r in state.invalid_policies()}
        assert "nested deeper than 100 levels" in invalid[(tenant, "deep-listed")]

        watched = deep_policy("deep-watched", tenant)
        await asyncio.to_thread(
            control_plane.kubectl, "create", "-f", "-", input=watched, check=True
        )
        assert await until(
            lambda: (
                (tenant, "deep-watched")
                in {(r.namespace, r.name) for r in state.invalid_policies()}
            )
        )
        await asyncio.to_thread(
            control_plane.kubectl, "delete", "imagepolicy", "allow", "-n", namespace, check=True
        )
        assert await until(lambda: image_policy_names(state, namespace) == [])
        kubectl_apply(control_plane, image_policy("later", namespace, ("lab/*", {})))
        assert await until(lambda: image_policy_names(state, namespace) == ["later"])
        assert state.unusable["ImagePolicy"] >= 2
        assert state.not_ready() is None
        # Deleting the deep policy forgets it: its namespace is governed normally again.
        await asyncio.to_thread(
            control_plane.kubectl, "delete", "imagepolicy", "--all", "-n", tenant, check=True
        )
        assert await until(lambda: not any(r.namespace == tenant for r in state.invalid_policies()))


def owner_replicasets(namespace: str, count: int, start: int, images: int) -> dict:
    """`count` zero-replica ReplicaSets whose templates each name `images` long images."""
    items = []
    for number in range(start, start + count):
        name = f"rs-{number}"
        containers = [
            {"name": f"c{i}", "image": f"registry.example/team/{'x' * 150}/app{number}-{i}:v1"}
            for i in range(images)
        ]
        items.append(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": containers},
                    },
                },
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


async def test_the_owner_cache_stays_bounded_over_rounds_of_new_owners(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Every owner found is kept a while, but never more than the cache's bound: memory
    stays flat however many new owners pods name."""
    bound, per_round, rounds = 40, 80, 3
    for number in range(rounds):
        document = owner_replicasets(namespace, per_round, number * per_round, images=20)
        await asyncio.to_thread(
            control_plane.kubectl, "create", "-f", "-", input=json.dumps(document), check=True
        )
    out = await asyncio.to_thread(
        control_plane.kubectl, "get", "rs", "-n", namespace, "-o", "json", check=True
    )
    uids = {
        item["metadata"]["name"]: item["metadata"]["uid"]
        for item in json.loads(out.stdout)["items"]
    }
    assert len(uids) == rounds * per_round
    async with cluster_state(control_plane.kubeconfig, owner_cache_max_entries=bound) as state:
        assert await until(state.is_ready)
        tracemalloc.start()
        try:
            memory = []
            for number in range(rounds):
                for index in range(number * per_round, (number + 1) * per_round):
                    name = f"rs-{index}"
                    owner = OwnerRef("apps/v1", "ReplicaSet", name, uids[name])
                    assert await state.owner_images(namespace, owner)
                gc.collect()
                memory.append(tracemalloc.get_traced_memory()[0])
                assert len(state.owners) == bound
        finally:
            tracemalloc.stop()
    # Each round adds 80 owners of ~4 KB of image names: unbounded, ~0.5 MB more a round.
    assert memory[-1] - memory[0] < 200_000, memory
