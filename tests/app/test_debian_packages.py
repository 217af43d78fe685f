"""The Debian packages `make debs` builds, in StarlingX's per-package form.

Each directory listed in debian_pkg_dirs holds debian/meta_data.yaml and debian/deb_folder/
as StarlingX's build expects; the packages are checked with dpkg-deb, and the plugin package
is unpacked into a scratch root where sysinv's entry-point loading must find its plugins.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.app import artifacts

PACKAGES = [
    "portieris-helm",
    "python3-k8sapp-portieris",
    "python3-k8sapp-portieris-wheels",
    "stx-portieris-helm",
]
SOURCE_OF = {
    "portieris-helm": "debian/portieris-helm",
    "python3-k8sapp-portieris": "debian/python3-k8sapp-portieris",
    "python3-k8sapp-portieris-wheels": "debian/python3-k8sapp-portieris",
    "stx-portieris-helm": "debian/stx-portieris-helm",
}
PLUGIN_DIR = "usr/lib/python3/dist-packages"


def deb(package: str) -> Path:
    found = artifacts.debs()
    assert package in found, f"make debs built {sorted(found)}, not {package}"
    return found[package]


def contents(package: str) -> set[str]:
    out = subprocess.run(
        ["dpkg-deb", "--contents", str(deb(package))], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[5].removeprefix("./") for line in out.splitlines() if line.split()}


def field(package: str, name: str) -> str:
    out = subprocess.run(
        ["dpkg-deb", "--field", str(deb(package)), name],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def expected_version(pkg_dir: str) -> str:
    meta = artifacts.meta_data(pkg_dir)
    return f"{meta['debver']}.stx.{meta['revision']['stx_patch']}"  # type: ignore[index]


# --- the StarlingX layout


def test_pkg_dirs_list_every_package_directory_in_build_order() -> None:
    assert artifacts.pkg_dirs() == [
        "debian/portieris-helm",
        "debian/python3-k8sapp-portieris",
        "debian/stx-portieris-helm",
    ]


@pytest.mark.parametrize("pkg_dir", sorted(set(SOURCE_OF.values())))
def test_package_directory_has_meta_data_and_deb_folder(pkg_dir: str) -> None:
    meta = artifacts.meta_data(pkg_dir)
    deb_folder = artifacts.REPO_ROOT / pkg_dir / "debian" / "deb_folder"
    assert (artifacts.REPO_ROOT / pkg_dir / str(meta["src_path"])).is_dir()
    assert meta["debname"] == pkg_dir.removeprefix("debian/")
    assert (deb_folder / "source" / "format").read_text().strip() == "3.0 (quilt)"
    assert os.access(deb_folder / "rules", os.X_OK)
    control = (deb_folder / "control").read_text()
    assert f"Source: {meta['debname']}\n" in control
    assert "debhelper-compat (= 13)" in control
    changelog = (deb_folder / "changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"{meta['debname']} ({meta['debver']}) ")


@pytest.mark.parametrize("name", ["debian_build_layer.cfg", "centos_build_layer.cfg"])
def test_build_layer_is_flock(name: str) -> None:
    assert (artifacts.REPO_ROOT / name).read_text() == "flock\n"


def test_chart_package_version_is_the_chart_version() -> None:
    debver = str(artifacts.meta_data("debian/portieris-helm")["debver"])
    assert debver.split("-")[0] == artifacts.chart_version()


# --- the built packages


@pytest.mark.parametrize("package", PACKAGES)
def test_package_is_built_at_its_starlingx_version(package: str) -> None:
    assert field(package, "Package") == package
    assert field(package, "Version") == expected_version(SOURCE_OF[package])
    assert field(package, "Architecture") == "all"


@pytest.mark.parametrize(
    ("package", "path"),
    [
        ("portieris-helm", "usr/lib/helm/portieris-{chart}.tgz"),
        ("python3-k8sapp-portieris", f"{PLUGIN_DIR}/k8sapp_portieris/helm/portieris.py"),
        (
            "python3-k8sapp-portieris",
            f"{PLUGIN_DIR}/k8sapp_portieris/lifecycle/lifecycle_portieris.py",
        ),
        ("python3-k8sapp-portieris", f"{PLUGIN_DIR}/k8sapp_portieris/common/constants.py"),
        ("python3-k8sapp-portieris-wheels", "plugins/k8sapp_portieris-{wheel}-py3-none-any.whl"),
        ("stx-portieris-helm", "usr/local/share/applications/helm/portieris-{app}.tgz"),
    ],
)
def test_package_contains(package: str, path: str) -> None:
    setup = configparser.ConfigParser()
    setup.read(artifacts.REPO_ROOT / "python-k8sapp-portieris" / "setup.cfg")
    expected = path.format(
        chart=artifacts.chart_version(),
        wheel=setup["metadata"]["version"],
        app=artifacts.app_version(),
    )
    assert expected in contents(package)


def test_plugin_package_carries_its_entry_points() -> None:
    assert any(
        path.startswith(f"{PLUGIN_DIR}/k8sapp_portieris-") and path.endswith("/entry_points.txt")
        for path in contents("python3-k8sapp-portieris")
    )


def test_plugin_package_depends_on_what_the_plugins_import() -> None:
    depends = {
        d.strip().split()[0] for d in field("python3-k8sapp-portieris", "Depends").split(",")
    }
    assert {"python3-yaml", "python3-cryptography"} <= depends


def test_application_package_holds_the_same_application_as_make_stx_app(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "--extract", str(deb("stx-portieris-helm")), str(root)], check=True)
    packaged = root / "usr/local/share/applications/helm" / artifacts.app_tarball().name
    from_deb = artifacts.unpack(packaged, tmp_path / "deb-app")
    from_make = artifacts.unpack(artifacts.app_tarball(), tmp_path / "make-app")
    for path in ("metadata.yaml", "fluxcd-manifests/portieris/helmrelease.yaml"):
        assert (from_deb / path).read_bytes() == (from_make / path).read_bytes(), path
    names = {p.relative_to(from_deb).as_posix() for p in from_deb.rglob("*")}
    assert names == {p.relative_to(from_make).as_posix() for p in from_make.rglob("*")}
    result = subprocess.run(
        ["md5sum", "--check", "--strict", "checksum.md5"], cwd=from_deb, capture_output=True
    )
    assert result.returncode == 0, result.stdout


# --- installed into a scratch root


LOAD_PLUGINS = """
import json
from sysinv.helm import helm
operator = helm.HelmOperator(dbapi=None)
chart = operator.get_chart_operator("portieris", app_name="portieris")
lifecycle = operator.get_app_lifecycle_operator("portieris")
print(json.dumps({
    "charts": operator.get_helm_system_application_relation("portieris"),
    "chart": [type(chart).__module__, type(chart).__name__, chart.CHART, chart.HELM_RELEASE],
    "lifecycle": [type(lifecycle).__module__, type(lifecycle).__name__],
    "files": [__import__(type(chart).__module__, fromlist=["x"]).__file__,
              __import__(type(lifecycle).__module__, fromlist=["x"]).__file__],
}))
"""


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(
        ["dpkg-deb", "--extract", str(deb("python3-k8sapp-portieris")), str(root)], check=True
    )
    return root


def test_sysinv_loads_the_installed_plugins_by_entry_point(scratch_root: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(scratch_root / PLUGIN_DIR), str(artifacts.SYSINV_DOUBLE)]
        ),
    }
    result = subprocess.run(
        [sys.executable, "-c", LOAD_PLUGINS], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    assert loaded["charts"] == ["portieris"]
    assert loaded["chart"] == [
        "k8sapp_portieris.helm.portieris",
        "PortierisHelm",
        "portieris",
        "portieris",
    ]
    assert loaded["lifecycle"] == [
        "k8sapp_portieris.lifecycle.lifecycle_portieris",
        "PortierisAppLifecycleOperator",
    ]
    assert all(Path(path).is_relative_to(scratch_root) for path in loaded["files"])


def test_wheel_package_holds_the_application_wheel(tmp_path: Path) -> None:
    subprocess.run(
        ["dpkg-deb", "--extract", str(deb("python3-k8sapp-portieris-wheels")), str(tmp_path)],
        check=True,
    )
    (wheel,) = (tmp_path / "plugins").iterdir()
    with tarfile.open(artifacts.app_tarball()) as app:
        assert f"./plugins/{wheel.name}" in app.getnames()
