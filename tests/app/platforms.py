"""Example StarlingX platforms the application is applied on, and what each implies.

A platform is what sysinv's database and the cluster hold before `system application-apply
portieris`: the system mode and controllers, the trusted CA certificates installed with
`system certificate-install -m ssl_ca`, the platform CA (Secret and ClusterIssuer
system-local-ca, made at bootstrap), the other applications, and the operator's
`helm-override-update` values. The expectations below are derived from those facts alone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.pki import TestCA

REGISTRY_SECRET = "default-registry-key"
PLATFORM_CA = "system-local-ca"
SIGSTORE_TRUST_ROOTS = "portieris-sigstore-trust-roots"
IMAGE = "registry.local:9001/docker.io/starlingx/stx-portieris-webhook"


@cache
def ca(name: str) -> TestCA:
    return TestCA.create(name)


@cache
def public_key(name: str) -> str:
    """A Sigstore public key (a cosign key, a Rekor log's key) known by name."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class OtherApp:
    name: str
    platform_managed: bool
    namespaces: tuple[str, ...]


@dataclass(frozen=True)
class Platform:
    name: str
    system_mode: str
    controllers: int
    trusted_cas: tuple[str, ...]
    """CA names installed as ssl_ca certificates."""
    platform_ca: bool
    """bootstrap made Secret and ClusterIssuer system-local-ca."""
    other_apps: tuple[OtherApp, ...]
    user_overrides: dict[str, Any] = field(default_factory=dict)
    user_cas: tuple[str, ...] = ()
    """CA names the operator gives in TrustedCACert (base64 of PEM, the upstream form)."""
    sigstore_trust_roots: tuple[str, ...] = ()
    """Entries of the operator's Secret kube-system/portieris-sigstore-trust-roots."""
    user_trust_roots: tuple[str, ...] = ()
    """Entries the operator gives in sigstore.trustRoots (other keys than the Secret's)."""

    # --- what sysinv's database holds

    def database(self, app_version: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return {
            "system": {"system_type": "All-in-one", "system_mode": self.system_mode},
            "hosts": [{"hostname": f"controller-{n}"} for n in range(self.controllers)],
            "certificates": [
                {"uuid": f"uuid-{name}", "certtype": "ssl_ca", "signature": f"ssl_ca_{name}"}
                for name in self.trusted_cas
            ],
            "app": {
                "name": "portieris",
                "app_version": app_version,
                "app_metadata": metadata,
            },
            "other_apps": [
                {
                    "name": app.name,
                    "app_version": "1.0-1",
                    "status": "applied",
                    "app_metadata": {"behavior": {"platform_managed_app": app.platform_managed}},
                    "charts": {app.name: list(app.namespaces)},
                }
                for app in self.other_apps
            ],
        }

    def ssl_ca_files(self) -> dict[str, bytes]:
        """The PEM files sysinv keeps for the ssl_ca certificates, named by signature."""
        return {f"ssl_ca_{name}": ca(name).cert_pem for name in self.trusted_cas}

    def user_values(self) -> str:
        """The user overrides as `system helm-override-update --values` stores them."""
        values = dict(self.user_overrides)
        if self.user_cas:
            bundle = b"".join(ca(name).cert_pem for name in self.user_cas)
            values["TrustedCACert"] = base64.b64encode(bundle).decode()
        if self.user_trust_roots:
            roots = {name: public_key(f"user {name}") for name in self.user_trust_roots}
            values["sigstore"] = {"trustRoots": roots}
        return yaml.safe_dump(values)

    def trust_roots_secret(self) -> dict[str, Any] | None:
        """The operator's Secret of Sigstore trust roots in kube-system, if the platform has it."""
        if not self.sigstore_trust_roots:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": SIGSTORE_TRUST_ROOTS, "namespace": "kube-system"},
            "data": {
                name: base64.b64encode(public_key(name).encode()).decode()
                for name in self.sigstore_trust_roots
            },
        }

    # --- what the facts imply

    @property
    def replicas(self) -> int:
        return 1 if self.system_mode == "simplex" else self.controllers

    @property
    def expected_cas(self) -> set[bytes]:
        names = {*self.trusted_cas, *self.user_cas} | ({PLATFORM_CA} if self.platform_ca else set())
        return {ca(name).cert_pem for name in names}

    @property
    def expected_trust_roots(self) -> dict[str, str]:
        """The platform's entries, and the operator's, which win by name."""
        return {name: public_key(name) for name in self.sigstore_trust_roots} | {
            name: public_key(f"user {name}") for name in self.user_trust_roots
        }

    @property
    def expected_issuer(self) -> tuple[str, str | None]:
        """(kind, name) of the serving certificate's issuer; None: the chart's own Issuer."""
        return ("ClusterIssuer", PLATFORM_CA) if self.platform_ca else ("Issuer", None)

    @property
    def excluded_namespaces(self) -> set[str]:
        managed = {ns for app in self.other_apps if app.platform_managed for ns in app.namespaces}
        return {"kube-system", "portieris"} | managed

    @property
    def admitted_namespaces(self) -> set[str]:
        """Namespaces of applications that are not the platform's: their pods are checked."""
        return {ns for app in self.other_apps if not app.platform_managed for ns in app.namespaces}


CERT_MANAGER = OtherApp("cert-manager", True, ("cert-manager",))
OIDC = OtherApp("oidc-auth-apps", True, ("kube-system",))
VAULT = OtherApp("vault", True, ("vault",))
TENANT = OtherApp("tenant-app", False, ("tenant",))

SIMPLEX = Platform(
    name="simplex",
    system_mode="simplex",
    controllers=1,
    trusted_cas=("harbor-ca",),
    # A platform installed before bootstrap made system-local-ca: the chart's own issuer.
    platform_ca=False,
    other_apps=(CERT_MANAGER, TENANT),
    user_overrides={
        "defaultTrustServer": "https://notary.example.com:4443",
        # A notary root pinned by its certificate (the chart mounts it from a ConfigMap).
        "pinnedTrustRoots": [
            {
                "server": "https://notary.example.com:4443",
                "certificate": ca("registry.example.com/team-a/app").cert_pem.decode(),
            }
        ],
    },
    user_cas=("team-ca",),
    # No Secret on the platform: the operator's roots alone.
    user_trust_roots=("release-key",),
)
DUPLEX = Platform(
    name="duplex",
    system_mode="duplex",
    controllers=2,
    trusted_cas=("harbor-ca", "corporate-ca"),
    platform_ca=True,
    other_apps=(CERT_MANAGER, OIDC, VAULT, TENANT),
    user_overrides={
        "webHooks": {"timeoutSeconds": 20},
        # Notary roots pinned by key ID, for two servers.
        "pinnedTrustRoots": [
            {"server": "https://notary.example.com:4443", "keyID": "5e" * 32},
            {"server": "https://[fd00::5]:4443", "keyID": "a8" * 32},
        ],
    },
    # The operator repeats a CA the platform already trusts: it must appear once.
    user_cas=("corporate-ca",),
    # The operator replaces one of the platform's roots.
    sigstore_trust_roots=("rekor", "release-key"),
    user_trust_roots=("rekor",),
)
PLATFORMS = (SIMPLEX, DUPLEX)
