"""Whether the signatures found for an image satisfy one authority of a policy (pure).

One piece of evidence passes an authority when every step passes, cheapest first:

1. the signature verifies over the exact signed bytes, with the authority's key, or, for a
   keyless authority, with the key of the certificate the signature carries;
2. with a transparency log configured: the entry the signature carries is the log's (SET
   or inclusion proof) and is about this signature, signer and payload; its integrated
   time, when the SET signs it (a proof alone does not), is when the signature was made;
3. with a timestamp authority configured: the timestamp the signature carries verifies
   over the signature and chains to the authority; its time is when it was made;
4. keyless: at least one of those times exists (never the current clock), the certificate
   chains to the configured roots at each of them, is for code signing, and names an
   accepted identity (issuer and subject, regular expressions matched in full);
5. what is signed names this image: a cosign payload with its type, this digest (the one
   computed from the registry's manifest body) and this repository; or an in-toto
   statement whose subject is this digest, with the predicate type wanted.

An authority without `attestations` is satisfied by one passing signature; with them, by
one passing attestation of each predicate type listed (as in policy-controller).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from portieris_webhook.errors import VerificationError
from portieris_webhook.images import ImageReference
from portieris_webhook.policy.sigstore_part import Authority
from portieris_webhook.sigstore.certificates import (
    CertificateAuthority,
    leaf_key,
    load_der,
    signer_identity,
    verify_chain,
)
from portieris_webhook.sigstore.evidence import (
    ATTESTATION,
    IN_TOTO_PAYLOAD_TYPE,
    Evidence,
    Unreadable,
)
from portieris_webhook.sigstore.keys import PublicKey, der, verify_signature
from portieris_webhook.sigstore.statements import (
    COSIGN_SIGN_PREDICATE,
    parse_signature_payload,
    parse_statement,
    same_repository,
)
from portieris_webhook.sigstore.timestamps import TimestampChain, verified_time
from portieris_webhook.sigstore.tlog import verify_binding, verify_entry

MAX_REASONS = 4
"""Reasons quoted per authority in a deny message; the rest are counted."""


@dataclass(frozen=True)
class AuthorityTrust:
    """An authority with the keys and certificates it names, loaded."""

    authority: Authority
    keys: tuple[PublicKey, ...] = ()
    ca: CertificateAuthority | None = None
    log_keys: tuple[PublicKey, ...] = ()
    timestamps: TimestampChain | None = None


@dataclass(frozen=True)
class Subject:
    """The image being decided and the digest its manifest body hashes to."""

    image: ImageReference
    digest: str


@dataclass(frozen=True)
class Outcome:
    """Whether an authority is satisfied, and otherwise why not."""

    authority: str
    passed: bool
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.passed:
            return f"authority {self.authority}: satisfied"
        shown = "; ".join(self.reasons[:MAX_REASONS])
        more = len(self.reasons) - MAX_REASONS
        if more > 0:
            shown += f"; and {more} more"
        return f"authority {self.authority}: {shown}"


def evaluate(
    trust: AuthorityTrust, evidence: Iterable[Evidence | Unreadable], subject: Subject
) -> Outcome:
    """Whether `evidence` satisfies the authority for `subject`."""
    name = trust.authority.name
    signed = False
    attested: set[str] = set()
    reasons: list[str] = []
    for item in evidence:
        if isinstance(item, Unreadable):
            reasons.append(f"{item.where}: {item.reason}")
            continue
        try:
            predicate = check_evidence(trust, item, subject)
        except VerificationError as exc:
            reasons.append(f"{item.where}: {exc}")
            continue
        if predicate is None:
            signed = True
        else:
            attested.add(predicate)
    rules = trust.authority.attestations
    if not rules:
        if signed:
            return Outcome(name, True)
        return Outcome(name, False, tuple(reasons) or ("no signature found",))
    missing = [r.predicate_type for r in rules if r.predicate_type not in attested]
    if not missing:
        return Outcome(name, True)
    wanted = f"no verified attestation of type {', '.join(missing)}"
    return Outcome(name, False, (wanted, *reasons))


def check_evidence(trust: AuthorityTrust, item: Evidence, subject: Subject) -> str | None:
    """Steps 1-5 for one piece of evidence: None for a passing signature, the predicate
    type of a passing attestation; VerificationError saying which step failed."""
    signer = _signer(trust, item)
    times = _proven_times(trust, item, signer)
    if trust.ca is not None:
        _check_certificate(trust, item, times)
    return _check_statement(item, subject)


def _signer(trust: AuthorityTrust, item: Evidence) -> bytes:
    """Step 1: who made the signature, as the log must name them (the certificate's DER
    for keyless, the key's DER for a key)."""
    if trust.ca is not None:
        if item.certificate is None:
            raise VerificationError("carries no certificate (keyless authority)")
        key = leaf_key(load_der(item.certificate, "the signing certificate"))
        if not verify_signature(key, item.signature, item.signed, _keyless_hash(key)):
            raise VerificationError("the signature does not verify with its certificate's key")
        return item.certificate
    algorithm = trust.authority.key.hash_algorithm if trust.authority.key else "sha256"
    for key in trust.keys:
        if verify_signature(key, item.signature, item.signed, algorithm):
            return der(key)
    raise VerificationError("the signature does not verify with the authority's key")


def _keyless_hash(key: PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size > 256:
        return "sha384"
    return "sha256"


def _proven_times(
    trust: AuthorityTrust, item: Evidence, signer: bytes
) -> tuple[datetime.datetime, ...]:
    """Steps 2 and 3: when the signature was made, by each proof the authority asks for."""
    times = []
    if trust.authority.ctlog.enabled:
        if item.log_entry is None:
            raise VerificationError("carries no transparency log entry")
        verify_entry(item.log_entry, trust.log_keys)
        verify_binding(item.log_entry, item, signer)
        if item.log_entry.signed_entry_timestamp is not None:
            # Only the SET signs integratedTime; an inclusion proof covers the body alone
            # (as sigstore-go: never use the time of an entry with only a proof).
            times.append(
                datetime.datetime.fromtimestamp(item.log_entry.integrated_time, datetime.UTC)
            )
    if trust.timestamps is not None:
        if item.timestamp is None:
            raise VerificationError("carries no RFC 3161 timestamp")
        times.append(verified_time(item.timestamp, item.timestamped, trust.timestamps))
    return tuple(times)


def _check_certificate(
    trust: AuthorityTrust, item: Evidence, times: tuple[datetime.datetime, ...]
) -> None:
    """Step 4."""
    assert trust.ca is not None and trust.authority.keyless is not None
    if not times:
        raise VerificationError(
            "nothing proves when it was signed (no log entry or timestamp is configured)"
        )
    leaf = load_der(item.certificate or b"", "the signing certificate")
    carried = tuple(load_der(c, "a chain certificate") for c in item.chain)
    for at in times:
        verify_chain(leaf, carried, trust.ca, at)
    identity = signer_identity(leaf)
    accepted = trust.authority.keyless.identities
    if not any(i.accepts(identity.issuer, s) for i in accepted for s in identity.subjects):
        seen = ", ".join(identity.subjects) or "no subject"
        wanted = "; ".join(i.describe() for i in accepted)
        raise VerificationError(
            f"signed by {seen} from issuer {identity.issuer or '(none)'}, which is not an "
            f"accepted identity ({wanted})"
        )


def _check_statement(item: Evidence, subject: Subject) -> str | None:
    """Step 5."""
    if item.kind != ATTESTATION:
        claim = parse_signature_payload(item.statement)
        if claim.digest != subject.digest:
            raise VerificationError(f"signs {claim.digest}, not {subject.digest}")
        if not same_repository(claim.docker_reference, subject.image):
            raise VerificationError(
                f"signs repository {claim.docker_reference}, not {subject.image.repository}"
            )
        return None
    assert item.envelope is not None
    if item.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"payload type {item.envelope.payload_type!r} is not in-toto")
    statement = parse_statement(item.statement)
    algorithm, _, hexpart = subject.digest.partition(":")
    if algorithm != "sha256" or hexpart not in statement.subject_digests:
        raise VerificationError(f"attests to other subjects than {subject.digest}")
    if statement.predicate_type == COSIGN_SIGN_PREDICATE:
        return None
    return statement.predicate_type
