"""CA certificates for the webhook's trust bundle: parsed, checked as CAs, deduplicated."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from k8sapp_portieris.common.errors import OverridesError

_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>[A-Za-z0-9+/=\s]*?)-----END (?P=label)-----"
)


@dataclass(frozen=True)
class CACertificate:
    """One CA certificate, with where it came from (for messages)."""

    source: str
    subject: str
    fingerprint: str
    pem: str


def parse_ca_bundle(text: str, source: str) -> list[CACertificate]:
    """Every certificate of a PEM bundle, each checked to be an X.509 CA certificate.

    `source` names the bundle in error messages (e.g. "TrustedCACert" or an ssl_ca signature).
    """
    blocks = list(_PEM_BLOCK.finditer(text))
    leftover = _PEM_BLOCK.sub("", text).strip()
    if not blocks:
        raise OverridesError(f"{source} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if leftover:
        raise OverridesError(
            f"{source} has text outside its PEM blocks ({leftover[:40]!r}): give only certificates"
        )
    certificates = []
    for number, block in enumerate(blocks, start=1):
        where = f"{source} certificate {number}" if len(blocks) > 1 else source
        if block.group("label") != "CERTIFICATE":
            raise OverridesError(
                f"{where} is a {block.group('label')} block, not a CERTIFICATE: "
                "a trust bundle holds CA certificates only"
            )
        certificates.append(_ca_certificate(block.group(0), where))
    return certificates


def _ca_certificate(pem: str, where: str) -> CACertificate:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise OverridesError(f"{where} is not a valid X.509 certificate: {exc}") from exc
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise OverridesError(
            f"{where} ({subject}) is not a CA certificate (it lacks basicConstraints CA:TRUE): "
            "give the certificate of the CA that signed the server's certificate"
        )
    return CACertificate(
        source=where,
        subject=subject,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


def parse_trusted_ca_cert(value: object, key: str = "TrustedCACert") -> list[CACertificate]:
    """The operator's CA certificates: a PEM bundle, or base64 of one (the upstream app's form)."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise OverridesError(f"{key} must be a string (a PEM bundle), not {type(value).__name__}")
    if "-----BEGIN" in value:
        return parse_ca_bundle(value, key)
    try:
        decoded = base64.b64decode("".join(value.split()), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OverridesError(
            f"{key} is neither a PEM bundle nor base64 of one: give the CA certificates in PEM"
        ) from exc
    return parse_ca_bundle(decoded, f"{key} (base64)")


def deduplicate(certificates: Iterable[CACertificate]) -> list[CACertificate]:
    """The certificates in order, each one once (the same certificate from two sources)."""
    seen: set[str] = set()
    unique = []
    for cert in certificates:
        if cert.fingerprint not in seen:
            seen.add(cert.fingerprint)
            unique.append(cert)
    return unique


def bundle(certificates: Iterable[CACertificate]) -> str:
    """The PEM bundle of the certificates ("" for none)."""
    return "".join(cert.pem for cert in certificates)
