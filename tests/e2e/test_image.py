"""The webhook image ``make image`` writes: an OCI archive built without any registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from typing import Any

import pytest

from .node_fixtures import BuiltImage
from .release import BUILD_IMAGE

pytestmark = pytest.mark.e2e

# The target for the image's weight (the compressed archive a registry stores).
SIZE_TARGET = 150 * 1000 * 1000


def archive_files(image: BuiltImage) -> dict[str, bytes]:
    with tarfile.open(image.path) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def blob(files: dict[str, bytes], digest: str) -> bytes:
    algorithm, hex_ = digest.split(":", 1)
    return files[f"blobs/{algorithm}/{hex_}"]


def image_config(files: dict[str, bytes]) -> dict[str, Any]:
    index = json.loads(files["index.json"])
    manifest = json.loads(blob(files, index["manifests"][0]["digest"]))
    return dict(json.loads(blob(files, manifest["config"]["digest"])))


def test_archive_is_an_oci_layout_whose_blobs_match_their_digests(
    webhook_image: BuiltImage,
) -> None:
    files = archive_files(webhook_image)
    assert json.loads(files["oci-layout"])["imageLayoutVersion"] == "1.0.0"
    index = json.loads(files["index.json"])
    assert len(index["manifests"]) == 1
    manifest = json.loads(blob(files, index["manifests"][0]["digest"]))
    referenced = [manifest["config"], *manifest["layers"]]
    assert len(manifest["layers"]) == 2  # the Debian root fs, then the package
    for descriptor in [index["manifests"][0], *referenced]:
        data = blob(files, descriptor["digest"])
        assert "sha256:" + hashlib.sha256(data).hexdigest() == descriptor["digest"]
        assert len(data) == descriptor["size"]


def test_image_config_is_the_containerfiles(webhook_image: BuiltImage) -> None:
    config = image_config(archive_files(webhook_image))["config"]
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["portieris-webhook", "serve"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert set(config["ExposedPorts"]) == {"8000/tcp", "8080/tcp"}
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "portieris-webhook"
    assert (
        webhook_image.path.name
        == f"portieris-webhook-{labels['org.opencontainers.image.version']}.oci.tar"
    )


def test_build_says_how_big_the_image_is_and_it_is_under_the_target(
    webhook_image: BuiltImage,
) -> None:
    said = re.search(r": ([0-9.]+) MB", webhook_image.output)
    assert said, webhook_image.output
    assert float(said.group(1)) == pytest.approx(webhook_image.size / 1e6, abs=0.05)
    assert webhook_image.size < SIZE_TARGET


def test_a_second_build_from_the_cache_gives_the_same_archive(webhook_image: BuiltImage) -> None:
    before = hashlib.sha256(webhook_image.path.read_bytes()).hexdigest()
    subprocess.run(
        [sys.executable, str(BUILD_IMAGE), "--python", sys.executable],
        capture_output=True,
        check=True,
    )
    assert hashlib.sha256(webhook_image.path.read_bytes()).hexdigest() == before


def test_byte_code_is_valid_on_the_read_only_root_fs(webhook_image: BuiltImage) -> None:
    """Every .pyc is checked by hash, not by its source's mtime (all layer times are fixed,
    so mtime-stamped byte code would be stale and recompiled, unsaved, at every start)."""
    files = archive_files(webhook_image)
    index = json.loads(files["index.json"])
    manifest = json.loads(blob(files, index["manifests"][0]["digest"]))
    stale = []
    checked = 0
    for layer in manifest["layers"]:
        data = gzip.decompress(blob(files, layer["digest"]))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".pyc"):
                    header = tar.extractfile(member).read(8)  # type: ignore[union-attr]
                    checked += 1
                    if not int.from_bytes(header[4:8], "little") & 1:  # PEP 552 hash-based
                        stale.append(member.name)
    assert checked and not stale, f"{len(stale)} of {checked} .pyc use mtimes: {stale[:5]}"
