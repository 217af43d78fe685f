"""The system overrides of the portieris chart, computed from a few platform facts.

Pure functions: the sysinv plugin (k8sapp_portieris.helm.portieris) gathers the facts from the
database and the cluster and hands them to `system_overrides`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from k8sapp_portieris.common import certificates, constants, trust_roots
from k8sapp_portieris.common.errors import OverridesError

# One replica may be down at a time, whatever the count: with one replica (simplex) a host lock
# can still evict it; with two or more, the others keep answering while one is evicted.
POD_DISRUPTION_BUDGET: Mapping[str, Any] = {
    "enabled": True,
    "minAvailable": "",
    "maxUnavailable": 1,
}

PemSource = tuple[str, str]
"""(where a PEM bundle comes from, its text)"""


@dataclass(frozen=True)
class PlatformFacts:
    """What the system overrides depend on."""

    replicas: int
    """sysinv's _num_replicas_for_platform_app(): provisioned controllers, at least one."""
    simplex: bool
    trusted_ca_certs: tuple[PemSource, ...] = ()
    """The platform's trusted CAs (system certificate-install -m ssl_ca / ca-certificate-install)."""
    platform_ca_certs: tuple[PemSource, ...] = ()
    """The platform's own CA (Secret system-local-ca), which signs registry.local."""
    sigstore_trust_roots: tuple[tuple[str, str], ...] = ()
    """(entry name, PEM text) of the platform's Secret of Sigstore trust roots
    (kube-system/portieris-sigstore-trust-roots), when it exists."""
    platform_issuer: bool = False
    """The ClusterIssuer system-local-ca exists."""
    cert_manager: bool = False
    """cert-manager's CRDs are installed."""
    platform_namespaces: tuple[str, ...] = ()
    """The namespaces of kube-system and of the platform's own applications."""
    updating: bool = False
    """The application is being updated or recovered, or the platform upgraded."""
    user_overrides: Mapping[str, Any] = field(default_factory=dict)
    """The operator's user overrides of the chart (parsed)."""


@dataclass(frozen=True)
class AppNamespaces:
    """An application known to sysinv and the namespaces of its charts."""

    name: str
    platform_managed: bool
    namespaces: tuple[str, ...]


def system_overrides(facts: PlatformFacts) -> dict[str, Any]:
    """The chart values the platform sets (the user overrides are merged over them by sysinv)."""
    replicas = replica_count(facts)
    return {
        "replicaCount": replicas,
        "podDisruptionBudget": dict(POD_DISRUPTION_BUDGET),
        "image": {
            "repository": f"{constants.LOCAL_REGISTRY}/{constants.IMAGE_REPOSITORY}",
            "tag": constants.IMAGE_TAG,
        },
        "imagePullSecrets": [{"name": constants.LOCAL_REGISTRY_SECRET}],
        **certificate_issuer(facts),
        "sigstore": {"trustRoots": sigstore_trust_roots(facts)},
        "platform": {
            "trustedCACerts": certificates.bundle(ca_certificates(facts)),
            "excludedNamespaces": list(facts.platform_namespaces),
            "failurePolicy": "Ignore" if facts.updating else "",
        },
    }


def replica_count(facts: PlatformFacts) -> int:
    if facts.simplex:
        return 1
    if facts.replicas < 1:
        raise OverridesError(f"the platform reports {facts.replicas} replicas for its apps")
    return facts.replicas


def certificate_issuer(facts: PlatformFacts) -> dict[str, Any]:
    """The webhook's serving certificate: the platform's CA when it has one, else the chart's own."""
    if facts.platform_issuer:
        issuer = {"kind": "ClusterIssuer", "name": constants.PLATFORM_ISSUER}
        return {"UseCertManager": True, "certManagerIssuer": issuer}
    # Empty name: the chart creates a self-signed CA and its Issuer in the release namespace.
    return {
        "UseCertManager": facts.cert_manager,
        "certManagerIssuer": {"kind": "Issuer", "name": ""},
    }


def ca_certificates(facts: PlatformFacts) -> list[certificates.CACertificate]:
    """The platform's trusted CAs, its own CA and the operator's, each once."""
    found: list[certificates.CACertificate] = []
    for source, text in (*facts.trusted_ca_certs, *facts.platform_ca_certs):
        found.extend(certificates.parse_ca_bundle(text, source))
    found.extend(certificates.parse_trusted_ca_cert(facts.user_overrides.get("TrustedCACert")))
    return certificates.deduplicate(found)


def sigstore_trust_roots(facts: PlatformFacts) -> dict[str, str]:
    """The platform's Sigstore trust roots, each checked. The operator's sigstore.trustRoots
    are merged over them by sysinv (maps merge): an entry of the same name replaces the
    platform's, and one set to null removes it."""
    source = (
        f"Secret {constants.SIGSTORE_TRUST_ROOTS_NAMESPACE}/{constants.SIGSTORE_TRUST_ROOTS_SECRET}"
    )
    names = [name for name, _ in facts.sigstore_trust_roots]
    if len(set(names)) != len(names):
        raise OverridesError(f"{source} names an entry twice")
    return trust_roots.parse_trust_roots(dict(facts.sigstore_trust_roots), source)


def is_platform_managed(metadata: Mapping[str, Any] | None) -> bool:
    """metadata.yaml behavior.platform_managed_app, read as sysinv reads it."""
    behavior = (metadata or {}).get("behavior") or {}
    managed = behavior.get("platform_managed_app") if isinstance(behavior, Mapping) else None
    if isinstance(managed, str):
        return managed.lower() in ("true", "yes", "y", "1")
    return managed is True


def platform_namespaces(base: Iterable[str], apps: Iterable[AppNamespaces]) -> tuple[str, ...]:
    """kube-system's and the platform's namespaces, and those of its managed applications,
    sorted, without the release namespace (the chart always leaves that one out)."""
    names = set(base)
    for app in apps:
        if app.platform_managed and app.name != constants.HELM_APP_PORTIERIS:
            names.update(app.namespaces)
    names.discard(constants.HELM_NS_PORTIERIS)
    return tuple(sorted(n for n in names if n))
