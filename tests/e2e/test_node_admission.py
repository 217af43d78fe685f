"""On a real node: the chart's pods serve admission, and users' pods run the pinned digests."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any

import pytest

from .conftest import Cluster
from .node_fixtures import Release, RunnableImages, pods_of
from .release import RELEASE_NS
from .test_cluster_admission import eventually, set_policy
from tests.fixtures.gpg import LookasideStore, SimpleSigner
from tests.fixtures.notary import NotaryServer, NotarySigner

pytestmark = pytest.mark.e2e

WEBHOOK_SELECTOR = "app.kubernetes.io/name=portieris"


def deployment(image: str, name: str = "demo", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": image}],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def trust_policy(notary: NotaryServer) -> dict[str, Any]:
    return {"trust": {"enabled": True, "trustServer": notary.url}}


def running_pods(cluster: Cluster, app: str, timeout: float = 120) -> list[dict[str, Any]]:
    """The app's pods once all are Ready (fails with their status otherwise)."""
    result = cluster.plane.kubectl(
        "wait", "--for=condition=Ready", "pod", "-l", f"app={app}", "-n", cluster.namespace,
        f"--timeout={int(timeout)}s",
    )  # fmt: skip
    pods = pods_of(cluster, f"app={app}")
    assert result.returncode == 0 and pods, json.dumps([p.get("status") for p in pods], indent=1)
    return pods


def webhook_pods(release: Release) -> list[dict[str, Any]]:
    out = release.node.plane.kubectl(
        "get", "pods", "-n", RELEASE_NS, "-l", WEBHOOK_SELECTOR, "-o", "json", check=True
    )
    return list(json.loads(out.stdout)["items"])


def deny_count(pod: dict[str, Any]) -> float:
    """The pod's own deny counter, read from its metrics port on the pod network."""
    url = f"http://{pod['status']['podIP']}:8080/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("portieris_pod_admission_decision_deny_count"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ----------------------------------------------------------------------------- the webhook's pods


def test_webhook_pods_run_the_pushed_image_ready_under_the_charts_security_context(
    portieris: Release,
) -> None:
    pods = webhook_pods(portieris)
    assert pods
    for pod in pods:
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] is True and status["restartCount"] == 0  # probes pass
        assert status["imageID"].endswith(portieris.image.digest)
        context = pod["spec"]["containers"][0]["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True


def test_webhook_container_writes_only_to_its_emptydir(portieris: Release) -> None:
    pod = webhook_pods(portieris)[0]["metadata"]["name"]
    script = "id -u; touch /tmp/ok && echo tmp-writable; touch /usr/x 2>/dev/null || echo root-ro"
    result = portieris.node.plane.kubectl(
        "exec", "-n", RELEASE_NS, pod, "--", "sh", "-c", script, check=True
    )
    assert result.stdout.split() == ["1000", "tmp-writable", "root-ro"]


def test_admission_goes_through_the_service_to_the_webhook_pods(
    portieris: Release, node_ns: Cluster, runnable_images: RunnableImages
) -> None:
    config = json.loads(
        node_ns.plane.kubectl(
            "get", "mutatingwebhookconfiguration", "-o", "json", check=True
        ).stdout
    )["items"]
    services = [w["clientConfig"].get("service") for c in config for w in c["webhooks"]]
    assert services and all(s and s["namespace"] == RELEASE_NS for s in services)
    image = runnable_images("v1")
    set_policy(node_ns, (f"{image.host}/*", {"simple": {"requirements": [{"type": "reject"}]}}))
    pods = webhook_pods(portieris)
    before = sum(deny_count(p) for p in pods)
    assert eventually(
        lambda: "requirement 1 is 'reject'" in node_ns.create(deployment(image.ref)).stderr
    )
    assert sum(deny_count(p) for p in pods) > before


# ----------------------------------------------------------------------------- users' workloads


def test_signed_deployment_runs_the_digest_the_webhook_pinned(
    node_ns: Cluster,
    runnable_images: RunnableImages,
    node_notary_signer: NotarySigner,
    node_notary: NotaryServer,
) -> None:
    image = runnable_images("v1")
    node_notary_signer.sign(image.name, image.tag, image.size, image.hex)
    set_policy(node_ns, (f"{image.host}/*", trust_policy(node_notary)))
    assert eventually(lambda: node_ns.create(deployment(image.ref)).returncode == 0)
    stored = node_ns.get("deployment", "demo")["spec"]["template"]["spec"]["containers"][0]
    assert stored["image"] == image.digest_ref
    for pod in running_pods(node_ns, "demo"):
        assert pod["status"]["containerStatuses"][0]["imageID"].endswith(image.digest)


def test_unsigned_deployment_is_refused_with_the_reason(
    node_ns: Cluster,
    runnable_images: RunnableImages,
    node_notary_signer: NotarySigner,
    node_notary: NotaryServer,
) -> None:
    signed = runnable_images("v1")
    node_notary_signer.sign(signed.name, signed.tag, signed.size, signed.hex)
    unsigned = runnable_images("v2", repo=signed.repo)
    set_policy(node_ns, (f"{signed.host}/*", trust_policy(node_notary)))
    assert eventually(lambda: node_ns.create(deployment(signed.ref, name="ok")).returncode == 0)
    result = node_ns.create(deployment(unsigned.ref))
    assert result.returncode != 0
    assert "denied the request" in result.stderr
    assert f"image {unsigned.ref}: trust:" in result.stderr


def test_tag_moved_after_signing_runs_the_signed_digest(
    node_ns: Cluster,
    runnable_images: RunnableImages,
    node_notary_signer: NotarySigner,
    node_notary: NotaryServer,
) -> None:
    signed = runnable_images("v1")
    node_notary_signer.sign(signed.name, signed.tag, signed.size, signed.hex)
    moved = runnable_images("v1-moved", repo=signed.repo)
    # The registry now serves another image under the signed tag.
    retagged = runnable_images.registry.tag(moved, "v1")
    assert retagged.digest != signed.digest
    set_policy(node_ns, (f"{signed.host}/*", trust_policy(node_notary)))
    assert eventually(lambda: node_ns.create(deployment(signed.ref)).returncode == 0)
    for pod in running_pods(node_ns, "demo"):
        image_id = pod["status"]["containerStatuses"][0]["imageID"]
        assert image_id.endswith(signed.digest) and not image_id.endswith(moved.digest)


def test_simple_signed_deployment_runs_verified_by_gpg_in_the_webhook_pod(
    node_ns: Cluster,
    runnable_images: RunnableImages,
    node_simple_signer: SimpleSigner,
    node_lookaside: LookasideStore,
    gpg_key,
) -> None:
    alice = gpg_key("node-alice")
    image = runnable_images("v1")
    node_simple_signer.sign(image, alice.fingerprint)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "alice"},
        "type": "Opaque",
        "data": {"key": base64.b64encode(alice.public_armored.encode()).decode()},
    }
    node_ns.apply(secret).check_returncode()
    requirement = {"type": "signedBy", "keySecret": "alice"}
    simple = {"requirements": [requirement], "storeURL": node_lookaside.url}
    set_policy(node_ns, (f"{image.host}/*", {"simple": simple}))
    began = time.monotonic()
    assert eventually(lambda: node_ns.create(deployment(image.ref)).returncode == 0), (
        f"not admitted after {time.monotonic() - began:.0f} s"
    )
    for pod in running_pods(node_ns, "demo"):
        assert pod["status"]["containerStatuses"][0]["imageID"].endswith(image.digest)
