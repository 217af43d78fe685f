"""Rekor log entries, verified offline with the log's public key.

An entry proves a signature was logged, and when (`integratedTime`), if:

1. the log that signed it is the configured one (`logID` is the SHA-256 of its key);
2. its signed entry timestamp (SET) verifies: the log's ECDSA signature over the
   canonical JSON of `{body, integratedTime, logID, logIndex}` (body base64, logID hex);
   or its inclusion proof leads, by RFC 6962 Merkle hashing, to the root hash of a
   checkpoint the log signed (a signed note: origin, tree size, base64 root hash);
3. its body is about this signature: the same signature bytes, the same certificate or
   key, and the hash of the same payload. Without this step a valid entry for any other
   artifact would vouch for ours.

Bodies of the kinds cosign writes are understood: `hashedrekord` (signatures), `intoto`
v0.0.1 and v0.0.2 and `dsse` (attestations).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from portieris_webhook.errors import VerificationError
from portieris_webhook.kits.nesting import loads
from portieris_webhook.sigstore.evidence import Evidence, InclusionProof, LogEntry
from portieris_webhook.sigstore.keys import PublicKey, der, key_id, verify_signature

MAX_PROOF_HASHES = 64


def verify_entry(entry: LogEntry, log_keys: tuple[PublicKey, ...]) -> None:
    """Steps 1 and 2: the configured log signed this entry (its SET or its checkpoint)."""
    key = next((k for k in log_keys if key_id(k) == entry.log_id), None)
    if key is None:
        raise VerificationError(
            f"the log entry is from log {entry.log_id.hex()[:16]}..., not the configured log"
        )
    proven = False
    if entry.signed_entry_timestamp is not None:
        if not verify_signature(key, entry.signed_entry_timestamp, _set_document(entry), "sha256"):
            raise VerificationError("the log entry's signed entry timestamp does not verify")
        proven = True
    if entry.proof is not None:
        _verify_inclusion(entry, entry.proof, key)
        proven = True
    if not proven:
        raise VerificationError(
            "the log entry carries neither a signed entry timestamp nor a proof"
        )


def _set_document(entry: LogEntry) -> bytes:
    document = {
        "body": base64.b64encode(entry.body).decode(),
        "integratedTime": entry.integrated_time,
        "logID": entry.log_id.hex(),
        "logIndex": entry.log_index,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_proof(index: int, size: int, leaf: bytes, hashes: tuple[bytes, ...]) -> bytes:
    """The Merkle root an inclusion proof implies (RFC 9162, 2.1.3.2)."""
    if not 0 <= index < size or len(hashes) > MAX_PROOF_HASHES:
        raise VerificationError("the inclusion proof's index or length is out of range")
    fn, sn, root = index, size - 1, leaf
    for sibling in hashes:
        if sn == 0:
            raise VerificationError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            root = _node_hash(sibling, root)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            root = _node_hash(root, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("the inclusion proof is shorter than the tree is deep")
    return root


def _verify_inclusion(entry: LogEntry, proof: InclusionProof, key: PublicKey) -> None:
    root = root_from_proof(proof.log_index, proof.tree_size, _leaf_hash(entry.body), proof.hashes)
    if root != proof.root_hash:
        raise VerificationError("the inclusion proof does not lead to its root hash")
    size, signed_root = verify_checkpoint(proof.checkpoint, key)
    if size != proof.tree_size or signed_root != proof.root_hash:
        raise VerificationError("the signed checkpoint is for another tree than the proof")


def verify_checkpoint(note: str, key: PublicKey) -> tuple[int, bytes]:
    """(tree size, root hash) of a checkpoint (a signed note) the log's `key` signed."""
    text, separator, signatures = note.partition("\n\n")
    if not separator:
        raise VerificationError("the checkpoint is not a signed note")
    body = (text + "\n").encode()
    lines = text.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise VerificationError("the checkpoint's body is not origin, size and root hash")
    hint = key_id(key)[:4]
    for line in signatures.splitlines():
        raw = _signature_of_line(line)
        if raw is not None and raw[:4] == hint and verify_signature(key, raw[4:], body, "sha256"):
            try:
                return int(lines[1]), base64.b64decode(lines[2], validate=True)
            except (binascii.Error, ValueError):
                break
    raise VerificationError("the checkpoint is not signed by the configured log")


