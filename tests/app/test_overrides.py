"""The system overrides computed from platform facts (pure functions)."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from k8sapp_portieris.common import constants, overrides
from k8sapp_portieris.common.errors import OverridesError

from tests.fixtures.pki import TestCA


@pytest.fixture(scope="module")
def cas() -> dict[str, TestCA]:
    return {name: TestCA.create(name) for name in ("ssl_ca", "system-local-ca", "operator")}


def pem(ca: TestCA) -> str:
    return ca.cert_pem.decode()


SIMPLEX = overrides.PlatformFacts(replicas=1, simplex=True)
DUPLEX = overrides.PlatformFacts(replicas=2, simplex=False)


@pytest.mark.parametrize(("facts", "replicas"), [(SIMPLEX, 1), (DUPLEX, 2)])
def test_replicas_follow_the_platform(facts: overrides.PlatformFacts, replicas: int) -> None:
    assert overrides.system_overrides(facts)["replicaCount"] == replicas


def test_simplex_runs_one_replica_whatever_the_controller_count() -> None:
    assert overrides.system_overrides(replace(SIMPLEX, replicas=2))["replicaCount"] == 1


@pytest.mark.parametrize("facts", [SIMPLEX, DUPLEX])
def test_the_disruption_budget_lets_one_replica_go(facts: overrides.PlatformFacts) -> None:
    budget = overrides.system_overrides(facts)["podDisruptionBudget"]
    assert budget == {"enabled": True, "minAvailable": "", "maxUnavailable": 1}


def test_zero_replicas_from_the_platform_is_an_error() -> None:
    with pytest.raises(OverridesError, match="0 replicas"):
        overrides.system_overrides(replace(DUPLEX, replicas=0))


def test_image_comes_from_the_local_registry_with_its_pull_secret() -> None:
    values = overrides.system_overrides(SIMPLEX)
    assert values["image"] == {
        "repository": "registry.local:9001/docker.io/starlingx/stx-portieris-webhook",
        "tag": constants.IMAGE_TAG,
    }
    assert values["imagePullSecrets"] == [{"name": "default-registry-key"}]


@pytest.mark.parametrize(
    ("issuer", "cert_manager", "expected"),
    [
        (True, True, (True, "ClusterIssuer", "system-local-ca")),
        (False, True, (True, "Issuer", "")),
        (False, False, (False, "Issuer", "")),
    ],
)
def test_serving_certificate_issuer(
    issuer: bool, cert_manager: bool, expected: tuple[bool, str, str]
) -> None:
    facts = replace(SIMPLEX, platform_issuer=issuer, cert_manager=cert_manager)
    values = overrides.system_overrides(facts)
    got = values["UseCertManager"], *values["certManagerIssuer"].values()
    assert got == expected


def test_ca_bundle_holds_platform_and_operator_cas_each_once(cas: dict[str, TestCA]) -> None:
    facts = replace(
        DUPLEX,
        trusted_ca_certs=(("ssl_ca one", pem(cas["ssl_ca"])),),
        platform_ca_certs=(
            ("system-local-ca tls.crt", pem(cas["system-local-ca"])),
            ("system-local-ca ca.crt", pem(cas["system-local-ca"])),  # a root: tls.crt == ca.crt
        ),
        user_overrides={
            "TrustedCACert": base64.b64encode(
                cas["operator"].cert_pem + cas["ssl_ca"].cert_pem
            ).decode()
        },
    )
    bundle = overrides.system_overrides(facts)["platform"]["trustedCACerts"]
    assert bundle == pem(cas["ssl_ca"]) + pem(cas["system-local-ca"]) + pem(cas["operator"])


def test_no_ca_at_all_is_an_empty_bundle() -> None:
    assert overrides.system_overrides(SIMPLEX)["platform"]["trustedCACerts"] == ""


def test_a_bad_platform_certificate_is_an_error_naming_it(cas: dict[str, TestCA]) -> None:
    leaf = cas["ssl_ca"].issue("not-a-ca")[0].decode()
    facts = replace(SIMPLEX, trusted_ca_certs=(("trusted CA certificate 1f2e", leaf),))
    with pytest.raises(OverridesError, match=r"trusted CA certificate 1f2e .* is not a CA"):
        overrides.system_overrides(facts)


def test_a_bad_operator_certificate_is_an_error_naming_it() -> None:
    facts = replace(SIMPLEX, user_overrides={"TrustedCACert": "%%%"})
    with pytest.raises(OverridesError, match="TrustedCACert"):
        overrides.system_overrides(facts)


def test_platform_namespaces_are_excluded() -> None:
    facts = replace(SIMPLEX, platform_namespaces=("cert-manager", "kube-system"))
    assert overrides.system_overrides(facts)["platform"]["excludedNamespaces"] == [
        "cert-manager",
        "kube-system",
    ]


@pytest.mark.parametrize(("updating", "policy"), [(True, "Ignore"), (False, "")])
def test_failure_policy_is_ignore_only_while_updating(updating: bool, policy: str) -> None:
    values = overrides.system_overrides(replace(SIMPLEX, updating=updating))
    assert values["platform"]["failurePolicy"] == policy


def test_platform_namespaces_are_kube_system_the_platforms_and_its_managed_apps() -> None:
    apps = [
        overrides.AppNamespaces("metrics-server", True, ("metrics-server",)),
        overrides.AppNamespaces("user-app", False, ("team-a",)),
        overrides.AppNamespaces("portieris", True, ("portieris",)),
        overrides.AppNamespaces("oidc-auth-apps", True, ("kube-system",)),
    ]
    got = overrides.platform_namespaces(["kube-system", "cert-manager", "flux-helm"], apps)
    assert got == ("cert-manager", "flux-helm", "kube-system", "metrics-server")


@pytest.mark.parametrize(
    ("metadata", "managed"),
    [
        ({"behavior": {"platform_managed_app": True}}, True),
        ({"behavior": {"platform_managed_app": "yes"}}, True),
        ({"behavior": {"platform_managed_app": "True"}}, True),
        ({"behavior": {"platform_managed_app": False}}, False),
        ({"behavior": {"platform_managed_app": "no"}}, False),
        ({"behavior": {}}, False),
        ({}, False),
        (None, False),
    ],
)
def test_platform_managed_is_read_as_sysinv_reads_it(metadata: object, managed: bool) -> None:
    assert overrides.is_platform_managed(metadata) is managed  # type: ignore[arg-type]


# --- Sigstore trust roots


def rekor_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_no_platform_trust_roots_writes_an_empty_map() -> None:
    assert overrides.system_overrides(SIMPLEX)["sigstore"] == {"trustRoots": {}}


def test_platform_trust_roots_become_sigstore_trust_roots(cas: dict[str, TestCA]) -> None:
    rekor = rekor_key()
    facts = replace(
        DUPLEX,
        sigstore_trust_roots=(("rekor", "\n" + rekor), ("fulcio", pem(cas["operator"]))),
    )
    assert overrides.system_overrides(facts)["sigstore"]["trustRoots"] == {
        "fulcio": pem(cas["operator"]),
        "rekor": rekor,
    }


def test_a_bad_platform_trust_root_is_an_error_naming_the_secret_and_entry(
    cas: dict[str, TestCA],
) -> None:
    facts = replace(SIMPLEX, sigstore_trust_roots=(("signer", cas["operator"].key_pem.decode()),))
    with pytest.raises(
        OverridesError,
        match=r"Secret kube-system/portieris-sigstore-trust-roots entry 'signer' holds a "
        r"PRIVATE KEY",
    ):
        overrides.system_overrides(facts)


def test_the_operators_trust_roots_are_not_system_overrides() -> None:
    # sysinv merges the operator's sigstore.trustRoots over these (maps merge).
    facts = replace(SIMPLEX, user_overrides={"sigstore": {"trustRoots": {"r": rekor_key()}}})
    assert overrides.system_overrides(facts)["sigstore"] == {"trustRoots": {}}
