"""End to end: the real kube-apiserver keeps calling the webhook while it closes idle connections."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SKIP_LABEL, Cluster, Webhook
from .controlplane import ControlPlane
from .test_cluster_admission import IMAGE, created, eventually, k8s_workload, set_policy
from tests.fixtures.pki import TestCA

pytestmark = pytest.mark.e2e

LABEL = "portieris-e2e/short-timeouts"


@pytest.fixture
def short_timeout_webhook(
    control_plane: ControlPlane,
    test_ca: TestCA,
    test_ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Webhook]:
    """A second webhook that drops connections idle for 1 s, for namespaces with LABEL."""
    workdir = tmp_path_factory.mktemp("short-timeout-webhook")
    test_ca.write(workdir)
    hook = Webhook(control_plane, test_ca, workdir, test_ca_file)
    hook.argv += ["--idle-timeout", "1", "--request-read-timeout", "2", "--handshake-timeout", "2"]
    hook.start()
    hook.register("portieris-short", namespace_selector={"matchLabels": {LABEL: "yes"}})
    yield hook
    control_plane.kubectl(
        "delete", "mutatingwebhookconfiguration", "portieris-short", "--ignore-not-found"
    )
    hook.stop()


def _metric(hook: Webhook, sample: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{hook.metrics_port}/metrics") as resp:
        for line in resp.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
    return 0.0


def test_api_server_calls_keep_working_across_idle_closes(
    cluster: Cluster, short_timeout_webhook: Webhook
) -> None:
    plane = cluster.plane
    plane.kubectl("label", "namespace", cluster.namespace, f"{SKIP_LABEL}=skip", check=True)
    plane.kubectl("label", "namespace", cluster.namespace, f"{LABEL}=yes", check=True)
    set_policy(cluster, ("registry.invalid/team/*", {}))
    assert eventually(lambda: created(cluster, k8s_workload("Pod", IMAGE, name="warm-up")))
    allowed_before = _metric(short_timeout_webhook, "portieris_pod_admission_decision_allow_count")
    for burst in range(3):
        for i in range(4):
            assert created(cluster, k8s_workload("Pod", IMAGE, name=f"p-{burst}-{i}"))
        time.sleep(
            2.5
        )  # longer than --idle-timeout: the webhook closes the API server's connection
    allowed = _metric(short_timeout_webhook, "portieris_pod_admission_decision_allow_count")
    assert allowed - allowed_before == 12
    idle_closed = 'portieris_connections_dropped_total{reason="idle"}'
    assert _metric(short_timeout_webhook, idle_closed) >= 3
