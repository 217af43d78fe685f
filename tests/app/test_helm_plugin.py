"""The sysinv helm plugin, loaded by entry point and run by the sysinv double on example
simplex and duplex platforms whose cluster objects live in a real kube-apiserver."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sysinv.common import constants as sysinv_constants
from sysinv.common import exception
from sysinv.conductor.kube_app import AppImageParser, AppOperator
from sysinv.helm.lifecycle_base import AppLifecycleOperator

from k8sapp_portieris.helm.portieris import PortierisHelm
from k8sapp_portieris.lifecycle.lifecycle_portieris import PortierisAppLifecycleOperator

from .stx_platform import (
    CHART_DIR,
    NS,
    Platform,
    example_platform,
    make_platform,
    package_chart,
    start_cluster,
)
from tests.e2e.controlplane import ControlPlane
from tests.fixtures.pki import TestCA

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    yield from start_cluster()


@pytest.fixture(scope="module")
def chart_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def platform(
    cluster: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chart_archive: Path
) -> Platform:
    return make_platform(cluster, tmp_path, monkeypatch, chart_archive)


@pytest.fixture
def simplex(platform: Platform) -> Platform:
    return example_platform(platform, "simplex")


@pytest.fixture
def duplex(platform: Platform) -> Platform:
    return example_platform(platform, "duplex")


def pem(ca: TestCA) -> str:
    return ca.cert_pem.decode()


# --- discovery


def test_plugins_are_found_by_entry_point_as_sysinv_loads_them(platform: Platform) -> None:
    helm = platform.helm
    assert helm.get_helm_system_application_relation("portieris") == ["portieris"]
    assert isinstance(helm.get_chart_operator("portieris", app_name="portieris"), PortierisHelm)
    lifecycle = helm.get_app_lifecycle_operator("portieris")
    assert isinstance(lifecycle, PortierisAppLifecycleOperator)
    assert isinstance(lifecycle, AppLifecycleOperator)
    assert helm.get_helm_chart_namespaces("portieris") == [NS]
    assert helm.get_helm_application_namespaces("portieris") == {"portieris": [NS]}


# --- the example platforms


def test_simplex_example_overrides(simplex: Platform) -> None:
    values = simplex.system_overrides()
    print("\n# portieris system overrides, example AIO simplex platform\n" + yaml.safe_dump(values))
    cas = simplex.cas
    assert values["replicaCount"] == 1
    assert values["podDisruptionBudget"] == {
        "enabled": True,
        "minAvailable": "",
        "maxUnavailable": 1,
    }
    assert values["UseCertManager"] is True
    assert values["certManagerIssuer"] == {"kind": "ClusterIssuer", "name": "system-local-ca"}
    assert values["platform"] == {
        "trustedCACerts": pem(cas["Example Root CA"])
        + pem(cas["system-local-ca"])
        + pem(cas["Notary"]),
        "excludedNamespaces": [
            "ceph",
            "cert-manager",
            "deployment",
            "flux-helm",
            "helm-toolkit",
            "kube-system",
            "metrics-server",
            "monitor",
            "monitoring",
            "nfs",
            "notification",
            "openbao",
            "openstack",
            "vault",
        ],
        "failurePolicy": "",
    }
    assert values["image"]["repository"].startswith("registry.local:9001/")
    assert values["imagePullSecrets"] == [{"name": "default-registry-key"}]


def test_duplex_example_overrides(duplex: Platform) -> None:
    values = duplex.system_overrides()
    print("\n# portieris system overrides, example AIO duplex platform\n" + yaml.safe_dump(values))
    assert values["replicaCount"] == 2
    assert values["podDisruptionBudget"]["maxUnavailable"] == 1
    # No ClusterIssuer on this one: the chart's own self-signed CA issues the certificate.
    assert values["UseCertManager"] is True
    assert values["certManagerIssuer"] == {"kind": "Issuer", "name": ""}
    assert "team-a" not in values["platform"]["excludedNamespaces"]


def test_only_provisioned_controllers_count_as_replicas(platform: Platform) -> None:
    platform.dbapi.system.system_mode = sysinv_constants.SYSTEM_MODE_DUPLEX
    platform.add_controllers(1)
    platform.dbapi.hosts.append(
        type(platform.dbapi.hosts[0])(hostname="controller-1", administrative="locked")
    )
    assert platform.system_overrides()["replicaCount"] == 1


def test_every_value_written_is_a_value_of_the_chart(simplex: Platform) -> None:
    chart_values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

    def paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key, value in values.items():
            if isinstance(value, dict) and value:
                yield from paths(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    def exists(path: str) -> bool:
        node: Any = chart_values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = [p for p in paths(simplex.system_overrides()) if not exists(p)]
    assert missing == []


def test_image_names_the_charts_image_and_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    from k8sapp_portieris.common import constants

    assert values["image"]["repository"] == constants.IMAGE_REPOSITORY
    assert chart["appVersion"] == constants.IMAGE_TAG


# --- sysinv's plugin contract


def test_overrides_without_namespace_are_keyed_by_namespace(simplex: Platform) -> None:
    all_namespaces = simplex.helm.get_helm_chart_overrides("portieris", app_name="portieris")
    assert list(all_namespaces) == [NS]
    assert all_namespaces[NS] == simplex.system_overrides()


def test_an_unknown_namespace_raises_invalid_helm_namespace(simplex: Platform) -> None:
    with pytest.raises(
        exception.InvalidHelmNamespace, match=r"\(kube-system\) for chart portieris"
    ):
        simplex.helm.get_helm_chart_overrides("portieris", "kube-system", "portieris")


def test_the_overrides_file_is_unwrapped_with_the_users_values_merged(
    simplex: Platform, tmp_path: Path
) -> None:
    simplex.set_user_overrides({"replicaCount": 3, "webHooks": {"failurePolicy": "Ignore"}})
    (path,) = simplex.helm.generate_helm_application_overrides(
        str(tmp_path), "portieris", combined=True
    )
    assert Path(path).name == "portieris.yaml"
    written = yaml.safe_load(Path(path).read_text())
    assert NS not in written  # one namespace: no namespace level
    assert written["replicaCount"] == 3
    assert written["webHooks"] == {"failurePolicy": "Ignore"}
    assert written["platform"]["failurePolicy"] == ""


def test_sysinv_finds_the_webhook_image_in_the_overrides(simplex: Platform, tmp_path: Path) -> None:
    (path,) = simplex.helm.generate_helm_application_overrides(
        str(tmp_path), "portieris", combined=True
    )
    parser = AppImageParser()
    images = parser.find_images_in_dict(yaml.safe_load(Path(path).read_text()))
    assert parser.generate_download_images_list(images, []) == [
        "registry.local:9001/docker.io/starlingx/stx-portieris-webhook:0.1.0"
    ]


def test_the_platform_ca_key_is_never_read(simplex: Platform) -> None:
    values = yaml.safe_dump(simplex.system_overrides())
    assert "PRIVATE KEY" not in values
    assert simplex.cas["system-local-ca"].key_pem.decode().splitlines()[1] not in values


@pytest.mark.parametrize(
    ("status", "usm_upgrade", "policy"),
    [
        (sysinv_constants.APP_UPDATE_IN_PROGRESS, False, "Ignore"),
        (sysinv_constants.APP_RECOVER_IN_PROGRESS, False, "Ignore"),
        (sysinv_constants.APP_APPLY_SUCCESS, True, "Ignore"),
        (sysinv_constants.APP_APPLY_SUCCESS, False, ""),
        (sysinv_constants.APP_APPLY_IN_PROGRESS, False, ""),
    ],
)
def test_failure_policy_is_ignore_while_updating_or_upgrading(
    simplex: Platform, status: str, usm_upgrade: bool, policy: str
) -> None:
    simplex.app.status = status
    if usm_upgrade:
        Path(sysinv_constants.USM_UPGRADE_IN_PROGRESS).touch()
    assert simplex.system_overrides()["platform"]["failurePolicy"] == policy


# --- failures


def test_a_trusted_ca_that_is_not_a_ca_is_an_error_naming_it(platform: Platform) -> None:
    leaf = TestCA.create().issue("www.example.com")[0]
    platform.install_ssl_ca("ssl_ca_4242", leaf)
    with pytest.raises(exception.SysinvException, match=r"ssl_ca_4242 .*is not a CA certificate"):
        platform.system_overrides()


def test_a_trusted_ca_whose_file_is_missing_is_an_error(platform: Platform) -> None:
    platform.install_ssl_ca("ssl_ca_77", TestCA.create().cert_pem)
    (Path(sysinv_constants.SSL_CERT_CA_LIST_SHARED_DIR) / "ssl_ca_77").unlink()
    with pytest.raises(exception.SysinvException, match=r"ssl_ca_77.*cannot read"):
        platform.system_overrides()


@pytest.mark.parametrize(
    ("trusted_ca_cert", "message"),
    [
        ("not base64 !", "TrustedCACert is neither a PEM bundle nor base64 of one"),
        (base64.b64encode(b"hello").decode(), "TrustedCACert \\(base64\\) holds no PEM"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid X.509"),
    ],
)
def test_a_bad_trusted_ca_cert_override_is_an_error_naming_it(
    platform: Platform, trusted_ca_cert: str, message: str
) -> None:
    platform.set_user_overrides({"TrustedCACert": trusted_ca_cert})
    with pytest.raises(exception.SysinvException, match=message):
        platform.system_overrides()


def test_a_leaf_as_trusted_ca_cert_is_an_error(platform: Platform) -> None:
    leaf = TestCA.create().issue("notary.example.com")[0].decode()
    platform.set_user_overrides({"TrustedCACert": leaf})
    with pytest.raises(exception.SysinvException, match=r"CN=notary\.example\.com.*not a CA"):
        platform.system_overrides()


# --- Sigstore trust roots


def public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_no_trust_roots_secret_no_trust_roots(simplex: Platform) -> None:
    assert simplex.system_overrides()["sigstore"] == {"trustRoots": {}}


def test_trust_roots_come_from_the_platform_secret_and_the_operators_win_by_name(
    simplex: Platform, tmp_path: Path
) -> None:
    fulcio, rekor, release, replacement = (
        pem(simplex.cas["Example Root CA"]),
        public_key_pem(),
        public_key_pem(),
        public_key_pem(),
    )
    simplex.create_sigstore_trust_roots({"fulcio": fulcio, "rekor": rekor})
    assert simplex.system_overrides()["sigstore"]["trustRoots"] == {
        "fulcio": fulcio,
        "rekor": rekor,
    }
    simplex.set_user_overrides(
        {"sigstore": {"trustRoots": {"release-key": release, "rekor": replacement}}}
    )
    (path,) = simplex.helm.generate_helm_application_overrides(
        str(tmp_path), "portieris", combined=True
    )
    written = yaml.safe_load(Path(path).read_text())
    assert written["sigstore"]["trustRoots"] == {
        "fulcio": fulcio,
        "rekor": replacement,
        "release-key": release,
    }


def test_a_private_key_in_the_trust_roots_secret_is_an_error_naming_it(
    platform: Platform,
) -> None:
    platform.create_sigstore_trust_roots({"cosign.key": TestCA.create().key_pem.decode()})
    with pytest.raises(
        exception.SysinvException,
        match=r"Secret kube-system/portieris-sigstore-trust-roots entry 'cosign.key' holds a "
        r"PRIVATE KEY",
    ):
        platform.system_overrides()


def test_application_directories_follow_sysinv(platform: Platform) -> None:
    app = AppOperator.Application(platform.app)
    assert app.inst_charts_dir.endswith("/portieris/25.09-0/charts")
