"""The built StarlingX application and its Debian packages, as the tests find them.

`make stx-app` and `make debs` (prerequisites of `make test`) build them into dist/; the
functions here run the same make targets, which do nothing when the build is up to date,
so a test never looks at a stale tarball.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from functools import cache
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST = REPO_ROOT / "dist"
CHART_DIR = REPO_ROOT / "helm-charts" / "portieris"
MANIFESTS = REPO_ROOT / "stx-manifests"
SYSINV_DOUBLE = REPO_ROOT / "tests" / "sysinv_double"


def make(target: str) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", target],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"make {target} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )


def app_version() -> str:
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-stx-app.sh"), "--print-version"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@cache
def app_tarball() -> Path:
    make("stx-app")
    path = DIST / f"portieris-{app_version()}.tgz"
    assert path.is_file(), f"make stx-app did not write {path}"
    return path


@cache
def debs() -> dict[str, Path]:
    """Package name -> .deb in dist/."""
    make("debs")
    found = {path.name.split("_")[0]: path for path in DIST.glob("*.deb")}
    return found


def chart_version() -> str:
    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"])


def unpack(tarball: Path, into: Path) -> Path:
    """Extract an application tarball as sysinv does at upload (no links out, no devices)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return into


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
