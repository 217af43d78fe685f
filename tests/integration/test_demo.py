"""`make demo`: what a newcomer sees is real verification (scripts/demo.py --no-serve)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.procs import free_port

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--no-serve",
            "--workdir",
            str(tmp_path_factory.mktemp("demo")),
            "--port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def decision(output: str, name: str) -> str:
    found = re.search(rf"^  {name} +(ALLOWED|DENIED) +(.*)$", output, re.MULTILINE)
    assert found, output
    return f"{found.group(1)} {found.group(2)}"


def pushed(output: str, name: str) -> tuple[str, str]:
    """(reference, digest) of an image the demo pushed."""
    found = re.search(
        rf"^  {name} +(\S+) +(?:un)?signed(?: by someone else)? (sha256:\w+)$", output, re.MULTILINE
    )
    assert found, output
    return found.group(1), found.group(2)


@pytest.mark.parametrize(
    "name", ["notary-signed", "simple-signed", "cosign-keyed", "cosign-keyless"]
)
def test_a_signed_image_is_allowed_pinned_to_its_digest(demo_output: str, name: str) -> None:
    ref, digest = pushed(demo_output, name)
    assert decision(demo_output, name) == f"ALLOWED pinned to {ref.rsplit(':', 1)[0]}@{digest}"


def test_the_unsigned_image_is_denied_with_its_reason(demo_output: str) -> None:
    ref, _ = pushed(demo_output, "unsigned")
    assert decision(demo_output, "unsigned").startswith("DENIED")
    assert f"image {ref}: trust:" in decision(demo_output, "unsigned")


def test_a_tag_moved_after_signing_is_pinned_to_the_signed_digest(demo_output: str) -> None:
    ref, signed = pushed(demo_output, "moved-tag")
    moved = re.search(r"the tag moved after signing: \S+ is now (sha256:\w+)", demo_output)
    assert moved and moved.group(1) != signed
    assert (
        decision(demo_output, "moved-tag") == f"ALLOWED pinned to {ref.rsplit(':', 1)[0]}@{signed}"
    )


def test_a_cosign_signature_by_another_identity_is_denied_naming_it(demo_output: str) -> None:
    ref, _ = pushed(demo_output, "cosign-intruder")
    denied = decision(demo_output, "cosign-intruder")
    assert denied.startswith("DENIED portieris denied Pod/cosign-intruder"), denied
    assert f"image {ref}: sigstore: no authority is satisfied" in denied
    assert "signed by intruder@example.net from issuer https://oidc.example.com" in denied
