"""The application tarball `make stx-app` builds, checked as sysinv checks it at upload.

sysinv unpacks the tarball, verifies checksum.md5 with md5sum, reads metadata.yaml, takes
the charts from charts/ and the FluxCD manifests from fluxcd-manifests/, and installs the
plugin wheels from plugins/. The application name and version come from the tarball name
too (the bootstrap playbook drops the last two '-' fields).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.app import artifacts
from tests.app.test_debian_packages import meta_data, starlingx_revision, sw_version
from tests.e2e.controlplane import binaries

APP_FILES = {"metadata.yaml", "checksum.md5"}


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts.unpack(artifacts.app_tarball(), tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def metadata(app_dir: Path) -> dict[str, Any]:
    data = yaml.safe_load((app_dir / "metadata.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def rendered(app_dir: Path) -> list[dict[str, Any]]:
    """The manifests as `kubectl kustomize` renders them (what sysinv applies)."""
    out = subprocess.run(
        [binaries().kubectl, "kustomize", str(app_dir / "fluxcd-manifests")],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def files_under(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path.relative_to(root).as_posix()


# --- layout and checksum


def test_tarball_holds_metadata_charts_manifests_plugins_and_checksum(app_dir: Path) -> None:
    top = {path.name for path in app_dir.iterdir()}
    assert top == APP_FILES | {"charts", "fluxcd-manifests", "plugins"}


def test_checksum_lists_every_other_file_with_its_md5(app_dir: Path) -> None:
    listed = {}
    for line in (app_dir / "checksum.md5").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        listed[path.removeprefix("./")] = digest
    expected = set(files_under(app_dir)) - {"checksum.md5"}
    assert set(listed) == expected
    assert all(listed[path] == artifacts.md5(app_dir / path) for path in expected)


def test_md5sum_verifies_the_checksum_file(app_dir: Path) -> None:
    result = subprocess.run(
        ["md5sum", "--check", "--strict", "checksum.md5"],
        cwd=app_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_md5sum_refuses_a_changed_file(app_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(app_dir, tmp_path / "app"))
    static = copy / "fluxcd-manifests" / "portieris" / "portieris-static-overrides.yaml"
    static.write_text(static.read_text() + "replicaCount: 0\n")
    result = subprocess.run(
        ["md5sum", "--check", "--strict", "checksum.md5"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "portieris-static-overrides.yaml: FAILED" in result.stdout


# --- metadata.yaml


def test_metadata_names_the_application_and_version_of_the_tarball(
    metadata: dict[str, Any],
) -> None:
    name = artifacts.app_tarball().name.removesuffix(".tgz")
    assert f"{metadata['app_name']}-{metadata['app_version']}" == name
    # The bootstrap playbook's rule: the name is the tarball name less its last two '-' fields.
    assert "-".join(name.split("-")[:-2]) == metadata["app_name"] == "portieris"


def loose_version(version: str) -> list[int | str]:
    """The order sysinv puts application versions in (distutils' LooseVersion, used by the
    conductor to choose the bundle an application is updated to and by kube_app to tell an
    update from a downgrade): runs of digits compare as numbers, everything else as text."""
    parts = re.split(r"(\d+|[a-z]+|\.)", version)
    return [int(part) if part.isdigit() else part for part in parts if part and part != "."]


@pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated")
def test_version_order_is_sysinvs() -> None:
    distutils_version = pytest.importorskip("distutils.version")
    versions = ["1.0-1", "25.09-12", "25.09-9", "26.03-1", "26.09-3", "26.09-10", "27.03-0"]
    for a in versions:
        for b in versions:
            loose = distutils_version.LooseVersion
            assert (loose_version(a) < loose_version(b)) == (loose(a) < loose(b)), (a, b)


def test_metadata_version_is_the_release_and_the_application_packages_revision(
    metadata: dict[str, Any],
) -> None:
    """<SW_VERSION>-<revision>, as StarlingX's stx-portieris-helm rules version it: the
    revision is the one StarlingX's build gives that package, which every commit moves."""
    version = str(metadata["app_version"])
    assert re.fullmatch(r"\d+\.\d+-\d+", version)
    release, revision = version.split("-")
    assert release == sw_version()
    assert int(revision) == starlingx_revision("debian/stx-portieris-helm")


