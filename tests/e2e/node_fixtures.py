"""Fixtures of the single-node cluster: the node, the webhook image, servers its pods reach,
and the chart installed with that image (imported by conftest.py).

The registry, notary server and lookaside store listen on the node's bridge address, not on
127.0.0.1: the webhook runs in a pod now, and a pod's 127.0.0.1 is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import Cluster
from .node import GATEWAY, SingleNodeCluster
from .release import (
    BUILD_IMAGE,
    RELEASE,
    RELEASE_NS,
    install_chart,
    push_runnable,
    push_webhook_image,
)
from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner
from tests.fixtures.notary import NotaryServer, NotarySigner
from tests.fixtures.pki import TestCA
from tests.fixtures.registry import PushedImage, Registry


@dataclass(frozen=True)
class BuiltImage:
    path: Path
    size: int
    output: str  # what the build printed


@dataclass(frozen=True)
class Release:
    """The chart installed on the node with the image from the node's registry."""

    node: SingleNodeCluster
    image: PushedImage
    install_seconds: float


@pytest.fixture(scope="session")
def webhook_image() -> BuiltImage:
    """``make image``'s archive (cached: a warm build only hashes the sources)."""
    proc = subprocess.run(
        [sys.executable, str(BUILD_IMAGE), "--python", sys.executable],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{BUILD_IMAGE} failed:\n{proc.stderr[-6000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    fields = dict(word.split("=", 1) for word in last.split())
    return BuiltImage(Path(fields["image"]), int(fields["size"]), proc.stdout)


@pytest.fixture(scope="session")
def node() -> Iterator[SingleNodeCluster]:
    with SingleNodeCluster() as cluster:
        print(f"\nsingle node started in {cluster.startup_seconds:.1f} s", file=sys.stderr)
        yield cluster


@pytest.fixture(scope="session")
def node_registry(
    node: SingleNodeCluster, test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("node-registry"), test_ca, address=GATEWAY)
    registry.start()
    node.trust_registry(registry.host, registry.ca_file)
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def node_notary(
    node: SingleNodeCluster, test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotaryServer]:
    server = NotaryServer(tmp_path_factory.mktemp("node-notary"), test_ca, address=GATEWAY)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_lookaside(
    node: SingleNodeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LookasideStore]:
    store = LookasideStore(
        tmp_path_factory.mktemp("node-lookaside"),
        tmp_path_factory.mktemp("node-lookaside-logs"),
        address=GATEWAY,
    ).start()
    yield store
    store.stop()


_repos = iter(range(1, 100_000))


class RunnableImages:
    """Runnable images pushed to the node's registry, each test in its own repositories."""

    def __init__(self, registry: Registry, test_name: str) -> None:
        self.registry = registry
        self.prefix = test_name.split("[")[0].removeprefix("test_")[:30].replace("_", "-")

    def __call__(self, tag: str = "v1", *, repo: str | None = None) -> PushedImage:
        repo = repo or f"node/{self.prefix}-{next(_repos)}/app"
        return push_runnable(self.registry, repo, tag, f"{repo}:{tag}")


@pytest.fixture
def runnable_images(node_registry: Registry, request: pytest.FixtureRequest) -> RunnableImages:
    return RunnableImages(node_registry, request.node.name)


@pytest.fixture
def node_notary_signer(
    node_notary: NotaryServer, tmp_path_factory: pytest.TempPathFactory
) -> NotarySigner:
    return NotarySigner(node_notary, tmp_path_factory.mktemp("node-notary-trust"))


@pytest.fixture
def node_simple_signer(
    gpg_home: GpgHome,
    node_lookaside: LookasideStore,
    node_registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> SimpleSigner:
    return SimpleSigner(
        gpg_home, node_lookaside, node_registry, tmp_path_factory.mktemp("node-simple-signer")
    )


@pytest.fixture(scope="session")
def portieris(
    node: SingleNodeCluster,
    node_registry: Registry,
    webhook_image: BuiltImage,
    test_ca_file: Path,
) -> Iterator[Release]:
    """``helm install`` of the chart, the image pulled by the kubelet from the registry."""
    image = push_webhook_image(node_registry, webhook_image.path)
    release = Release(node, image, install_chart(node, image, test_ca_file))
    print(f"\nchart installed, webhook Ready in {release.install_seconds:.1f} s", file=sys.stderr)
    yield release
    node.plane.helm("uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait", "--timeout", "2m")


_namespaces = iter(range(1, 100_000))


@pytest.fixture
def node_ns(portieris: Release, request: pytest.FixtureRequest) -> Cluster:
    """A fresh namespace on the node (with its default service account, so pods can run)."""
    plane = portieris.node.plane
    name = f"node-{next(_namespaces)}-{request.node.name.split('[')[0][5:25].replace('_', '-')}"
    name = name.rstrip("-")
    plane.kubectl("create", "namespace", name, check=True)
    deadline = time.monotonic() + 60
    while plane.kubectl("get", "serviceaccount", "default", "-n", name).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no default service account in {name} after 60 s")
        time.sleep(0.2)
    return Cluster(plane, name)


def pods_of(cluster: Cluster, selector: str) -> list[dict]:
    out = cluster.plane.kubectl(
        "get", "pods", "-n", cluster.namespace, "-l", selector, "-o", "json", check=True
    )
    return list(json.loads(out.stdout)["items"])