def _signature_of_line(line: str) -> bytes | None:
    if not line.startswith("\u2014 "):
        return None
    try:
        return base64.b64decode(line.rsplit(" ", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_binding(entry: LogEntry, evidence: Evidence, signer: bytes) -> None:
    """Step 3: the entry's body names this signature, this `signer` (certificate DER or
    public key DER) and this payload."""
    body = loads(entry.body, "the log entry's body", VerificationError)
    if not isinstance(body, Mapping) or not isinstance(body.get("spec"), Mapping):
        raise VerificationError("the log entry's body has no spec")
    kind, spec = body.get("kind"), body["spec"]
    if kind == "hashedrekord":
        signature = _get(spec, "signature")
        signatures = [(_get(signature, "content"), _get(_get(signature, "publicKey"), "content"))]
        hashes = [_hash_value(_get(_get(spec, "data"), "hash"))]
        payload = evidence.signed
    elif kind == "intoto" and body.get("apiVersion") == "0.0.1":
        # v0.0.1 records the whole envelope's hash instead of its signatures: the envelope
        # as stored holds the signature, so its hash binds it.
        content = _get(spec, "content")
        if _hash_value(_get(content, "hash")) != hashlib.sha256(evidence.document).hexdigest():
            raise VerificationError("the log entry is for another attestation envelope")
        signatures = [(base64.b64encode(evidence.signature).decode(), _get(spec, "publicKey"))]
        hashes = [_hash_value(_get(content, "payloadHash"))]
        payload = evidence.statement
    elif kind == "intoto":
        content = _get(spec, "content")
        envelope = _get(content, "envelope")
        signatures = [
            (_unwrap_twice(_get(s, "sig")), _get(s, "publicKey"))
            for s in _list(_get(envelope, "signatures"))
        ]
        hashes = [_hash_value(_get(content, "payloadHash"))]
        payload = evidence.statement
    elif kind == "dsse":
        signatures = [
            (_get(s, "signature"), _get(s, "verifier")) for s in _list(_get(spec, "signatures"))
        ]
        hashes = [_hash_value(_get(spec, "payloadHash"))]
        payload = evidence.statement
    else:
        raise VerificationError(f"the log entry is of kind {kind!r}, not one cosign writes")
    if hashlib.sha256(payload).hexdigest() not in hashes:
        raise VerificationError("the log entry is for another payload")
    if not any(
        _decoded(sig) == evidence.signature and _same_signer(who, signer) for sig, who in signatures
    ):
        raise VerificationError("the log entry is for another signature or signer")


def _get(doc: Any, key: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise VerificationError(f"the log entry's body lacks {key}")
    return doc[key]


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not 0 < len(value) <= 16:
        raise VerificationError("the log entry's body lists no signatures (or too many)")
    return value


def _hash_value(doc: Any) -> str:
    if _get(doc, "algorithm") != "sha256":
        raise VerificationError("the log entry's hash is not sha256")
    value = _get(doc, "value")
    return value.lower() if isinstance(value, str) else ""


def _decoded(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _unwrap_twice(value: Any) -> str | None:
    """intoto v0.0.2 bodies carry each DSSE signature base64-encoded once more."""
    inner = _decoded(value)
    return inner.decode("ascii", "replace") if inner is not None else None


def _same_signer(value: Any, signer: bytes) -> bool:
    """Whether a body's base64 PEM certificate or key is `signer` (DER)."""
    pem = _decoded(value)
    if pem is None:
        return False
    try:
        if b"CERTIFICATE" in pem:
            certificate = x509.load_pem_x509_certificate(pem)
            return certificate.public_bytes(serialization.Encoding.DER) == signer
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return _key_der(key) == signer


def _key_der(key: Any) -> bytes:
    try:
        return der(key)
    except (AttributeError, TypeError, ValueError):
        return b""
