"""The offline command line with a sigstore policy: `verify` and `admit --manifests` decide a
real cosign signature as the webhook does (the verifier is found through its entry point)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.cosign import Cosign
from tests.fixtures.serve import pod_review
from tests.fixtures.sigstore_helpers import key_authority, sigstore_policy

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "portieris_webhook.cli"]


def manifests(directory: Path, host: str, public_pem: bytes) -> Path:
    """A namespace, a Secret holding the key and an ImagePolicy naming it by secretRef."""
    authority = key_authority(public_pem)
    authority["key"] = {"secretRef": {"name": "release-key", "key": "cosign.pub"}}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "release-key", "namespace": "apps"},
            "type": "Opaque",
            "data": {"cosign.pub": base64.b64encode(public_pem).decode()},
        },
        {
            "apiVersion": "portieris.cloud.ibm.com/v1",
            "kind": "ImagePolicy",
            "metadata": {"name": "release", "namespace": "apps"},
            "spec": {"repositories": [{"name": f"{host}/*", "policy": sigstore_policy(authority)}]},
        },
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(yaml.safe_dump_all(objects))
    return directory


def run(
    *args: str | Path, ca_file: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, *map(str, args), "--ca-file", str(ca_file)]
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=120)


@pytest.fixture
def signed(image_factory, cosign: Cosign, registry, tmp_path: Path):
    image = image_factory("v1")
    pair = cosign.generate_key_pair(tmp_path / "key")
    cosign.sign(image.digest_ref, pair.private_path)
    return image, manifests(tmp_path / "manifests", registry.host, pair.public_pem)


def test_verify_allows_a_cosign_signed_image_and_names_the_authority(signed, registry) -> None:
    image, directory = signed
    result = run(
        "verify",
        image.ref,
        "--namespace",
        "apps",
        "--manifests",
        directory,
        ca_file=registry.ca_file,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ALLOW")
    assert "authority key: satisfied" in result.stdout
    assert image.digest in result.stdout


def test_verify_denies_an_unsigned_image_with_exit_1(signed, image_factory, registry) -> None:
    _, directory = signed
    unsigned = image_factory("v1", seed="unsigned")
    result = run(
        "verify", unsigned.ref, "--namespace", "apps", "--manifests", directory,
        ca_file=registry.ca_file,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("DENY")
    assert "no signature found" in result.stdout


def test_admit_pins_a_cosign_signed_image(signed, registry) -> None:
    image, directory = signed
    review = json.dumps(pod_review([image.ref], uid="cli", namespace="apps"))
    result = run("admit", "--manifests", directory, "-", ca_file=registry.ca_file, stdin=review)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)["response"]
    assert answer["allowed"], answer
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert [op["value"] for op in patch] == [image.digest_ref]
