"""Failure behaviour as users meet it on a real node: webhook pods gone, or killed under load."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .conftest import Cluster
from .node_fixtures import Release, RunnableImages
from .release import RELEASE, RELEASE_NS
from .test_cluster_admission import eventually, set_policy
from .test_node_admission import WEBHOOK_SELECTOR, deployment, webhook_pods

pytestmark = pytest.mark.e2e


def scale(release: Release, replicas: int) -> None:
    plane = release.node.plane
    plane.kubectl(
        "scale", "deployment", RELEASE, "-n", RELEASE_NS, f"--replicas={replicas}", check=True
    )
    if replicas:
        plane.kubectl(
            "rollout", "status", "deployment", RELEASE, "-n", RELEASE_NS, "--timeout=180s",
            check=True,
        )  # fmt: skip
    else:
        plane.kubectl(
            "wait", "--for=delete", "pod", "-l", WEBHOOK_SELECTOR, "-n", RELEASE_NS,
            "--timeout=120s", check=True,
        )  # fmt: skip


@pytest.fixture
def restore_one_replica(portieris: Release) -> Iterator[Release]:
    yield portieris
    scale(portieris, 1)


def pod(image: str, name: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def test_without_webhook_pods_workloads_are_refused_then_admitted_when_they_are_back(
    restore_one_replica: Release, node_ns: Cluster, runnable_images: RunnableImages
) -> None:
    image = runnable_images("v1")
    set_policy(node_ns, (f"{image.host}/*", {}))
    assert eventually(lambda: node_ns.create(deployment(image.ref, name="before")).returncode == 0)
    scale(restore_one_replica, 0)
    refused = node_ns.create(deployment(image.ref))
    assert refused.returncode != 0 and "failed calling webhook" in refused.stderr
    # The webhook's own namespace is never sent to it, so its pods can always come back.
    own = node_ns.plane.kubectl(
        "create",
        "-n",
        RELEASE_NS,
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump(pod(image.ref)),
    )
    assert own.returncode == 0, own.stderr
    scale(restore_one_replica, 1)
    assert eventually(lambda: node_ns.create(deployment(image.ref)).returncode == 0, timeout=60)


def test_killing_one_of_three_replicas_under_load_loses_no_admission(
    restore_one_replica: Release, node_ns: Cluster, runnable_images: RunnableImages
) -> None:
    image = runnable_images("v1")
    set_policy(node_ns, (f"{image.host}/*", {}))
    assert eventually(lambda: node_ns.create(deployment(image.ref, name="before")).returncode == 0)
    scale(restore_one_replica, 3)
    plane = node_ns.plane
    outcomes: list[str] = []
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = pod(image.ref, f"load-{n}")
            path = f"/api/v1/namespaces/{node_ns.namespace}/pods?dryRun=All"
            try:
                plane.request("POST", path, body)
                outcomes.append("admitted")
            except urllib.error.HTTPError as exc:
                outcomes.append(f"{exc.code}: {json.loads(exc.read()).get('message')}")

    workers = [threading.Thread(target=load) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(3)
        victim = webhook_pods(restore_one_replica)[0]["metadata"]["name"]
        plane.kubectl("delete", "pod", victim, "-n", RELEASE_NS, "--wait=true", check=True)
        plane.kubectl(
            "rollout", "status", "deployment", RELEASE, "-n", RELEASE_NS, "--timeout=180s",
            check=True,
        )  # fmt: skip
        time.sleep(3)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    lost = [o for o in outcomes if o != "admitted"]
    assert outcomes and not lost, f"{len(lost)} of {len(outcomes)} lost: {lost[:5]}"
