"""RFC 3161 timestamps: proof, by a timestamp authority the policy trusts, of when a
signature existed.

The token's message imprint must be the hash of what cosign timestamps (the raw signature
bytes; for a legacy attestation layer the whole envelope), its signature must chain to the
configured authority's certificates, and its time is then the time the signature is known
to have been made.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import rfc3161_client
from cryptography import x509

from portieris_webhook.errors import VerificationError


@dataclass(frozen=True)
class TimestampChain:
    """The authority's certificates: its roots (self-signed) and the rest."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]


def timestamp_chain(pem: str, what: str) -> TimestampChain:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise VerificationError(f"{what} is not PEM certificates: {exc}") from None
    roots = tuple(c for c in certificates if c.issuer == c.subject)
    if not roots:
        raise VerificationError(f"{what} holds no root (self-signed) certificate")
    return TimestampChain(roots, tuple(c for c in certificates if c.issuer != c.subject))


def verified_time(response: bytes, message: bytes, chain: TimestampChain) -> datetime.datetime:
    """The time a timestamp response over `message` proves, once it verifies."""
    try:
        decoded = rfc3161_client.decode_timestamp_response(response)
    except (ValueError, rfc3161_client.VerificationError) as exc:
        raise VerificationError(f"the RFC 3161 timestamp cannot be read: {exc}") from None
    builder = rfc3161_client.VerifierBuilder(
        roots=list(chain.roots), intermediates=list(chain.intermediates)
    )
    try:
        builder.build().verify_message(decoded, message)
    except (ValueError, rfc3161_client.VerificationError) as exc:
        raise VerificationError(f"the RFC 3161 timestamp does not verify: {exc}") from None
    stamped = decoded.tst_info.gen_time
    return stamped if stamped.tzinfo else stamped.replace(tzinfo=datetime.UTC)