@pytest.mark.parametrize("older", ["1.0-1", "25.09-12"])
def test_metadata_version_sorts_above_earlier_releases(
    metadata: dict[str, Any], older: str
) -> None:
    """sysinv updates an application automatically only to a higher version."""
    assert loose_version(str(metadata["app_version"])) > loose_version(older)


VERSIONING = ["scripts/build-stx-app.sh", "debian"]
GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def print_version(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "SW_VERSION"} | GIT_ID | env
    return subprocess.run(
        ["bash", str(root / "scripts" / "build-stx-app.sh"), "--print-version"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )


def copy_versioning(into: Path) -> None:
    """This working tree's build script and packaging, whatever is committed."""
    for path in VERSIONING:
        source, target = artifacts.REPO_ROOT / path, into / path
        if target.is_dir():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def commit(clone: Path, message: str) -> None:
    git = ["git", "-c", "core.hooksPath=/dev/null", "-C", str(clone)]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run(
        [*git, "commit", "-q", "--no-verify", "--allow-empty", "-m", message],
        check=True,
        env=os.environ | GIT_ID,
    )


def test_release_is_the_targeted_starlingx_release_unless_sw_version_says_otherwise() -> None:
    if Path("/etc/build.info").exists():
        pytest.skip("a StarlingX build environment names its own release in /etc/build.info")
    release, revision = print_version(artifacts.REPO_ROOT).stdout.strip().split("-")
    assert release == "26.09"
    overridden = print_version(artifacts.REPO_ROOT, SW_VERSION="27.03").stdout.strip()
    assert overridden == f"27.03-{revision}"


def test_revision_moves_with_a_new_commit(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(artifacts.REPO_ROOT), str(clone)], check=True)
    copy_versioning(clone)
    commit(clone, "packaging as in the working tree")
    before = print_version(clone).stdout.strip()
    readme = clone / "README.md"
    readme.write_text(readme.read_text() + "\none more line\n")
    commit(clone, "one more commit")
    after = print_version(clone).stdout.strip()
    assert before.split("-")[0] == after.split("-")[0]
    assert int(after.split("-")[1]) == int(before.split("-")[1]) + 1
    assert int(after.split("-")[1]) == starlingx_revision("debian/stx-portieris-helm", root=clone)


def test_outside_git_the_revision_is_stx_patch_with_a_warning(tmp_path: Path) -> None:
    copy_versioning(tmp_path)
    result = print_version(tmp_path, GIT_CEILING_DIRECTORIES=str(tmp_path.parent))
    stx_patch = meta_data("debian/stx-portieris-helm")["revision"]["stx_patch"]
    assert result.stdout.strip().split("-")[1] == str(stx_patch)
    assert "warning" in result.stderr.lower()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("helm_repo",), "stx-platform"),
        (("maintain_user_overrides",), True),
        (("upgrades", "auto_update"), True),
        (("behavior", "platform_managed_app"), True),
    ],
)
def test_metadata_field(metadata: dict[str, Any], path: tuple[str, ...], expected: Any) -> None:
    value: Any = metadata
    for key in path:
        value = value[key]
    assert value == expected


def test_metadata_minimum_kubernetes_is_the_charts(metadata: dict[str, Any]) -> None:
    chart = yaml.safe_load((artifacts.CHART_DIR / "Chart.yaml").read_text())
    minimum = re.match(r">=\s*([0-9.]+)", chart["kubeVersion"])
    assert minimum and str(metadata["supported_k8s_version"]["minimum"]) == minimum.group(1)


def test_no_placeholder_is_left(app_dir: Path) -> None:
    texts = [path for path in files_under(app_dir) if path.endswith(".yaml")]
    assert "metadata.yaml" in texts
    assert [path for path in texts if "REPLACE" in (app_dir / path).read_text()] == []


# --- the chart


