"""The plugin wheel as StarlingX ships it: built from python-k8sapp-portieris, installed into a
fresh virtual environment, its plugins found by sysinv's entry-point discovery (the double)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from .conftest import SYSINV_DOUBLE
from tests.e2e.controlplane import REPO_ROOT

PACKAGE = REPO_ROOT / "python-k8sapp-portieris"

DISCOVER = textwrap.dedent(
    """
    import json
    from importlib import metadata

    from sysinv.db import api
    from sysinv.helm.helm import HelmOperator

    dbapi = api.get_instance()
    dbapi.kube_app_create({"name": "portieris", "app_version": "1.0-1"})
    helm = HelmOperator(dbapi)
    chart_op = helm.get_chart_operator("portieris", app_name="portieris")
    lifecycle = helm.get_app_lifecycle_operator("portieris")
    module = __import__(type(chart_op).__module__, fromlist=["x"])
    print(json.dumps({
        "charts": helm.get_helm_system_application_relation("portieris"),
        "chart_operator": type(chart_op).__name__,
        "chart_file": module.__file__,
        "lifecycle_operator": type(lifecycle).__name__,
        "namespaces": helm.get_helm_application_namespaces("portieris"),
        "entry_points": sorted(
            f"{ep.group}: {ep.name} = {ep.value}"
            for ep in metadata.distribution("k8sapp-portieris").entry_points
        ),
    }))
    """
)


def build_wheel(dist: Path, build: Path, **env: str) -> Path:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-q", "-w", str(dist), str(PACKAGE)],
        check=True,
        cwd=build,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PBR_VERSION"} | env,
    )
    (found,) = dist.glob("k8sapp_portieris-*.whl")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("build"))


def test_the_wheel_is_versioned_by_the_builds_pbr_version(tmp_path: Path) -> None:
    """StarlingX's rules export PBR_VERSION=<SW_VERSION>.<revision> before building the
    plugin; the wheel, and the plugin sysinv installs from it, carry that version."""
    built = build_wheel(tmp_path / "dist", tmp_path, PBR_VERSION="26.09.42")
    assert built.name == "k8sapp_portieris-26.9.42-py3-none-any.whl"
    with zipfile.ZipFile(built) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        assert "\nVersion: 26.9.42\n" in archive.read(meta).decode()


def test_the_wheel_holds_the_package_and_its_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert wheel.name.endswith("-py3-none-any.whl")
    for module in ("common/constants.py", "helm/portieris.py", "lifecycle/lifecycle_portieris.py"):
        assert f"k8sapp_portieris/{module}" in names
    assert not [n for n in names if n.startswith("tests")]
    assert "[systemconfig.helm_plugins.portieris]\n002_portieris = " in text


def test_sysinv_discovers_the_plugins_of_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    # The plugin's own dependencies (PyYAML, cryptography, kubernetes) from this environment;
    # k8sapp_portieris itself only from the wheel (the venv's site-packages come first).
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    dependencies = [p for p in sys.path if p.endswith("site-packages")]
    (site / "test-dependencies.pth").write_text("".join(f"{p}\n" for p in dependencies))
    proc = subprocess.run(
        [str(python), "-c", DISCOVER],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SYSINV_DOUBLE), "PATH": "/usr/bin:/bin"},
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["charts"] == ["portieris"]
    assert found["chart_operator"] == "PortierisHelm"
    assert Path(found["chart_file"]).is_relative_to(venv)
    assert found["lifecycle_operator"] == "PortierisAppLifecycleOperator"
    assert found["namespaces"] == {"portieris": ["portieris"]}
    assert found["entry_points"] == [
        "systemconfig.app_lifecycle: portieris = "
        "k8sapp_portieris.lifecycle.lifecycle_portieris:PortierisAppLifecycleOperator",
        "systemconfig.helm_applications: portieris = systemconfig.helm_plugins.portieris",
        "systemconfig.helm_plugins.portieris: 002_portieris = "
        "k8sapp_portieris.helm.portieris:PortierisHelm",
    ]
