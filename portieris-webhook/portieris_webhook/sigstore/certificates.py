"""Keyless signing certificates: the chain to the configured roots at the proven time, and
the identity a Fulcio-shaped certificate carries.

A Fulcio certificate names the signer in its SubjectAlternativeName (an e-mail address or
a URI) and the OIDC issuer that vouched for them in extension 1.3.6.1.4.1.57264.1.8 (a DER
UTF8String) or, in older certificates, 1.3.6.1.4.1.57264.1.1 (the raw string). The leaf
must allow digital signatures and code signing. The chain is checked at the time a log
entry or a timestamp proves the signature was made: a leaf lives minutes, so the current
time says nothing about it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import (
    VerificationError as ChainError,
)

from portieris_webhook.errors import VerificationError
from portieris_webhook.sigstore.keys import PublicKey, checked_key

ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
MAX_CHAIN_DEPTH = 4


@dataclass(frozen=True)
class SignerIdentity:
    issuer: str
    subjects: tuple[str, ...]
    """Every e-mail address and URI of the SubjectAlternativeName."""


@dataclass(frozen=True)
class CertificateAuthority:
    """Trust anchors (self-signed) and intermediates the configuration names."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]


def certificate_authority(pem: str, what: str) -> CertificateAuthority:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise VerificationError(f"{what} is not PEM certificates: {exc}") from None
    roots = tuple(c for c in certificates if c.issuer == c.subject)
    if not roots:
        raise VerificationError(f"{what} holds no root (self-signed) certificate")
    others = tuple(c for c in certificates if c.issuer != c.subject)
    return CertificateAuthority(roots, others)


def load_der(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise VerificationError(f"{what} is not a certificate: {exc}") from None


def _ca_policy() -> ExtensionPolicy:
    # Code-signing intermediates (Fulcio's) carry an ExtendedKeyUsage, which the WebPKI
    # CA profile forbids.
    return ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )


def _leaf_policy() -> ExtensionPolicy:
    # The leaf is checked for digitalSignature and codeSigning below; the client profile
    # would demand clientAuth instead.
    return ExtensionPolicy.permit_all()


def verify_chain(
    leaf: x509.Certificate,
    carried: tuple[x509.Certificate, ...],
    authority: CertificateAuthority,
    at: datetime.datetime,
) -> None:
    """The leaf chains to one of the authority's roots, every certificate valid `at`."""
    builder = (
        PolicyBuilder()
        .store(Store(list(authority.roots)))
        .time(at)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_ca_policy(), ee_policy=_leaf_policy())
    )
    try:
        builder.build_client_verifier().verify(leaf, list(authority.intermediates + carried))
    except ChainError as exc:
        raise VerificationError(
            f"the certificate does not chain to the configured roots at {at:%Y-%m-%dT%H:%M:%SZ}: "
            f"{exc}"
        ) from None
    _check_usage(leaf)


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise VerificationError(f"the signing certificate lacks {exc.oid.dotted_string}") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise VerificationError(
            "the signing certificate is not for code signing (KeyUsage digitalSignature and "
            "ExtendedKeyUsage codeSigning)"
        )


def signer_identity(leaf: x509.Certificate) -> SignerIdentity:
    """The issuer and subjects a Fulcio-shaped certificate names."""
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SignerIdentity(_issuer(leaf), ())
    subjects = tuple(names.get_values_for_type(x509.RFC822Name)) + tuple(
        names.get_values_for_type(x509.UniformResourceIdentifier)
    )
    return SignerIdentity(_issuer(leaf), subjects)


def _issuer(leaf: x509.Certificate) -> str:
    for oid in (ISSUER_V2, ISSUER_V1):
        try:
            value = leaf.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        return _utf8_string(raw) if oid == ISSUER_V2 else raw.decode("utf-8", "replace")
    return ""


def _utf8_string(raw: bytes) -> str:
    """A DER UTF8String (tag 12) with a short or long length."""
    if len(raw) < 2 or raw[0] != 0x0C:
        return ""
    length, offset = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[offset : offset + length].decode("utf-8", "replace")


def leaf_key(leaf: x509.Certificate) -> PublicKey:
    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationError(f"the signing certificate's key is not usable: {exc}") from None
    return checked_key(key, "the signing certificate's key")
