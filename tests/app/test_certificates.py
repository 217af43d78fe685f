"""The CA bundle's certificates: each parsed as an X.509 CA, bad ones named, duplicates dropped."""

from __future__ import annotations

import base64

import pytest

from k8sapp_portieris.common import certificates
from k8sapp_portieris.common.errors import OverridesError

from tests.fixtures.pki import TestCA


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create("operator CA")


@pytest.fixture(scope="module")
def other_ca() -> TestCA:
    return TestCA.create("second CA")


def test_a_pem_bundle_gives_each_ca_certificate(ca: TestCA, other_ca: TestCA) -> None:
    text = (ca.cert_pem + other_ca.cert_pem).decode()
    parsed = certificates.parse_ca_bundle(text, "bundle")
    assert [c.subject for c in parsed] == [
        "CN=operator CA,O=portieris tests",
        "CN=second CA,O=portieris tests",
    ]
    assert certificates.bundle(parsed) == text


def test_the_upstream_base64_form_of_trusted_ca_cert_is_accepted(ca: TestCA) -> None:
    encoded = base64.b64encode(ca.cert_pem).decode()
    (parsed,) = certificates.parse_trusted_ca_cert(encoded)
    assert parsed.pem == ca.cert_pem.decode()


def test_base64_may_be_wrapped_over_lines(ca: TestCA) -> None:
    encoded = base64.encodebytes(ca.cert_pem).decode()  # 76-column lines
    assert certificates.parse_trusted_ca_cert(encoded)[0].pem == ca.cert_pem.decode()


@pytest.mark.parametrize("empty", [None, ""])
def test_no_trusted_ca_cert_means_no_certificate(empty: str | None) -> None:
    assert certificates.parse_trusted_ca_cert(empty) == []


def test_the_same_certificate_from_two_sources_is_kept_once(ca: TestCA, other_ca: TestCA) -> None:
    first = certificates.parse_ca_bundle(ca.cert_pem.decode(), "platform")
    second = certificates.parse_ca_bundle((other_ca.cert_pem + ca.cert_pem).decode(), "operator")
    unique = certificates.deduplicate([*first, *second])
    assert [c.source for c in unique] == ["platform", "operator certificate 1"]


def corrupt(pem: bytes) -> str:
    lines = pem.decode().splitlines()
    lines[2] = "A" * len(lines[2])
    return "\n".join(lines) + "\n"


def leaf(ca: TestCA) -> str:
    return ca.issue("registry.example")[0].decode()


@pytest.mark.parametrize(
    ("make", "source", "message"),
    [
        (lambda ca: leaf(ca), "TrustedCACert", "TrustedCACert (CN=registry.example"),
        (lambda ca: leaf(ca), "TrustedCACert", "is not a CA certificate"),
        (lambda ca: corrupt(ca.cert_pem), "TrustedCACert", "is not a valid X.509 certificate"),
        (lambda ca: "-----BEGIN CERTIFICATE-----\nno end", "TrustedCACert", "holds no PEM"),
        (lambda ca: ca.key_pem.decode(), "TrustedCACert", "PRIVATE KEY block, not a CERTIFICATE"),
        (
            lambda ca: ca.cert_pem.decode() + "trailing words",
            "TrustedCACert",
            "text outside its PEM blocks",
        ),
        (
            lambda ca: ca.cert_pem.decode() + leaf(ca),
            "TrustedCACert",
            "TrustedCACert certificate 2 (CN=registry.example",
        ),
    ],
)
def test_a_bad_certificate_is_an_error_naming_it(
    ca: TestCA, make: object, source: str, message: str
) -> None:
    text = make(ca)  # type: ignore[operator]
    with pytest.raises(OverridesError, match=message.replace("(", r"\(")):
        certificates.parse_trusted_ca_cert(text, source)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bm90IGEgY2VydGlmaWNhdGU=", "holds no PEM certificate"),  # base64 of "not a certificate"
        ("%%% not base64 %%%", "neither a PEM bundle nor base64 of one"),
        (42, "must be a string"),
    ],
)
def test_a_bad_trusted_ca_cert_value_is_an_error(value: object, message: str) -> None:
    with pytest.raises(OverridesError, match=message):
        certificates.parse_trusted_ca_cert(value)
