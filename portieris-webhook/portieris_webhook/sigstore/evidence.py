"""What one cosign signature or attestation found in a registry carries, read strictly.

Two forms exist and both are read into the same `Evidence`:

- **legacy** (cosign's tag schema `sha256-<hex>.sig` / `.att`, or the same manifests as
  OCI referrers): one manifest layer per signature. A signature layer
  (`application/vnd.dev.cosign.simplesigning.v1+json`) is the signed payload itself, with
  the base64 signature, the PEM certificate and chain, the Rekor bundle (a signed entry
  timestamp) and an RFC 3161 timestamp in the layer's annotations. An attestation layer
  (`application/vnd.dsse.envelope.v1+json`) is a DSSE envelope.
- **Sigstore bundles** (`application/vnd.dev.sigstore.bundle.v0.3+json`, attached as an
  OCI referrer by `cosign ... --new-bundle-format`): one JSON document holding a DSSE
  envelope (or a message signature), the certificate or a public key hint, the log entries
  with their inclusion promise and proof, and the timestamps.

Nothing here trusts anything: it only turns bytes into typed evidence, refusing what is
malformed with a VerificationError naming where it was found. authority.py decides.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.errors import VerificationError
from portieris_webhook.kits.nesting import loads

SIMPLE_SIGNING_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = (BUNDLE_V03, "application/vnd.dev.sigstore.bundle+json;version=0.3")
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"

SIGNATURE = "signature"
ATTESTATION = "attestation"
MAX_CHAIN_CERTIFICATES = 10


@dataclass(frozen=True)
class InclusionProof:
    """A Merkle inclusion proof of a log entry and the signed checkpoint it ends in."""

    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class LogEntry:
    """A Rekor entry as the registry carries it: the canonicalized body and its proofs."""

    body: bytes
    integrated_time: int
    log_index: int
    log_id: bytes
    """SHA-256 of the log's public key (DER)."""
    signed_entry_timestamp: bytes | None = None
    proof: InclusionProof | None = None


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the payload, its type, and its signatures (at least one)."""

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    def pae(self) -> bytes:
        """The bytes DSSE signs: PAE(type, body)."""
        kind = self.payload_type.encode()
        return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(self.payload), self.payload)


@dataclass(frozen=True)
class Evidence:
    """One signature (or one DSSE signature of an attestation), with what vouches for it."""

    where: str
    """Where it was found, for messages."""
    kind: str
    """SIGNATURE or ATTESTATION."""
    statement: bytes
    """What names the image: a simple-signing payload, or an in-toto statement."""
    signed: bytes
    """The exact bytes the signature is over (the payload, or the DSSE PAE)."""
    signature: bytes
    certificate: bytes | None = None
    """The signing certificate (DER), for keyless signatures."""
    chain: tuple[bytes, ...] = ()
    """Intermediates (DER) the signature carries: untrusted, only to build a chain."""
    log_entry: LogEntry | None = None
    timestamp: bytes | None = None
    """An RFC 3161 timestamp response (DER)."""
    timestamped: bytes = b""
    """What the timestamp's message imprint must cover."""
    envelope: Envelope | None = None
    document: bytes = b""
    """The envelope as stored (a legacy attestation layer), which some log entries hash."""


@dataclass(frozen=True)
class Unreadable:
    """A signature layer found that could not be read as one, and why."""

    where: str
    reason: str


