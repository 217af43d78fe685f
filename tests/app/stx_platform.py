"""An example StarlingX platform for the plugin tests: sysinv's database (the double), its
platform directories, and the cluster objects bootstrap creates, on a real kube-apiserver.

`Platform` sets up what a controller has when the portieris application is uploaded: the system
and its hosts, the platform applications, trusted CA certificates, the platform CA Secret and
ClusterIssuer, kube-system's registry secret; the chart archive in the application's charts
directory. The plugins are the installed k8sapp-portieris distribution, found by entry point.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sysinv.common import constants as sysinv_constants
from sysinv.common import kubernetes
from sysinv.conductor import kube_app
from sysinv.conductor.manager import ConductorManager
from sysinv.db import api as db_api
from sysinv.helm.helm import HelmOperator
from sysinv.helm.lifecycle_hook import LifecycleHookInfo

from k8sapp_portieris.lifecycle import chart_render

from tests.e2e.controlplane import REPO_ROOT, ControlPlane, binaries
from tests.fixtures.pki import TestCA
from tests.fixtures.stx_objects import (
    establish_cert_manager_crds,
    platform_ca_issuer,
    platform_ca_secret,
    registry_secret,
)

CHART_DIR = REPO_ROOT / "helm-charts" / "portieris"
APP_VERSION = "25.09-0"
NS = "portieris"
SIGSTORE_TRUST_ROOTS = "portieris-sigstore-trust-roots"

# Stand-ins for cert-manager's CRDs: only the kinds exist (no cert-manager controller runs), so
# the chart's Certificate/Issuer objects are accepted and a ClusterIssuer can be created.

# Platform applications of the example platform: (name, platform managed, namespaces).
PLATFORM_APPS = [
    ("cert-manager", True, ["cert-manager"]),
    ("oidc-auth-apps", True, ["kube-system"]),
    ("vault", True, ["vault"]),
    ("metrics-server", True, ["metrics-server"]),
    ("hello-world", False, ["team-a"]),
]


def start_cluster() -> Iterator[ControlPlane]:
    """A kube-apiserver with the chart's CRDs and stand-ins for cert-manager's."""
    with ControlPlane(extra_apiserver_args=["--enable-aggregator-routing=true"]) as plane:
        establish_cert_manager_crds(plane)
        yield plane


@dataclass
class Platform:
    """One example platform: the database, the directories, the cluster and the operators."""

    plane: ControlPlane
    root: Path
    dbapi: db_api.Connection
    app: db_api.KubeApp
    cas: dict[str, TestCA] = field(default_factory=dict)
    _helm: HelmOperator | None = None
    _conductor: ConductorManager | None = None

    # --- the platform

    def add_controllers(self, count: int, **state: str) -> None:
        for n in range(count):
            self.dbapi.hosts.append(db_api.Host(hostname=f"controller-{n}", **state))

    def install_ssl_ca(self, signature: str, pem: bytes) -> None:
        """What `system certificate-install -m ssl_ca` leaves: a row and a file."""
        self.dbapi.certificates.append(
            db_api.Certificate(uuid=signature, certtype="ssl_ca", signature=signature)
        )
        (Path(sysinv_constants.SSL_CERT_CA_LIST_SHARED_DIR) / signature).write_bytes(pem)

    def create_platform_ca(self, ca: TestCA, *, issuer: bool) -> None:
        """Bootstrap's Secret cert-manager/system-local-ca and, optionally, its ClusterIssuer."""
        self.kubectl_apply(platform_ca_secret(ca))
        if issuer:
            self.kubectl_apply(platform_ca_issuer())

    def create_sigstore_trust_roots(self, entries: dict[str, str]) -> None:
        """The operator's Secret kube-system/portieris-sigstore-trust-roots."""
        self.kubectl_apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": SIGSTORE_TRUST_ROOTS, "namespace": "kube-system"},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in entries.items()},
            }
        )

    def add_application(self, name: str, managed: bool, namespaces: list[str]) -> None:
        row = self.dbapi.kube_app_create(
            {
                "name": name,
                "app_version": "1.0-1",
                "status": sysinv_constants.APP_APPLY_SUCCESS,
                "active": True,
                "app_metadata": {"behavior": {"platform_managed_app": "yes" if managed else "no"}},
            }
        )
        for ns in namespaces:  # a generic app's charts, as helm-override-list shows them
            self.dbapi.helm_override_create({"app_id": row.id, "name": name, "namespace": ns})

    def set_user_overrides(self, values: dict[str, Any] | str | None) -> None:
        """What `system helm-override-update portieris portieris portieris --values` stores."""
        text = values if isinstance(values, str) or values is None else yaml.safe_dump(values)
        try:
            self.dbapi.helm_override_update(self.app.id, "portieris", NS, {"user_overrides": text})
        except Exception:
            self.dbapi.helm_override_create(
                {
                    "app_id": self.app.id,
                    "name": "portieris",
                    "namespace": NS,
                    "user_overrides": text,
                }
            )

    @property
    def helm_env(self) -> dict[str, str]:
        return dict(kube_app.HELM_ENV)

    def user_overrides_text(self) -> str | None:
        return self.dbapi.helm_override_get(self.app.id, "portieris", NS).user_overrides

    # --- sysinv

    @property
    def helm(self) -> HelmOperator:
        if self._helm is None:
            self._helm = HelmOperator(self.dbapi)
        return self._helm

    def conductor(self) -> ConductorManager:
        if self._conductor is None:
            self._conductor = ConductorManager(self.dbapi, self.helm)
        return self._conductor

    def system_overrides(self) -> dict[str, Any]:
        values: dict[str, Any] = self.helm.get_helm_chart_overrides("portieris", NS, "portieris")
        return values

    def apply(self) -> bool:
        return self.conductor().perform_app_apply(None, self.app)

    def hook(
        self, mode: str, lifecycle_type: str, timing: str, operation: str, **extra: Any
    ) -> None:
        hook_info = LifecycleHookInfo()
        hook_info.init(mode, lifecycle_type, timing, operation)
        hook_info.extra.update(extra)
        self.conductor().app_lifecycle_actions(None, self.app, hook_info)

    # --- the cluster

    def kubectl(self, *args: str) -> str:
        return str(self.plane.kubectl(*args, check=True).stdout)

    def kubectl_apply(self, obj: dict[str, Any]) -> None:
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self.plane.kubectl("create", "namespace", namespace)
        self.plane.kubectl("apply", "-f", "-", input=json.dumps(obj), check=True)

    def get(self, *args: str) -> dict[str, Any]:
        result = self.plane.kubectl("get", *args, "-o", "json")
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def webhook_configuration(self) -> dict[str, Any]:
        return self.get("mutatingwebhookconfiguration", "image-admission-config")