def test_charts_hold_the_repository_chart_at_its_version(app_dir: Path) -> None:
    charts = sorted(path.name for path in (app_dir / "charts").iterdir())
    assert charts == [f"portieris-{artifacts.chart_version()}.tgz"]
    with tarfile.open(app_dir / "charts" / charts[0]) as chart:
        packaged = {
            member.name.removeprefix("portieris/"): chart.extractfile(member).read()  # type: ignore[union-attr]
            for member in chart.getmembers()
            if member.isfile()
        }
    for path in ("values.yaml", "values.schema.json", "templates/deployment.yaml", "crds"):
        source = artifacts.CHART_DIR / path
        for file in [source] if source.is_file() else sorted(source.rglob("*.yaml")):
            relative = file.relative_to(artifacts.CHART_DIR).as_posix()
            assert packaged[relative] == file.read_bytes(), relative


def test_helmrelease_names_the_bundled_chart_and_version(rendered: list[dict[str, Any]]) -> None:
    spec = one(rendered, "HelmRelease")["spec"]["chart"]["spec"]
    assert (spec["chart"], spec["version"]) == ("portieris", artifacts.chart_version())


def test_helmrelease_takes_the_chart_from_the_metadata_helm_repository(
    rendered: list[dict[str, Any]], metadata: dict[str, Any]
) -> None:
    source = one(rendered, "HelmRelease")["spec"]["chart"]["spec"]["sourceRef"]
    repository = one(rendered, "HelmRepository")
    assert source == {"kind": "HelmRepository", "name": repository["metadata"]["name"]}
    assert repository["metadata"]["name"] == metadata["helm_repo"]


# --- the FluxCD manifests


def test_kustomize_renders_repository_release_and_two_overrides_secrets_but_no_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    """sysinv creates the namespace, and removes the application with `kubectl delete -k`:
    a Namespace among the manifests would be deleted while helm-controller uninstalls."""
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in rendered)
    assert kinds == [
        ("HelmRelease", "portieris"),
        ("HelmRepository", "stx-platform"),
        ("Secret", "portieris-static-overrides"),
        ("Secret", "portieris-system-overrides"),
    ]
    assert {obj["metadata"]["namespace"] for obj in rendered} == {"portieris"}


def test_release_takes_values_from_static_then_system_overrides(
    rendered: list[dict[str, Any]],
) -> None:
    sources = one(rendered, "HelmRelease")["spec"]["valuesFrom"]
    assert [(s["kind"], s["name"], s["valuesKey"]) for s in sources] == [
        ("Secret", "portieris-static-overrides", "portieris-static-overrides.yaml"),
        ("Secret", "portieris-system-overrides", "portieris-system-overrides.yaml"),
    ]
    secrets = {obj["metadata"]["name"]: obj for obj in rendered if obj["kind"] == "Secret"}
    for source in sources:
        assert list(secrets[source["name"]]["data"]) == [source["valuesKey"]]


@pytest.mark.parametrize("phase", ["install", "upgrade"])
def test_release_creates_and_replaces_the_chart_crds(
    rendered: list[dict[str, Any]], phase: str
) -> None:
    assert one(rendered, "HelmRelease")["spec"][phase]["crds"] == "CreateReplace"


