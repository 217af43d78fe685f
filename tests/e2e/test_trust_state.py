"""The trust state ConfigMap against the real kube-apiserver: RBAC from the rendered chart, replicas
sharing it (as the chart's service account), concurrent writers merging, helm upgrades keeping it."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from portieris_webhook import cli
from portieris_webhook.cluster.kube import KubeApi, connect
from portieris_webhook.cluster.trust_state_backends import TRUST_STATE_KEY, ConfigMapBackend
from portieris_webhook.errors import TrustStateError
from portieris_webhook.trust.cache import CacheLimits, TrustCache
from portieris_webhook.trust.errors import RollbackError, TrustError
from portieris_webhook.trust.persisted import decode
from portieris_webhook.trust.state_store import TrustStateStore
from portieris_webhook.trust.updater import GunState, refresh

from .conftest import SKIP_LABEL, Webhook
from .controlplane import REPO_ROOT, ControlPlane
from .test_cluster_admission import eventually
from tests.builders import image_policy, pod_spec, review, workload
from tests.fixtures.notary import NotarySigner
from tests.fixtures.pki import TestCA
from tests.unit.trust.simulator import NOW, RepositorySimulator

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "helm-charts" / "portieris"
NAME = "portieris-trust-state"
ACCOUNT = "portieris"
SERVER = "https://notary.example.com"


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace holding the chart's service account, trust state ConfigMap, Role and binding."""
    name = f"trust-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name, check=True)
    control_plane.kubectl("label", "namespace", name, f"{SKIP_LABEL}=skip", check=True)
    out = control_plane.helm(
        "template", "portieris", str(CHART), "--namespace", name, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    wanted = [
        d for d in docs if d["kind"] in {"ServiceAccount", "ConfigMap", "Role", "RoleBinding"}
    ]
    control_plane.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump_all(wanted), check=True
    )  # fmt: skip
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def can_i(plane: ControlPlane, namespace: str, verb: str, what: str, in_ns: str | None = None) -> bool:  # fmt: skip
    result = plane.kubectl(
        "auth", "can-i", verb, what, "-n", in_ns or namespace,
        f"--as=system:serviceaccount:{namespace}:{ACCOUNT}",
    )  # fmt: skip
    return result.stdout.strip() == "yes"


def test_the_charts_rbac_allows_the_webhook_exactly_get_update_patch_of_its_config_map(
    control_plane: ControlPlane, namespace: str
) -> None:
    own = f"configmap/{NAME}"
    allowed = {
        verb: can_i(control_plane, namespace, verb, own) for verb in ("get", "update", "patch")
    }
    refused = {
        "delete own": can_i(control_plane, namespace, "delete", own),
        "create configmaps": can_i(control_plane, namespace, "create", "configmaps"),
        "list configmaps": can_i(control_plane, namespace, "list", "configmaps"),
        "watch configmaps": can_i(control_plane, namespace, "watch", "configmaps"),
        "get another": can_i(control_plane, namespace, "get", "configmap/other"),
        "update another": can_i(control_plane, namespace, "update", "configmap/other"),
        "same name elsewhere": can_i(control_plane, namespace, "update", own, in_ns="default"),
    }

    assert allowed == {"get": True, "update": True, "patch": True}
    assert not any(refused.values()), refused


class AsServiceAccount(KubeApi):
    """The admin credentials impersonating the chart's service account: what its RBAC allows."""

    user = ""

    def _headers(self) -> dict[str, str]:
        return {**super()._headers(), "Impersonate-User": self.user}


def service_account_api(plane: ControlPlane, namespace: str) -> KubeApi:
    admin = connect(plane.kubeconfig)
    # The admin kubeconfig authenticates with its client certificate (in the TLS context).
    api = AsServiceAccount(admin.server, admin.ssl_context, None, None)
    api.user = f"system:serviceaccount:{namespace}:{ACCOUNT}"
    return api


def simulated(gun: str) -> RepositorySimulator:
    sim = RepositorySimulator(gun)
    sim.delegate("targets/releases")
    sim.add_target("targets/releases", "v1", b"manifest of " + gun.encode())
    return sim