def package_chart(directory: Path) -> Path:
    proc = subprocess.run(
        [binaries().helm, "package", str(CHART_DIR), "--destination", str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(proc.stdout.strip().rsplit(" ", 1)[-1])


def make_platform(
    plane: ControlPlane, root: Path, monkeypatch: pytest.MonkeyPatch, chart_archive: Path
) -> Platform:
    """An empty example platform rooted in `root`, its sysinv pointed at `plane`."""
    config = root / "config"
    (config / "ssl_ca").mkdir(parents=True)
    monkeypatch.setattr(sysinv_constants, "SSL_CERT_CA_LIST_SHARED_DIR", str(config / "ssl_ca"))
    monkeypatch.setattr(
        sysinv_constants, "USM_UPGRADE_IN_PROGRESS", str(root / ".usm_upgrade_in_progress")
    )
    monkeypatch.setattr(kubernetes, "KUBERNETES_ADMIN_CONF", plane.kubeconfig)
    monkeypatch.setattr(kube_app, "APP_INSTALL_PATH", str(root / "helm"))
    monkeypatch.setattr(kube_app, "APP_FLUXCD_DATA_PATH", str(root / "fluxcd"))
    monkeypatch.setattr(kube_app, "HELM_OVERRIDES_PATH", str(root / "helm_overrides"))
    monkeypatch.setattr(kube_app, "HELM", binaries().helm)
    helm_env = {k: v for k, v in plane.env.items() if k.startswith("HELM_")}
    monkeypatch.setattr(kube_app, "HELM_ENV", helm_env)
    monkeypatch.setattr(chart_render, "HELM", binaries().helm)

    dbapi = db_api.reset_instance()
    app = dbapi.kube_app_create(
        {
            "name": "portieris",
            "app_version": APP_VERSION,
            "status": sysinv_constants.APP_UPLOAD_SUCCESS,
            "active": True,
            "app_metadata": {"behavior": {"platform_managed_app": "yes"}},
        }
    )
    application = kube_app.AppOperator.Application(app)
    Path(application.inst_charts_dir).mkdir(parents=True)
    (Path(application.inst_charts_dir) / chart_archive.name).write_bytes(chart_archive.read_bytes())
    # Cluster-wide leftovers of an earlier platform on the same cluster.
    plane.kubectl("delete", "clusterissuer", "system-local-ca", "--ignore-not-found")
    plane.kubectl(
        "delete", "secret", SIGSTORE_TRUST_ROOTS, "-n", "kube-system", "--ignore-not-found"
    )
    platform = Platform(plane=plane, root=root, dbapi=dbapi, app=app)
    platform.kubectl_apply(registry_secret())
    return platform


def example_platform(platform: Platform, mode: str) -> Platform:
    """The example simplex or duplex platform of the report."""
    cas = {name: TestCA.create(name) for name in ("Example Root CA", "system-local-ca", "Notary")}
    platform.cas = cas
    if mode == "simplex":
        platform.dbapi.system.system_mode = sysinv_constants.SYSTEM_MODE_SIMPLEX
        platform.add_controllers(1)
    else:
        platform.dbapi.system.system_mode = sysinv_constants.SYSTEM_MODE_DUPLEX
        platform.add_controllers(2)
    platform.install_ssl_ca("ssl_ca_9117284712345678901", cas["Example Root CA"].cert_pem)
    platform.create_platform_ca(cas["system-local-ca"], issuer=mode == "simplex")
    for name, managed, namespaces in PLATFORM_APPS:
        platform.add_application(name, managed, namespaces)
    platform.set_user_overrides(
        {
            "TrustedCACert": base64.b64encode(cas["Notary"].cert_pem).decode(),
            "defaultTrustServer": "https://notary.example.com:4443",
        }
    )
    return platform
