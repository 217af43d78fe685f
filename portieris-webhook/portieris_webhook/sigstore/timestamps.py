"""RFC 3161 timestamps: proof, by a timestamp authority the policy trusts, of when a
signature existed.

The token's message imprint must be the hash of what cosign timestamps (the raw signature
bytes; for a legacy attestation layer the whole envelope), its signature must chain to the
configured authority's certificates, and its time is then the time the signature is known
to have been made.
"""

from __future__ import annotations

import datetime

import rfc3161_client

from portieris_webhook.errors import VerificationError
from portieris_webhook.sigstore.certificates import CertificateAuthority, certificate_authority

TimestampChain = CertificateAuthority
"""A timestamp authority's certificates: its roots (self-signed) and the rest."""
timestamp_chain = certificate_authority
"""The timestamp authority a policy's `certChain` names (read as a keyless `ca-cert` is)."""


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
