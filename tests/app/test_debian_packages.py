"""The Debian packages `make debs` builds, in StarlingX's per-package form.

StarlingX's build tools (starlingx/root build-tools/stx/discovery.py and debrepack.py) find the
packages of a Debian codename from `debian_<codename>_pkg_dirs_std`, and each package's
meta_data.yaml and deb_folder/ under `<package dir>/debian/<codename>/` or `debian/all/`; the
rules are simulated here for bullseye and trixie. The packages are checked with dpkg-deb, and
the plugin package is unpacked into a scratch root where sysinv's entry-point loading must find
its plugins.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from tests.app import artifacts

REPO_ROOT = artifacts.REPO_ROOT
DISTS = ["bullseye", "trixie"]
PKG_DIRS = ["debian/portieris-helm", "debian/python3-k8sapp-portieris", "debian/stx-portieris-helm"]
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
APP_DIR = "usr/local/share/applications/helm"


# --- StarlingX's build tools, as far as they look at this repository


def entries(path: Path) -> list[str]:
    """A list file as the build tools read it: stripped lines, no blanks, no # comments."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def first_file(*names: str) -> Path | None:
    return next((REPO_ROOT / n for n in names if (REPO_ROOT / n).is_file()), None)


def pkg_dirs_file(dist: str, build_type: str = "std") -> Path | None:
    """The package list the build reads for a codename (discovery.package_dir_list, as on
    r/stx.12.0 and master; r/stx.11.0 skipped a repository with only codename lists): bullseye
    takes the old debian_pkg_dirs_<type>, then debian_bullseye_pkg_dirs_<type>, then (std only)
    debian_pkg_dirs; every other codename only debian_<codename>_pkg_dirs_<type>."""
    if dist == "bullseye":
        old = ["debian_pkg_dirs"] if build_type == "std" else []
        return first_file(
            f"debian_pkg_dirs_{build_type}", f"debian_bullseye_pkg_dirs_{build_type}", *old
        )
    return first_file(f"debian_{dist}_pkg_dirs_{build_type}")


def iso_image_file(dist: str, build_type: str = "std") -> Path | None:
    """The ISO package list (discovery.package_iso_list), looked up as the package list is."""
    if dist == "bullseye":
        old = ["debian_iso_image.inc"] if build_type == "std" else []
        return first_file(
            f"debian_iso_image_{build_type}.inc",
            f"debian_bullseye_iso_image_{build_type}.inc",
            *old,
        )
    return first_file(f"debian_{dist}_iso_image_{build_type}.inc")


def package_folder(pkg_dir: str, dist: str) -> Path:
    """Where the build takes meta_data.yaml and deb_folder/ (discovery.get_relocated_package_dir):
    bullseye tries <pkg>/debian/, then debian/bullseye/, then debian/all/; every other codename
    debian/<codename>/, then debian/all/."""
    debian = REPO_ROOT / pkg_dir / "debian"
    candidates = (
        [debian, debian / dist, debian / "all"]
        if dist == "bullseye"
        else [debian / dist, debian / "all"]
    )
    for folder in candidates:
        if (folder / "meta_data.yaml").is_file():
            return folder
    raise LookupError(f"{pkg_dir}: No meta_data.yaml found for {dist}")


def meta_data(pkg_dir: str, dist: str = "bullseye") -> dict[str, Any]:
    data = yaml.safe_load((package_folder(pkg_dir, dist) / "meta_data.yaml").read_text())
    assert isinstance(data, dict)
    return data