def _b64(value: Any, what: str, where: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{where}: {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{where}: {what} is not valid base64") from None


def _integer(value: Any, what: str, where: str) -> int:
    """An int64 as JSON or protobuf-JSON (a decimal string) writes it."""
    if isinstance(value, bool):
        raise VerificationError(f"{where}: {what} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise VerificationError(f"{where}: {what} must be an integer")


def _mapping(value: Any, what: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise VerificationError(f"{where}: {what} must be a JSON object")
    return value


def pem_certificates(text: str, where: str) -> tuple[bytes, ...]:
    """The certificates (DER) of a PEM bundle, at most MAX_CHAIN_CERTIFICATES."""
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise VerificationError(f"{where}: not a PEM certificate: {exc}") from None
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise VerificationError(
            f"{where}: {len(certificates)} certificates; at most {MAX_CHAIN_CERTIFICATES}"
        )
    from cryptography.hazmat.primitives.serialization import Encoding

    return tuple(c.public_bytes(Encoding.DER) for c in certificates)


def legacy_log_entry(annotation: str, where: str) -> LogEntry:
    """cosign's `dev.sigstore.cosign/bundle` annotation: a SET and the entry it signs."""
    doc = _mapping(loads(annotation, f"{where}: Rekor bundle", VerificationError), "it", where)
    payload = _mapping(doc.get("Payload"), "Payload", where)
    return LogEntry(
        body=_b64(payload.get("body"), "Payload.body", where),
        integrated_time=_integer(payload.get("integratedTime"), "integratedTime", where),
        log_index=_integer(payload.get("logIndex"), "logIndex", where),
        log_id=_hex(payload.get("logID"), "logID", where),
        signed_entry_timestamp=_b64(doc.get("SignedEntryTimestamp"), "SignedEntryTimestamp", where),
    )


def _hex(value: Any, what: str, where: str) -> bytes:
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise VerificationError(f"{where}: {what} must be a hex string")


def legacy_timestamp(annotation: str, where: str) -> bytes:
    """cosign's `dev.sigstore.cosign/rfc3161timestamp` annotation: the TSA's response."""
    doc = _mapping(loads(annotation, f"{where}: timestamp", VerificationError), "it", where)
    return _b64(doc.get("SignedRFC3161Timestamp"), "SignedRFC3161Timestamp", where)


def legacy_layer(
    media_type: str, annotations: Mapping[str, Any], blob: bytes, where: str
) -> Evidence:
    """One layer of a cosign signature or attestation manifest, and its blob."""
    if media_type not in (SIMPLE_SIGNING_LAYER, DSSE_LAYER):
        raise VerificationError(f"{where}: layer media type {media_type!r} is not cosign's")
    text = {k: v for k, v in annotations.items() if isinstance(v, str)}
    certificate: bytes | None = None
    chain: tuple[bytes, ...] = ()
    if text.get(CERTIFICATE_ANNOTATION):
        certificate = pem_certificates(text[CERTIFICATE_ANNOTATION], f"{where}: certificate")[0]
    if text.get(CHAIN_ANNOTATION):
        chain = pem_certificates(text[CHAIN_ANNOTATION], f"{where}: chain")
    log_entry = (
        legacy_log_entry(text[BUNDLE_ANNOTATION], where) if text.get(BUNDLE_ANNOTATION) else None
    )
    timestamp = (
        legacy_timestamp(text[TIMESTAMP_ANNOTATION], where)
        if text.get(TIMESTAMP_ANNOTATION)
        else None
    )
    if media_type == SIMPLE_SIGNING_LAYER:
        signature = _b64(text.get(SIGNATURE_ANNOTATION), SIGNATURE_ANNOTATION, where)
        return Evidence(
            where,
            SIGNATURE,
            blob,
            blob,
            signature,
            certificate,
            chain,
            log_entry,
            timestamp,
            timestamped=signature,
        )
    envelope = parse_envelope(blob, where)
    return Evidence(
        where,
        ATTESTATION,
        envelope.payload,
        envelope.pae(),
        envelope.signatures[0],
        certificate,
        chain,
        log_entry,
        timestamp,
        timestamped=blob,
        document=blob,
        envelope=envelope,
    )


def parse_envelope(data: bytes | Mapping[str, Any], where: str) -> Envelope:
    """A DSSE envelope (JSON bytes or already decoded) with exactly one signature, as cosign
    writes it: several would leave open which of them the log entry and timestamp prove."""
    doc = (
        data
        if isinstance(data, Mapping)
        else loads(data, f"{where}: DSSE envelope", VerificationError)
    )
    doc = _mapping(doc, "the DSSE envelope", where)
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise VerificationError(f"{where}: the DSSE envelope has no payloadType")
    signatures = doc.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise VerificationError(f"{where}: the DSSE envelope must carry exactly one signature")
    entry = _mapping(signatures[0], "signatures[0]", where)
    return Envelope(
        payload_type=payload_type,
        payload=_b64(doc.get("payload"), "payload", where),
        signatures=(_b64(entry.get("sig"), "signatures[0].sig", where),),
    )


def parse_bundle(data: bytes, where: str) -> Evidence:
    """A Sigstore bundle v0.3 (JSON, as protobuf-specs define it)."""
    doc = _mapping(loads(data, f"{where}: Sigstore bundle", VerificationError), "the bundle", where)
    if doc.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise VerificationError(f"{where}: bundle media type {doc.get('mediaType')!r} is not v0.3")
    material = _mapping(doc.get("verificationMaterial"), "verificationMaterial", where)
    certificate = _bundle_certificate(material, where)
    entries = material.get("tlogEntries") or []
    if not isinstance(entries, list) or len(entries) > 1:
        raise VerificationError(f"{where}: a bundle may carry at most one log entry")
    log_entry = _bundle_entry(entries[0], where) if entries else None
    timestamp = _bundle_timestamp(material, where)
    if "dsseEnvelope" in doc:
        envelope = parse_envelope(_mapping(doc["dsseEnvelope"], "dsseEnvelope", where), where)
        return Evidence(
            where,
            ATTESTATION,
            envelope.payload,
            envelope.pae(),
            envelope.signatures[0],
            certificate,
            (),
            log_entry,
            timestamp,
            timestamped=envelope.signatures[0],
            envelope=envelope,
        )
    raise VerificationError(
        f"{where}: the bundle holds no DSSE envelope (cosign signs images in bundles as DSSE)"
    )


def _bundle_certificate(material: Mapping[str, Any], where: str) -> bytes | None:
    if "certificate" in material:
        return _b64(
            _mapping(material["certificate"], "certificate", where).get("rawBytes"),
            "certificate",
            where,
        )
    if "x509CertificateChain" in material:
        chain = _mapping(material["x509CertificateChain"], "x509CertificateChain", where)
        certificates = chain.get("certificates")
        if not isinstance(certificates, list) or not certificates:
            raise VerificationError(f"{where}: x509CertificateChain holds no certificate")
        return _b64(
            _mapping(certificates[0], "certificates[0]", where).get("rawBytes"),
            "certificate",
            where,
        )
    if "publicKey" in material:
        return None
    raise VerificationError(f"{where}: the bundle names neither a certificate nor a public key")


def _bundle_entry(value: Any, where: str) -> LogEntry:
    entry = _mapping(value, "tlogEntries[0]", where)
    promise = entry.get("inclusionPromise")
    proof = entry.get("inclusionProof")
    return LogEntry(
        body=_b64(entry.get("canonicalizedBody"), "canonicalizedBody", where),
        integrated_time=_integer(entry.get("integratedTime"), "integratedTime", where),
        log_index=_integer(entry.get("logIndex"), "logIndex", where),
        log_id=_b64(
            _mapping(entry.get("logId"), "logId", where).get("keyId"), "logId.keyId", where
        ),
        signed_entry_timestamp=(
            _b64(
                _mapping(promise, "inclusionPromise", where).get("signedEntryTimestamp"),
                "signedEntryTimestamp",
                where,
            )
            if promise is not None
            else None
        ),
        proof=_inclusion_proof(proof, where) if proof is not None else None,
    )


def _inclusion_proof(value: Any, where: str) -> InclusionProof:
    proof = _mapping(value, "inclusionProof", where)
    hashes = proof.get("hashes") or []
    if not isinstance(hashes, list) or len(hashes) > 64:
        raise VerificationError(f"{where}: inclusionProof.hashes must be a list of at most 64")
    checkpoint = _mapping(proof.get("checkpoint"), "inclusionProof.checkpoint", where).get(
        "envelope"
    )
    if not isinstance(checkpoint, str):
        raise VerificationError(f"{where}: inclusionProof.checkpoint.envelope must be text")
    return InclusionProof(
        log_index=_integer(proof.get("logIndex"), "inclusionProof.logIndex", where),
        tree_size=_integer(proof.get("treeSize"), "inclusionProof.treeSize", where),
        root_hash=_b64(proof.get("rootHash"), "inclusionProof.rootHash", where),
        hashes=tuple(_b64(h, "inclusionProof.hashes[]", where) for h in hashes),
        checkpoint=checkpoint,
    )


def _bundle_timestamp(material: Mapping[str, Any], where: str) -> bytes | None:
    data = material.get("timestampVerificationData")
    if data is None:
        return None
    stamps = _mapping(data, "timestampVerificationData", where).get("rfc3161Timestamps") or []
    if not isinstance(stamps, list) or len(stamps) > 1:
        raise VerificationError(f"{where}: a bundle may carry at most one RFC 3161 timestamp")
    if not stamps:
        return None
    return _b64(
        _mapping(stamps[0], "rfc3161Timestamps[0]", where).get("signedTimestamp"),
        "signedTimestamp",
        where,
    )


def describe_json(value: Any) -> str:
    """A short rendering of a JSON value for messages."""
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."
