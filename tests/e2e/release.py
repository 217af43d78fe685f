"""The chart and the images the single node runs: helpers shared by the node's fixtures
and `make cluster-demo` (scripts/demo.py --cluster)."""

from __future__ import annotations

import time
from pathlib import Path

from .controlplane import REPO_ROOT
from .images import busybox_image_dir
from .node import SingleNodeCluster
from tests.fixtures.registry import PushedImage, Registry, sha256_hex

CHART = REPO_ROOT / "helm-charts" / "portieris"
BUILD_IMAGE = REPO_ROOT / "scripts" / "build-image.py"
RELEASE = "portieris"
RELEASE_NS = "portieris"
WEBHOOK_REPO = "portieris/webhook"


def push_runnable(registry: Registry, repo: str, tag: str, seed: str) -> PushedImage:
    """Push a busybox image (``sleep 3600``) made from ``seed`` as ``repo:tag``."""
    image = busybox_image_dir(
        registry.images_dir / f"busybox-{sha256_hex(seed.encode())[:16]}", seed
    )
    digest_file = image.path.parent / f"{image.path.name}.digest"
    registry.skopeo(
        "copy", "--quiet", "--dest-cert-dir", str(registry.cert_dir),
        "--digestfile", str(digest_file), f"dir:{image.path}",
        f"docker://{registry.host}/{repo}:{tag}",
    )  # fmt: skip
    pushed = digest_file.read_text().strip()
    assert pushed == image.digest, f"skopeo pushed {pushed}, expected {image.digest}"
    return PushedImage(registry.host, repo, tag, pushed, image.size, image.manifest)


def push_webhook_image(registry: Registry, archive: Path) -> PushedImage:
    """Copy the image archive into ``registry`` as ``portieris/webhook:<version>``."""
    version = archive.name.removeprefix("portieris-webhook-").removesuffix(".oci.tar")
    digest_file = registry.workdir / "webhook.digest"
    registry.skopeo(
        "copy", "--quiet", "--dest-cert-dir", str(registry.cert_dir),
        "--digestfile", str(digest_file), f"oci-archive:{archive}",
        f"docker://{registry.host}/{WEBHOOK_REPO}:{version}",
    )  # fmt: skip
    return PushedImage(
        registry.host, WEBHOOK_REPO, version, digest_file.read_text().strip(), 0, b""
    )


def install_chart(node: SingleNodeCluster, image: PushedImage, ca_file: Path) -> float:
    """``helm install --wait`` of the chart with ``image``; returns the seconds it took."""
    began = time.monotonic()
    node.plane.helm(
        "install", RELEASE, str(CHART), "--namespace", RELEASE_NS, "--create-namespace",
        "--set", f"image.repository={image.name}", "--set", f"image.tag={image.tag}",
        "--set", "replicaCount=1",
        # No default ClusterImagePolicy: an image no policy names is refused, so nothing
        # runs unverified while the webhook has not yet seen a namespace's new ImagePolicy.
        "--set-json", "clusterPolicy.allowedRepositories=[]",
        # The registry, notary server and store of the tests use the test CA.
        "--set-file", f"TrustedCACert={ca_file}",
        "--wait", "--timeout", "5m", check=True,
    )  # fmt: skip
    return time.monotonic() - began
