"""End-to-end fixtures: the real kube-apiserver, and the webhook in cluster mode registered with it."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .controlplane import REPO_ROOT, ControlPlane
from tests.fixtures.pki import TestCA
from tests.fixtures.procs import free_port

CRD_DIR = REPO_ROOT / "helm-charts" / "portieris" / "crds"
SKIP_LABEL = "securityenforcement.admission.cloud.ibm.com/namespace"
WORKLOAD_RULES = [
    {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "replicationcontrollers"]},
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
    },
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]},
]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    # Aggregator routing makes the API server call webhook services at their endpoints, never
    # at a cluster IP: with no endpoints (no kubelet here) a call fails locally instead of
    # leaving the machine.
    with ControlPlane(extra_apiserver_args=["--enable-aggregator-routing=true"]) as plane:
        for crd in sorted(CRD_DIR.glob("*.yaml")):
            plane.kubectl("apply", "-f", str(crd), check=True)
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/imagepolicies.portieris.cloud.ibm.com",
            "crd/clusterimagepolicies.portieris.cloud.ibm.com",
            check=True,
        )
        yield plane


def webhook_configuration(
    name: str,
    url: str,
    ca_pem: bytes,
    *,
    namespace_selector: dict[str, Any] | None = None,
    failure_policy: str = "Fail",
    timeout_seconds: int = 10,
) -> dict[str, Any]:
    selector = namespace_selector or {
        "matchExpressions": [{"key": SKIP_LABEL, "operator": "NotIn", "values": ["skip"]}]
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}.portieris.cloud.ibm.com",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {**rule, "operations": ["CREATE", "UPDATE"], "scope": "*"}
                    for rule in WORKLOAD_RULES
                ],
                "failurePolicy": failure_policy,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": timeout_seconds,
                "namespaceSelector": selector,
            }
        ],
    }


class Webhook:
    """The webhook process in cluster mode, registered with the API server."""

    def __init__(self, plane: ControlPlane, ca: TestCA, workdir: Path, ca_file: Path) -> None:
        self.plane, self.ca, self.workdir = plane, ca, workdir
        self.port, self.metrics_port = free_port(), free_port()
        self.cert, self.key = ca.write_leaf(workdir, "webhook")
        self.log = workdir / "webhook.log"
        self.argv = [
            sys.executable,
            "-m",
            "portieris_webhook.cli",
            "serve",
            "--kubeconfig",
            plane.kubeconfig,
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--ca-file",
            str(ca_file),
            "--verify-timeout",
            "8",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Webhook:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GNUPGHOME": str(self.workdir / "gnupg")},
        )
        handle.close()
        deadline = time.monotonic() + 60
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webhook exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/health/readiness", context=context, timeout=2
                ):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"webhook not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def register(self, name: str = "portieris", **kwargs: Any) -> None:
        config = webhook_configuration(name, f"{self.url}/admit", self.ca.cert_pem, **kwargs)
        self.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(config), check=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def webhook(
    control_plane: ControlPlane,
    test_ca: TestCA,
    test_ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Webhook]:
    workdir = tmp_path_factory.mktemp("webhook")
    test_ca.write(workdir)
    hook = Webhook(control_plane, test_ca, workdir, test_ca_file).start()
    hook.register()
    yield hook
    control_plane.kubectl(
        "delete", "mutatingwebhookconfiguration", "portieris", "--ignore-not-found"
    )
    hook.stop()


class Cluster:
    """kubectl helpers for one test: its own namespace, objects as dicts."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane, self.namespace = plane, namespace

    def apply(
        self, obj: dict[str, Any], *, namespace: bool = True
    ) -> subprocess.CompletedProcess[Any]:
        args = ["apply", "-f", "-"] + (["-n", self.namespace] if namespace else [])
        return self.plane.kubectl(*args, input=yaml.safe_dump(obj))

    def create(self, obj: dict[str, Any]) -> subprocess.CompletedProcess[Any]:
        return self.plane.kubectl(
            "create", "-n", self.namespace, "-f", "-", input=yaml.safe_dump(obj)
        )

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.plane.kubectl("get", kind, name, "-n", self.namespace, "-o", "json", check=True)
        return json.loads(out.stdout)


_namespaces = iter(range(1, 10_000))


@pytest.fixture
def cluster(
    control_plane: ControlPlane, webhook: Webhook, request: pytest.FixtureRequest
) -> Cluster:
    name = (
        f"e2e-{next(_namespaces)}-{request.node.name.split('[')[0][5:25].replace('_', '-')}".rstrip(
            "-"
        )
    )
    control_plane.kubectl("create", "namespace", name, check=True)
    return Cluster(control_plane, name)


# The single-node cluster's fixtures (tests/e2e/test_node_*.py).
from .node_fixtures import (  # noqa: E402,F401
    node,
    node_lookaside,
    node_notary,
    node_notary_signer,
    node_ns,
    node_registry,
    node_simple_signer,
    portieris,
    runnable_images,
    webhook_image,
)
