"""The sysinv helm plugin of the portieris chart: gathers the platform facts, returns the overrides.

The overrides themselves are computed by k8sapp_portieris.common.overrides from those facts.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from sysinv.common import constants as sysinv_constants
from sysinv.common import exception, kubernetes, utils
from sysinv.helm import base
from sysinv.helm import common as helm_common

from k8sapp_portieris.common import checks, constants, overrides
from k8sapp_portieris.common.errors import OverridesError

_UPDATING_STATES = (
    sysinv_constants.APP_UPDATE_IN_PROGRESS,
    sysinv_constants.APP_RECOVER_IN_PROGRESS,
)


class PortierisHelm(base.FluxCDBaseHelm):  # type: ignore[misc]  # sysinv is untyped
    """System overrides of the portieris chart."""

    CHART = constants.HELM_CHART_PORTIERIS
    HELM_RELEASE = constants.HELM_RELEASE_PORTIERIS
    SUPPORTED_NAMESPACES = [*base.BaseHelm.SUPPORTED_NAMESPACES, constants.HELM_NS_PORTIERIS]
    SUPPORTED_APP_NAMESPACES = {
        constants.HELM_APP_PORTIERIS: [
            *base.BaseHelm.SUPPORTED_NAMESPACES,
            constants.HELM_NS_PORTIERIS,
        ]
    }

    def get_namespaces(self) -> list[str]:
        return list(self.SUPPORTED_NAMESPACES)

    def get_overrides(self, namespace: str | None = None) -> dict[str, Any]:
        if namespace and namespace not in self.SUPPORTED_NAMESPACES:
            raise exception.InvalidHelmNamespace(chart=self.CHART, namespace=namespace)
        try:
            values = overrides.system_overrides(self.platform_facts())
        except OverridesError as exc:
            raise exception.SysinvException(f"portieris system overrides: {exc}") from exc
        all_overrides = {constants.HELM_NS_PORTIERIS: values}
        if namespace:
            return all_overrides[namespace]
        return all_overrides

    # --- facts

    def platform_facts(self) -> overrides.PlatformFacts:
        kube = kubernetes.KubeOperator()
        return overrides.PlatformFacts(
            replicas=self._num_replicas_for_platform_app(),
            simplex=utils.is_aio_simplex_system(self.dbapi),
            trusted_ca_certs=self._trusted_ca_certs(),
            platform_ca_certs=self._platform_ca_certs(kube),
            sigstore_trust_roots=self._sigstore_trust_roots(kube),
            platform_issuer=kube.get_clusterwide_custom_resource(
                constants.CERT_MANAGER_GROUP,
                constants.CERT_MANAGER_VERSION,
                "clusterissuers",
                constants.PLATFORM_ISSUER,
            )
            is not None,
            cert_manager=kube.get_custom_resource_definition(constants.CERT_MANAGER_CRD)
            is not None,
            platform_namespaces=self._platform_namespaces(),
            updating=self._updating(),
            user_overrides=self._user_overrides(),
        )

    def _app(self) -> Any:
        return self.dbapi.kube_app_get(constants.HELM_APP_PORTIERIS)

    def _user_overrides(self) -> dict[str, Any]:
        try:
            row = self.dbapi.helm_override_get(
                app_id=self._app().id,
                name=constants.HELM_CHART_PORTIERIS,
                namespace=constants.HELM_NS_PORTIERIS,
            )
        except exception.HelmOverrideNotFound:
            return {}
        return checks.parse_user_overrides(row["user_overrides"])

    def _updating(self) -> bool:
        if os.path.exists(sysinv_constants.USM_UPGRADE_IN_PROGRESS):
            return True
        return self._app().status in _UPDATING_STATES

    def _trusted_ca_certs(self) -> tuple[overrides.PemSource, ...]:
        """The ssl_ca certificates: a database row each, the PEM in a file named by signature."""
        found = []
        for cert in self.dbapi.certificate_get_list():
            if cert.certtype != sysinv_constants.CERT_MODE_SSL_CA:
                continue
            source = f"trusted CA certificate {cert.signature} (system certificate-list)"
            path = os.path.join(sysinv_constants.SSL_CERT_CA_LIST_SHARED_DIR, cert.signature)
            try:
                with open(path, encoding="utf-8") as f:
                    found.append((source, f.read()))
            except OSError as exc:
                raise OverridesError(f"{source}: cannot read {path}: {exc.strerror}") from exc
        return tuple(found)

    def _platform_ca_certs(self, kube: Any) -> tuple[overrides.PemSource, ...]:
        """The public certificates of Secret system-local-ca (never its key)."""
        secret = kube.kube_get_secret(constants.PLATFORM_CA_SECRET, constants.PLATFORM_CA_NAMESPACE)
        data = (secret.data or {}) if secret is not None else {}
        found = []
        for key in constants.PLATFORM_CA_KEYS:
            if not data.get(key):
                continue
            source = (
                f"platform CA Secret {constants.PLATFORM_CA_NAMESPACE}/"
                f"{constants.PLATFORM_CA_SECRET} {key}"
            )
            try:
                found.append((source, base64.b64decode(data[key], validate=True).decode()))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OverridesError(f"{source} is not base64 of a PEM certificate") from exc
        return tuple(found)

    def _sigstore_trust_roots(self, kube: Any) -> tuple[tuple[str, str], ...]:
        """The entries of the operator's Secret of Sigstore trust roots in kube-system (none
        when it does not exist), decoded; overrides.sigstore_trust_roots checks them."""
        secret = kube.kube_get_secret(
            constants.SIGSTORE_TRUST_ROOTS_SECRET, constants.SIGSTORE_TRUST_ROOTS_NAMESPACE
        )
        data = (secret.data or {}) if secret is not None else {}
        found = []
        for name in sorted(data):
            source = (
                f"Secret {constants.SIGSTORE_TRUST_ROOTS_NAMESPACE}/"
                f"{constants.SIGSTORE_TRUST_ROOTS_SECRET} entry {name!r}"
            )
            try:
                found.append((name, base64.b64decode(data[name] or "", validate=True).decode()))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OverridesError(f"{source} is not base64 of PEM text") from exc
        return tuple(found)

    def _platform_namespaces(self) -> tuple[str, ...]:
        """kube-system, the platform's namespaces, and those of its managed applications."""
        apps = []
        for app in self.dbapi.kube_app_get_all():
            managed = overrides.is_platform_managed(app.app_metadata)
            if not managed or app.name == constants.HELM_APP_PORTIERIS:
                continue
            charts = self._operator.get_helm_application_namespaces(app.name)
            namespaces = tuple(
                ns for chart_namespaces in charts.values() for ns in chart_namespaces
            )
            apps.append(overrides.AppNamespaces(app.name, managed, namespaces))
        base_namespaces = [helm_common.HELM_NS_KUBE_SYSTEM, *helm_common.PRIVILEGED_NS]
        return overrides.platform_namespaces(base_namespaces, apps)