def test_static_overrides_are_values_the_chart_accepts(app_dir: Path) -> None:
    static = app_dir / "fluxcd-manifests" / "portieris" / "portieris-static-overrides.yaml"
    chart = next((app_dir / "charts").iterdir())
    result = subprocess.run(
        [binaries().helm, "lint", str(chart), "--strict", "--values", str(static)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_system_overrides_file_is_empty_until_sysinv_writes_it(app_dir: Path) -> None:
    system = app_dir / "fluxcd-manifests" / "portieris" / "portieris-system-overrides.yaml"
    assert yaml.safe_load(system.read_text()) is None


# --- the plugins


def test_plugins_hold_one_wheel_with_sysinv_entry_points(app_dir: Path) -> None:
    wheels = list((app_dir / "plugins").iterdir())
    assert [w.suffix for w in wheels] == [".whl"]
    with zipfile.ZipFile(wheels[0]) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(name).decode())
    assert set(entry_points.sections()) >= {
        "systemconfig.helm_applications",
        "systemconfig.helm_plugins.portieris",
        "systemconfig.app_lifecycle",
    }


# --- what the assembler refuses to build


def assemble(
    app_dir: Path, tmp_path: Path, *, version: str, charts: dict[str, Path], wheels: bool = True
) -> subprocess.CompletedProcess[str]:
    chart_dir, plugin_dir = tmp_path / "charts", tmp_path / "plugins"
    chart_dir.mkdir()
    plugin_dir.mkdir()
    for name, source in charts.items():
        shutil.copy(source, chart_dir / name)
    if wheels:
        for wheel in (app_dir / "plugins").iterdir():
            shutil.copy(wheel, plugin_dir)
    return subprocess.run(
        [
            "bash",
            str(artifacts.MANIFESTS / "assemble-app.sh"),
            "--charts",
            str(chart_dir),
            "--plugins",
            str(plugin_dir),
            "--version",
            version,
            "--output",
            str(tmp_path / "out.tgz"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def bundled_chart(app_dir: Path) -> Path:
    return next((app_dir / "charts").iterdir())


def test_assembler_builds_from_a_chart_and_a_wheel(app_dir: Path, tmp_path: Path) -> None:
    chart = bundled_chart(app_dir)
    result = assemble(app_dir, tmp_path, version="1.0-7", charts={chart.name: chart})
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / "out.tgz") as tarball:
        metadata = yaml.safe_load(tarball.extractfile("./metadata.yaml").read())  # type: ignore[union-attr]
    assert metadata["app_version"] == "1.0-7"


BUNDLED = "bundled chart"


@pytest.mark.parametrize(
    ("version", "chart_names", "wheels", "message"),
    [
        pytest.param("1.0-1-2", [BUNDLED], True, "exactly one '-'", id="two dashes in version"),
        pytest.param(
            "1.0-1", ["portieris-9.9.9.tgz"], True, "holds chart version", id="misnamed chart"
        ),
        pytest.param(
            "1.0-1",
            [BUNDLED, "portieris-9.9.9.tgz"],
            True,
            "exactly one portieris-<version>.tgz chart",
            id="two charts",
        ),
        pytest.param("1.0-1", [BUNDLED], False, "no plugin wheel", id="no wheel"),
    ],
)
def test_assembler_refuses(
    app_dir: Path,
    tmp_path: Path,
    version: str,
    chart_names: list[str],
    wheels: bool,
    message: str,
) -> None:
    chart = bundled_chart(app_dir)
    charts = {chart.name if name == BUNDLED else name: chart for name in chart_names}
    result = assemble(app_dir, tmp_path, version=version, charts=charts, wheels=wheels)
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "out.tgz").exists()


def test_metadata_asks_for_a_reapply_evaluation_on_each_platform_change_of_the_overrides(
    metadata: dict[str, Any],
) -> None:
    """sysinv re-evaluates the overrides only on the triggers metadata.yaml lists: without
    them a duplex system stays at one replica and a new platform CA never reaches the webhook.
    Each trigger type is one sysinv sends (common/constants.py), with its own filters."""
    triggers = metadata["behavior"]["evaluate_reapply"]["triggers"]
    assert {t["type"]: t.get("filters", []) for t in triggers} == {
        "runtime-apply-puppet": [],
        "host-availability-updated": [{"availability": "services-enabled"}],
        "host-delete": [{"personality": "controller"}],
        "system-modify": [],
        "usm-upgrade-complete": [],
        "on-demand-reapply": [],
    }


def test_the_starlingx_docs_name_the_ca_certificate_commands_cgts_client_has() -> None:
    """`system certificate-install -m ssl_ca` is gone from cgts-client: the trusted CAs are
    `system ca-certificate-install`, `ca-certificate-uninstall` and `ca-certificate-list`."""
    docs = (artifacts.REPO_ROOT / "docs" / "starlingx.md").read_text()
    assert "-m ssl_ca" not in docs and "system certificate-list" not in docs
    assert "system ca-certificate-install" in docs and "system ca-certificate-list" in docs