def git_count(cwd: Path, *revs: str) -> int:
    out = subprocess.run(
        ["git", "rev-list", "--count", *revs, "--", "."],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def starlingx_revision(pkg_dir: str, root: Path = REPO_ROOT, dist: str = "bullseye") -> int:
    """The revision StarlingX's build gives a package (debrepack.set_revision) in a clean tree:
    revision.stx_patch plus the commits since GITREVCOUNT.BASE_SRCREV that changed SRC_DIR
    (relative to the package directory)."""
    revision = meta_data(pkg_dir, dist)["revision"]
    count = 0
    if "GITREVCOUNT" in revision:
        gitrevcount = revision["GITREVCOUNT"]
        src_dir = os.path.expandvars(str(gitrevcount.get("SRC_DIR", "")))
        where = root / pkg_dir / src_dir if src_dir else package_folder(pkg_dir, dist)
        count = git_count(where, f"{gitrevcount['BASE_SRCREV']}..HEAD")
    return count + int(revision["stx_patch"])


def sw_version() -> str:
    """The StarlingX release the build versions the application with."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-stx-app.sh"), "--print-sw-version"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def expected_version(pkg_dir: str) -> str:
    return f"{meta_data(pkg_dir)['debver']}.stx.{starlingx_revision(pkg_dir)}"


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


# --- the StarlingX layout


@pytest.mark.parametrize("dist", DISTS)
def test_build_tools_find_every_package_in_build_order(dist: str) -> None:
    listing = pkg_dirs_file(dist)
    assert listing is not None, f"no package list for {dist}"
    assert listing.name == f"debian_{dist}_pkg_dirs_std"
    assert entries(listing) == PKG_DIRS
    for pkg_dir in PKG_DIRS:
        # One copy for every codename, and no old-style debian/meta_data.yaml that bullseye
        # would take before it.
        assert package_folder(pkg_dir, dist) == REPO_ROOT / pkg_dir / "debian" / "all"


def test_old_style_package_list_if_kept_lists_the_same_packages() -> None:
    """debian_pkg_dirs is read only by a bullseye build of a repository without
    debian_bullseye_pkg_dirs_std: it must not say anything else."""
    old = REPO_ROOT / "debian_pkg_dirs"
    if old.exists():
        assert entries(old) == PKG_DIRS


@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("pkg_dir", PKG_DIRS)
def test_package_folder_has_meta_data_and_deb_folder(pkg_dir: str, dist: str) -> None:
    meta = meta_data(pkg_dir, dist)
    deb_folder = package_folder(pkg_dir, dist) / "deb_folder"
    # src_path is relative to the package directory (debrepack), not to debian/all/.
    assert (REPO_ROOT / pkg_dir / str(meta["src_path"])).is_dir()
    assert meta["debname"] == pkg_dir.removeprefix("debian/")
    assert (deb_folder / "source" / "format").read_text().strip() == "3.0 (quilt)"
    assert os.access(deb_folder / "rules", os.X_OK)
    control = (deb_folder / "control").read_text()
    assert f"Source: {meta['debname']}\n" in control
    assert "debhelper-compat (= 13)" in control
    changelog = (deb_folder / "changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"{meta['debname']} ({meta['debver']}) ")


@pytest.mark.parametrize("pkg_dir", PKG_DIRS)
def test_revision_counts_this_repositorys_commits(pkg_dir: str) -> None:
    """StarlingX's build adds to stx_patch the commits since BASE_SRCREV in SRC_DIR, so every
    commit moves the packages' and the application's revision."""
    revision = meta_data(pkg_dir)["revision"]
    assert revision["dist"] == "$STX_DIST"
    assert isinstance(revision["stx_patch"], int)
    gitrevcount = revision["GITREVCOUNT"]
    src_dir = (REPO_ROOT / pkg_dir / str(gitrevcount["SRC_DIR"])).resolve()
    assert src_dir == REPO_ROOT
    base = str(gitrevcount["BASE_SRCREV"])
    assert re.fullmatch(r"[0-9a-f]{40}", base)
    ancestor = subprocess.run(
        ["git", "merge-base", "--is-ancestor", base, "HEAD"], cwd=REPO_ROOT, check=False
    )
    assert ancestor.returncode == 0, f"BASE_SRCREV {base} is not a commit of this history"


@pytest.mark.parametrize("dist", DISTS)
def test_iso_image_list_names_the_package_that_installs_the_application(dist: str) -> None:
    listing = iso_image_file(dist)
    assert listing is not None, f"no ISO image list for {dist}"
    assert listing.name == f"debian_{dist}_iso_image_std.inc"
    assert entries(listing) == ["stx-portieris-helm"]
    packages = pkg_dirs_file(dist)
    assert packages is not None
    built_here = {str(meta_data(d, dist)["debname"]): d for d in entries(packages)}
    for name in entries(listing):
        assert name in built_here, f"{name} is not a package built for {dist}"
        install = package_folder(built_here[name], dist) / "deb_folder" / f"{name}.install"
        assert f"{APP_DIR}/" in install.read_text()


def test_build_layer_is_flock() -> None:
    assert entries(REPO_ROOT / "debian_build_layer.cfg") == ["flock"]


def test_centos_build_layer_says_it_is_obsolete_and_mirrors_debians() -> None:
    centos = REPO_ROOT / "centos_build_layer.cfg"
    comments = [line for line in centos.read_text().splitlines() if line.startswith("#")]
    assert any("obsolete" in line.lower() for line in comments)
    assert entries(centos) == entries(REPO_ROOT / "debian_build_layer.cfg")


def test_chart_package_version_is_the_chart_version() -> None:
    debver = str(meta_data("debian/portieris-helm")["debver"])
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
        ("stx-portieris-helm", f"{APP_DIR}/portieris-{{app}}.tgz"),
    ],
)
def test_package_contains(package: str, path: str) -> None:
    # The wheel is versioned <SW_VERSION>.<revision> (PBR_VERSION), as StarlingX's rules do.
    pbr_version = f"{sw_version()}.{starlingx_revision('debian/python3-k8sapp-portieris')}"
    expected = path.format(
        chart=artifacts.chart_version(),
        wheel=Version(pbr_version),
        app=artifacts.app_version(),
    )
    assert expected in contents(package)


@pytest.mark.parametrize("dist", DISTS)
def test_iso_image_package_installs_the_application_tarball(dist: str) -> None:
    listing = iso_image_file(dist)
    assert listing is not None, f"no ISO image list for {dist}"
    for name in entries(listing):
        assert f"{APP_DIR}/portieris-{artifacts.app_version()}.tgz" in contents(name)


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
    packaged = root / APP_DIR / artifacts.app_tarball().name
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
