"""The application tarball `make stx-app` builds, as sysinv checks it at upload and loads its
plugins (sysinv's app_metadata checks, PluginManager install/activate/deactivate)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sysinv.common import app_metadata, exception, plugin_manager
from sysinv.common import constants as sysinv_constants
from sysinv.common import utils as cutils
from sysinv.conductor import kube_app
from sysinv.helm import helm

from tests.sysinv_real.platform import APP, NS


def version_of(tarball: Path) -> str:
    match = re.fullmatch(r"portieris-(.+)\.tgz", tarball.name)
    assert match, tarball
    return match.group(1)


def extract(tarball: Path, where: Path) -> Path:
    where.mkdir()
    assert cutils.extract_tarfile(str(where), str(tarball))
    return where


def test_verify_application_tarball(tarball: Path) -> None:
    app_metadata.verify_application_tarball(str(tarball))  # raises if refused


def test_validate_metadata_file(tarball: Path, tmp_path: Path) -> None:
    app_path = extract(tarball, tmp_path / "app")
    name, version, patches = app_metadata.validate_metadata_file(
        str(app_path), sysinv_constants.APP_METADATA_FILE
    )
    assert (name, version, patches) == (APP, version_of(tarball), [])


def test_extract_bundle_metadata(tarball: Path) -> None:
    bundle = app_metadata.extract_bundle_metadata(str(tarball))
    assert bundle is not None, "sysinv could not read the bundle's metadata"
    assert bundle["name"] == APP
    assert bundle["version"] == version_of(tarball)
    assert bundle["auto_update"] is True
    assert bundle["k8s_minimum_version"] == "1.25.0"


def test_a_tarball_whose_checksum_fails_is_refused(tarball: Path, tmp_path: Path) -> None:
    app_path = extract(tarball, tmp_path / "app")
    with open(app_path / sysinv_constants.APP_METADATA_FILE, "a", encoding="utf-8") as f:
        f.write("# changed after the checksum\n")
    tampered = tmp_path / tarball.name
    subprocess.run(["tar", "czf", str(tampered), "-C", str(app_path), "."], check=True)
    with pytest.raises(Exception, match="checksum"):
        app_metadata.verify_application_tarball(str(tampered))


def test_plugins_install_activate_and_deactivate(tarball: Path, tmp_path: Path) -> None:
    app_path = extract(tarball, tmp_path / "app")
    version = version_of(tarball)
    sync_plugins_dir = kube_app.generate_synced_app_plugins_dir(APP, version)
    operator = helm.HelmOperator()  # a conductor's, before the application is applied
    assert operator.get_chart_operator(APP, app_name=APP) is None

    plugin_manager.PluginManager.install_plugins(APP, str(app_path / "plugins"), sync_plugins_dir)
    installed = sorted(os.listdir(sync_plugins_dir))
    assert "k8sapp_portieris" in installed
    assert any(n.startswith("k8sapp_portieris-") and n.endswith(".dist-info") for n in installed)

    operator.plugins.activate_plugins(APP, version, True, sync_plugins_dir, args=(operator,))
    pth = (
        Path(plugin_manager.APP_PLUGIN_PATH) / f"{plugin_manager.APP_PTH_PREFIX}{APP}-{version}.pth"
    )
    assert pth.read_text().strip() == sync_plugins_dir
    chart_op = operator.get_chart_operator(APP, app_name=APP)
    assert type(chart_op).__name__ == "PortierisHelm"
    assert sys.modules[type(chart_op).__module__].__file__.startswith(sync_plugins_dir)
    assert operator.get_helm_chart_namespaces(APP) == [NS]
    lifecycle_op = operator.get_app_lifecycle_operator(APP)
    assert type(lifecycle_op).__name__ == "PortierisAppLifecycleOperator"

    operator.plugins.deactivate_plugins(APP, version, True, sync_plugins_dir)
    assert not pth.exists()
    assert sync_plugins_dir not in sys.path
    assert not [m for m in sys.modules if m.startswith("k8sapp_portieris")]
    generic = operator.get_app_lifecycle_operator(APP)
    assert type(generic).__name__ == "GenericAppLifecycleOperator"


def test_the_plugin_refuses_an_unknown_namespace_through_sysinv(
    tarball: Path, tmp_path: Path
) -> None:
    app_path = extract(tarball, tmp_path / "app")
    version = version_of(tarball)
    sync_plugins_dir = kube_app.generate_synced_app_plugins_dir(APP, version)
    operator = helm.HelmOperator()
    plugin_manager.PluginManager.install_plugins(APP, str(app_path / "plugins"), sync_plugins_dir)
    operator.plugins.activate_plugins(APP, version, True, sync_plugins_dir, args=(operator,))
    with pytest.raises(exception.InvalidHelmNamespace):
        operator.get_helm_chart_overrides(APP, cnamespace="kube-system")