class Replica:
    """One webhook replica's trust cache and store, on the ConfigMap, as the service account."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.api = service_account_api(plane, namespace)
        self.store = TrustStateStore(ConfigMapBackend(self.api, namespace, NAME))
        self.cache = TrustCache(0.0, lambda: NOW, CacheLimits(failure_ttl=0))
        self.store.attach(self.cache)

    async def verify(self, files: dict[str, bytes], gun: str):
        async def fetch(role: str, max_bytes: int) -> bytes | None:
            return files.get(role)

        async def load(state: GunState, now: datetime.datetime):
            return await refresh(gun, state, fetch, now)

        return await self.cache.get(SERVER, gun, load, 5.0)


def stored(plane: ControlPlane, namespace: str):
    config_map = json.loads(
        plane.kubectl("get", "configmap", NAME, "-n", namespace, "-o", "json", check=True).stdout
    )
    return decode((config_map.get("data") or {}).get(TRUST_STATE_KEY))


async def test_replicas_share_trust_and_a_restarted_one_refuses_another_root_and_rollbacks(
    control_plane: ControlPlane, namespace: str
) -> None:
    gun = "registry.example.com/team/app"
    genuine = simulated(gun)
    old = genuine.publish()
    new = genuine.publish(bump=True)
    first, second = Replica(control_plane, namespace), Replica(control_plane, namespace)
    await asyncio.gather(first.store.sync(), second.store.sync())
    await first.verify(new, gun)
    await first.store.sync()

    await second.store.sync()
    with pytest.raises(TrustError, match="differs"):
        await second.verify(simulated(gun).publish(), gun)
    with pytest.raises(RollbackError):
        await second.verify(old, gun)
    assert await second.verify(new, gun)
    record = stored(control_plane, namespace).records[(SERVER, gun)]
    assert record.root == genuine.root_bytes and record.seen["timestamp"] == 2
    for replica in (first, second):
        await replica.api.close()


async def test_concurrent_writers_merge_every_repository_and_the_highest_versions(
    control_plane: ControlPlane, namespace: str
) -> None:
    replicas = [Replica(control_plane, namespace) for _ in range(3)]
    await asyncio.gather(*(r.store.sync() for r in replicas))
    shared = simulated("registry.example.com/shared/app")
    shared_files = [shared.publish(bump=True) for _ in range(3)]
    for index, replica in enumerate(replicas):
        for n in range(4):
            gun = f"registry.example.com/r{index}/app{n}"
            await replica.verify(simulated(gun).publish(), gun)
        # Each replica saw another version of the shared repository.
        await replica.verify(shared_files[index], shared.gun)

    for _ in range(2):
        await asyncio.gather(*(r.store.sync() for r in replicas))

    records = stored(control_plane, namespace).records
    assert len(records) == 3 * 4 + 1
    assert records[(SERVER, shared.gun)].seen["timestamp"] == 4  # the highest of 2, 3, 4
    assert sum(r.store.writes for r in replicas) >= 3
    for replica in replicas:
        await replica.api.close()


async def test_a_reset_by_an_operator_reaches_running_replicas(
    control_plane: ControlPlane, namespace: str
) -> None:
    gun = "registry.example.com/team/recreated"
    replica = Replica(control_plane, namespace)
    await replica.store.sync()
    await replica.verify(simulated(gun).publish(), gun)
    await replica.store.sync()
    recreated = simulated(gun)

    argv = [
        "trust-state", "reset", "--kubeconfig", control_plane.kubeconfig,
        "--trust-state-configmap", f"{namespace}/{NAME}", "--server", SERVER, "--gun", gun,
    ]  # fmt: skip
    assert await asyncio.to_thread(cli.main, argv) == 0
    await replica.store.sync()

    assert await replica.verify(recreated.publish(), gun)
    await replica.store.sync()
    assert stored(control_plane, namespace).records[(SERVER, gun)].root == recreated.root_bytes
    await replica.api.close()


def test_helm_upgrade_keeps_what_the_webhook_wrote(control_plane: ControlPlane) -> None:
    release_ns = f"upgrade-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", release_ns, check=True)
    control_plane.kubectl("label", "namespace", release_ns, f"{SKIP_LABEL}=skip", check=True)
    install = ["portieris", str(CHART), "--namespace", release_ns, "--skip-crds"]
    control_plane.helm("install", *install, check=True)
    try:

        async def write() -> None:
            replica = Replica(control_plane, release_ns)
            await replica.store.sync()
            gun = "registry.example.com/kept/app"
            await replica.verify(simulated(gun).publish(), gun)
            await replica.store.sync()
            await replica.api.close()

        asyncio.run(write())
        before = stored(control_plane, release_ns)
        control_plane.helm("upgrade", *install, "--set", "logLevel=DEBUG", check=True)
        after = stored(control_plane, release_ns)
    finally:
        control_plane.helm("uninstall", "portieris", "--namespace", release_ns, "--wait")
        control_plane.kubectl("delete", "namespace", release_ns, "--wait=false")

    assert len(before.records) == 1 and after == before


def admit(hook: Webhook, image: str, namespace: str) -> dict[str, Any]:
    pod = workload("Pod", pod_spec(image), namespace=namespace)
    body = json.dumps(review(pod)).encode()
    context = ssl.create_default_context(cafile=str(hook.workdir / "ca.crt"))
    request = urllib.request.Request(
        f"{hook.url}/admit", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        return dict(json.loads(answer.read())["response"])


def serve(plane: ControlPlane, ca: TestCA, ca_file: Path, workdir: Path, namespace: str) -> Webhook:
    ca.write(workdir)
    hook = Webhook(plane, ca, workdir, ca_file)
    hook.argv += [
        f"--trust-state-configmap={namespace}/{NAME}",
        "--trust-state-write-delay=0.1",
        "--trust-state-sync-interval=0.5",
        "--trust-refresh-interval=0",
    ]
    return hook.start()


def test_serve_processes_share_the_config_map_and_a_new_one_refuses_a_new_root(
    control_plane: ControlPlane,
    namespace: str,
    test_ca: TestCA,
    test_ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
    image_factory,
    notary_signer,
    notary_server,
) -> None:
    signed = image_factory("v1")
    notary_signer.sign(signed.name, signed.tag, signed.size, signed.hex)
    policy = image_policy(
        "trust",
        namespace,
        (f"{signed.host}/*", {"trust": {"enabled": True, "trustServer": notary_server.url}}),
    )
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy), check=True)
    first = serve(
        control_plane, test_ca, test_ca_file, tmp_path_factory.mktemp("hook-a"), namespace
    )
    try:
        assert eventually(lambda: admit(first, signed.ref, namespace)["allowed"])
        assert eventually(
            lambda: (notary_server.url, signed.name) in stored(control_plane, namespace).records
        )
    finally:
        first.stop()
    # The repository is created again with new keys under the same name.
    notary_signer.delete(signed.name)
    NotarySigner(notary_server, tmp_path_factory.mktemp("other-keys")).sign(
        signed.name, signed.tag, signed.size, signed.hex
    )

    second = serve(
        control_plane, test_ca, test_ca_file, tmp_path_factory.mktemp("hook-b"), namespace
    )
    try:
        refused = admit(second, signed.ref, namespace)
    finally:
        second.stop()

    assert not refused["allowed"]
    assert "is trusted and differs from it" in refused["status"]["message"]


async def test_a_missing_config_map_reads_as_empty_and_writes_wait_for_it(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("delete", "configmap", NAME, "-n", namespace, check=True)
    replica = Replica(control_plane, namespace)
    gun = "registry.example.com/team/app"

    await replica.store.sync()
    assert replica.store.is_loaded()
    await replica.verify(simulated(gun).publish(), gun)
    with pytest.raises(TrustStateError, match="does not exist"):
        await replica.store.sync()
    assert (SERVER, gun) in replica.store.pending  # kept for when the chart creates it again
    await replica.api.close()
