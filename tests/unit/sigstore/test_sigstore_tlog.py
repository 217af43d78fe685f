"""Rekor entries, verified offline with the log's key: the signed entry timestamp (SET), the
binding of the entry's body to this signature, signer and payload, the RFC 6962 inclusion
proof and the signed checkpoint it ends in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from portieris_webhook.errors import VerificationError
from portieris_webhook.sigstore.evidence import InclusionProof, LogEntry
from portieris_webhook.sigstore.keys import load_public_keys
from portieris_webhook.sigstore.tlog import (
    MAX_PROOF_HASHES,
    root_from_proof,
    verify_binding,
    verify_checkpoint,
    verify_entry,
)

from tests.unit.sigstore.material import (
    NOW,
    FulcioCA,
    Log,
    attestation_evidence,
    b64,
    canonical,
    cosign_payload,
    dsse_body,
    ec_key,
    envelope_json,
    hashedrekord_body,
    intoto_v002_body,
    public_der,
    public_pem,
    sign,
    signature_evidence,
    signed_note,
    statement,
)


@pytest.fixture(scope="module")
def log() -> Log:
    return Log.create()


def keys_of(*logs: Log):
    return tuple(k for lg in logs for k in load_public_keys(lg.public_pem, "log key"))


# -- the signed entry timestamp ---------------------------------------------------------------

BODY = hashedrekord_body(b"signature", b"-----BEGIN PUBLIC KEY-----", b"payload")


def test_an_entry_whose_set_the_log_signed_verifies(log):
    verify_entry(log.entry(BODY), keys_of(log))


def test_an_entry_verifies_with_any_of_the_configured_log_keys(log):
    verify_entry(log.entry(BODY), keys_of(Log.create(), log))


def test_an_entry_whose_set_another_key_signed_is_refused(log):
    forged = log.entry(BODY, set_key=ec_key())
    with pytest.raises(VerificationError, match="signed entry timestamp does not verify"):
        verify_entry(forged, keys_of(log))


def test_an_entry_of_another_log_is_refused(log):
    with pytest.raises(VerificationError, match="not the configured log"):
        verify_entry(Log.create().entry(BODY), keys_of(log))


def test_an_entry_claiming_another_log_s_id_is_refused(log):
    with pytest.raises(VerificationError, match="not the configured log"):
        verify_entry(log.entry(BODY, log_id=Log.create().log_id), keys_of(log))


@pytest.mark.parametrize(
    "change",
    [
        {"integrated_time": int(NOW.timestamp()) - 3600},
        {"integrated_time": int(NOW.timestamp()) + 1},
        {"log_index": 42},
        {"body": hashedrekord_body(b"signature", b"-----BEGIN PUBLIC KEY-----", b"other")},
    ],
    ids=["integrated-time-earlier", "integrated-time-later", "log-index", "body"],
)
def test_an_entry_altered_after_the_log_signed_it_is_refused(log, change):
    altered = dataclasses.replace(log.entry(BODY), **change)
    with pytest.raises(VerificationError, match="signed entry timestamp does not verify"):
        verify_entry(altered, keys_of(log))


def test_an_entry_with_neither_set_nor_proof_is_refused(log):
    bare = dataclasses.replace(log.entry(BODY), signed_entry_timestamp=None)
    with pytest.raises(VerificationError, match="neither a signed entry timestamp nor a proof"):
        verify_entry(bare, keys_of(log))


def test_the_set_covers_the_canonical_json_of_body_time_log_id_and_index(log):
    entry = log.entry(BODY)
    document = canonical(
        {
            "body": b64(entry.body),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        }
    )
    log.key.public_key().verify(entry.signed_entry_timestamp, document, ec.ECDSA(hashes.SHA256()))
    assert document.startswith(b'{"body":"') and b" " not in document


# -- the body is about this signature, signer and payload ----------------------------------------

PAYLOAD = cosign_payload()


def _keyed(key, payload=PAYLOAD, signature=None, verifier=None):
    """A keyed cosign signature over PAYLOAD and a hashedrekord body naming `payload`,
    `signature` (default: the evidence's) and `verifier` (default: the key)."""
    evidence = signature_evidence(PAYLOAD, key)
    body = hashedrekord_body(
        signature if signature is not None else evidence.signature,
        (verifier or public_pem(key)).encode(),
        payload,
    )
    return evidence, LogEntry(body, 0, 0, b"")


def test_a_hashedrekord_for_this_signature_key_and_payload_binds():
    key = ec_key()
    evidence, entry = _keyed(key)
    verify_binding(entry, evidence, public_der(key))


def test_a_hashedrekord_for_another_payload_is_refused():
    key = ec_key()
    evidence, entry = _keyed(key, payload=cosign_payload(reference="registry.local/other"))
    with pytest.raises(VerificationError, match="the log entry is for another payload"):
        verify_binding(entry, evidence, public_der(key))


def test_a_hashedrekord_for_another_signature_is_refused():
    key = ec_key()
    evidence, entry = _keyed(key, signature=sign(key, PAYLOAD))  # ECDSA: another signature
    with pytest.raises(VerificationError, match="another signature or signer"):
        verify_binding(entry, evidence, public_der(key))


def test_a_hashedrekord_naming_another_key_is_refused():
    key = ec_key()
    evidence, entry = _keyed(key, verifier=public_pem(ec_key()))
    with pytest.raises(VerificationError, match="another signature or signer"):
        verify_binding(entry, evidence, public_der(key))


@pytest.fixture(scope="module")
def ca() -> FulcioCA:
    return FulcioCA.create()


def test_a_hashedrekord_naming_this_certificate_binds_a_keyless_signature(ca):
    leaf = ca.leaf()
    evidence = signature_evidence(PAYLOAD, leaf.key, leaf=leaf)
    entry = LogEntry(hashedrekord_body(evidence.signature, leaf.pem, PAYLOAD), 0, 0, b"")
    verify_binding(entry, evidence, leaf.der)


@pytest.mark.parametrize("named", ["another-certificate", "the-certificate-s-bare-key"])
def test_a_hashedrekord_naming_another_certificate_is_refused(ca, named):
    leaf = ca.leaf()
    evidence = signature_evidence(PAYLOAD, leaf.key, leaf=leaf)
    verifier = ca.leaf().pem if named == "another-certificate" else public_pem(leaf.key).encode()
    entry = LogEntry(hashedrekord_body(evidence.signature, verifier, PAYLOAD), 0, 0, b"")
    with pytest.raises(VerificationError, match="another signature or signer"):
        verify_binding(entry, evidence, leaf.der)


ATTESTATION_BODIES = {"intoto-v0.0.2": intoto_v002_body, "dsse-v0.0.1": dsse_body}


@pytest.fixture(params=list(ATTESTATION_BODIES))
def attestation_body(request):
    return ATTESTATION_BODIES[request.param]


def test_an_attestation_entry_for_this_envelope_binds(attestation_body):
    key = ec_key()
    envelope = envelope_json(statement(), key)
    entry = LogEntry(attestation_body(envelope, public_pem(key).encode()), 0, 0, b"")
    verify_binding(entry, attestation_evidence(envelope), public_der(key))


def test_an_attestation_entry_binds_a_keyless_envelope(ca, attestation_body):
    leaf = ca.leaf()
    envelope = envelope_json(statement(), leaf.key)
    entry = LogEntry(attestation_body(envelope, leaf.pem), 0, 0, b"")
    verify_binding(entry, attestation_evidence(envelope, leaf=leaf), leaf.der)


def test_an_attestation_entry_for_another_statement_is_refused(attestation_body):
    key = ec_key()
    logged = envelope_json(statement(predicate_type="https://example.test/other"), key)
    entry = LogEntry(attestation_body(logged, public_pem(key).encode()), 0, 0, b"")
    evidence = attestation_evidence(envelope_json(statement(), key))
    with pytest.raises(VerificationError, match="the log entry is for another payload"):
        verify_binding(entry, evidence, public_der(key))


def test_an_attestation_entry_for_another_signature_is_refused(attestation_body):
    key = ec_key()
    payload = statement()
    logged = envelope_json(payload, key)
    evidence = attestation_evidence(envelope_json(payload, key))  # signed again: another sig
    entry = LogEntry(attestation_body(logged, public_pem(key).encode()), 0, 0, b"")
    with pytest.raises(VerificationError, match="another signature or signer"):
        verify_binding(entry, evidence, public_der(key))


def test_an_attestation_entry_naming_another_signer_is_refused(attestation_body):
    key = ec_key()
    envelope = envelope_json(statement(), key)
    entry = LogEntry(attestation_body(envelope, public_pem(ec_key()).encode()), 0, 0, b"")
    with pytest.raises(VerificationError, match="another signature or signer"):
        verify_binding(entry, attestation_evidence(envelope), public_der(key))


def test_an_intoto_signature_is_read_through_its_second_base64_layer():
    key = ec_key()
    envelope = envelope_json(statement(), key)
    body = json.loads(intoto_v002_body(envelope, public_pem(key).encode()))
    (logged,) = body["spec"]["content"]["envelope"]["signatures"]
    logged["sig"] = json.loads(envelope)["signatures"][0]["sig"]  # base64 once only
    entry = LogEntry(canonical(body), 0, 0, b"")
    with pytest.raises(VerificationError, match="another signature or signer"):
        verify_binding(entry, attestation_evidence(envelope), public_der(key))


def _body(kind="hashedrekord", **spec):
    return LogEntry(canonical({"apiVersion": "0.0.1", "kind": kind, "spec": spec}), 0, 0, b"")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (LogEntry(b"not json", 0, 0, b""), "body is not JSON"),
        (LogEntry(b"[]", 0, 0, b""), "has no spec"),
        (_body(kind="rekord", data={}), "of kind 'rekord', not one cosign writes"),
        (_body(kind="intoto-v0.0.1", content={}), "not one cosign writes"),
        (_body(data={"hash": {"algorithm": "sha256", "value": "00"}}), "lacks signature"),
        (_body(signature={"content": "", "publicKey": {"content": ""}}, data={"hash": {"algorithm": "sha512", "value": "00"}}), "hash is not sha256"),
        (_body(kind="dsse", payloadHash={"algorithm": "sha256", "value": "00"}, signatures=[]), "lists no signatures"),
        (_body(kind="dsse", payloadHash={"algorithm": "sha256", "value": "00"}, signatures=[{"signature": "", "verifier": ""}] * 17), "or too many"),
    ],
    ids=["not-json", "no-spec", "rekord", "unknown-kind", "no-signature", "sha512", "no-dsse-signatures", "17-dsse-signatures"],
)  # fmt: skip
def test_a_body_that_cannot_be_bound_is_refused(entry, message):
    key = ec_key()
    with pytest.raises(VerificationError, match=message):
        verify_binding(entry, signature_evidence(PAYLOAD, key), public_der(key))


def intoto_v001_body(envelope: bytes, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """intoto v0.0.1 (rekor's fallback): the envelope's hash, the payload's hash, the key."""
    return {
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {
            "content": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope).hexdigest()},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(statement()).hexdigest(),
                },
            },
            "publicKey": b64(public_pem(key).encode()),
        },
    }


def test_an_intoto_v001_body_binds_through_the_hash_of_the_stored_envelope():
    """v0.0.1 names no signature, but the envelope it hashes holds the signature."""
    key = ec_key()
    envelope = envelope_json(statement(), key)
    entry = LogEntry(canonical(intoto_v001_body(envelope, key)), 0, 0, b"")
    verify_binding(entry, attestation_evidence(envelope), public_der(key))


def test_an_intoto_v001_body_of_another_envelope_does_not_bind():
    key = ec_key()
    logged = envelope_json(statement(), key)
    entry = LogEntry(canonical(intoto_v001_body(logged, key)), 0, 0, b"")
    other = envelope_json(statement(), key)
    with pytest.raises(VerificationError, match="another attestation envelope"):
        verify_binding(entry, attestation_evidence(other), public_der(key))


# -- RFC 6962 Merkle trees and inclusion proofs -------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 (2.1), over the leaves' hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 (2.1.1), from the leaf up."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*audit_path(m, leaves[:k]), tree_root(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), tree_root(leaves[:k])]


def tree(size: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(size)]


def leads_to_root(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    try:
        return root_from_proof(index, size, leaf, tuple(path)) == root
    except VerificationError:
        return False


SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100]


@pytest.mark.parametrize("size", SIZES)
def test_the_proof_of_every_leaf_leads_to_the_tree_s_root(size):
    leaves = tree(size)
    root = tree_root(leaves)
    for index in range(size):
        assert root_from_proof(index, size, leaves[index], tuple(audit_path(index, leaves))) == root


@pytest.mark.parametrize(
    ("size", "index"),
    [(1, 0), (2, 1), (3, 2), (7, 6), (17, 16), (33, 32), (100, 99), (5, 4), (9, 8)],
    ids=lambda v: str(v),
)
def test_the_last_leaf_of_an_odd_or_even_tree_is_proven(size, index):
    leaves = tree(size)
    assert leads_to_root(index, size, leaves[index], audit_path(index, leaves), tree_root(leaves))


def test_a_tree_of_one_leaf_has_an_empty_proof_and_the_leaf_as_root():
    (leaf,) = tree(1)
    assert root_from_proof(0, 1, leaf, ()) == leaf


@pytest.mark.parametrize("size", [2, 3, 5, 8, 17, 33])
def test_a_proof_does_not_lead_to_the_root_from_another_index(size):
    leaves = tree(size)
    root = tree_root(leaves)
    for index in range(size):
        path = audit_path(index, leaves)
        for other in range(size):
            if other != index:
                assert not leads_to_root(other, size, leaves[index], path, root)


@pytest.mark.parametrize("size", [2, 3, 5, 8, 17, 33])
def test_a_proof_does_not_lead_to_the_root_from_another_leaf(size):
    leaves = tree(size)
    index = size // 2
    path = audit_path(index, leaves)
    assert not leads_to_root(index, size, leaf_hash(b"not logged"), path, tree_root(leaves))


@pytest.mark.parametrize("size", [2, 3, 5, 8, 17, 33])
def test_a_proof_with_a_tampered_hash_does_not_lead_to_the_root(size):
    leaves = tree(size)
    index = size - 1
    path = audit_path(index, leaves)
    path[-1] = hashlib.sha256(path[-1]).digest()
    assert not leads_to_root(index, size, leaves[index], path, tree_root(leaves))


@pytest.mark.parametrize(("size", "claimed"), [(4, 5), (8, 9), (16, 17), (5, 3), (17, 16)])
def test_a_proof_claiming_a_tree_of_another_depth_is_refused(size, claimed):
    """(A tree of another size but the same shape leads to the same root: the signed
    checkpoint's size is what pins the size, see the entry tests below.)"""
    leaves = tree(size)
    with pytest.raises(VerificationError, match="than the tree is deep"):
        root_from_proof(1, claimed, leaves[1], tuple(audit_path(1, leaves)))


@pytest.mark.parametrize(
    ("index", "size", "hashes", "message"),
    [
        (5, 5, 3, "index or length is out of range"),
        (-1, 5, 3, "index or length is out of range"),
        (0, 0, 0, "index or length is out of range"),
        (0, 2**70, MAX_PROOF_HASHES + 1, "index or length is out of range"),
        (2, 5, 4, "longer than the tree is deep"),
        (2, 5, 1, "shorter than the tree is deep"),
        (0, 1, 1, "longer than the tree is deep"),
    ],
    ids=["index-is-size", "negative-index", "empty-tree", "too-many-hashes", "too-long", "too-short", "size-1-with-hash"],
)  # fmt: skip
def test_a_proof_of_the_wrong_shape_is_refused(index, size, hashes, message):
    with pytest.raises(VerificationError, match=message):
        root_from_proof(index, size, leaf_hash(b"x"), (b"\x00" * 32,) * hashes)


# -- checkpoints (signed notes) ------------------------------------------------------------------

ROOT = hashlib.sha256(b"a root").digest()


def test_a_checkpoint_the_log_signed_gives_its_size_and_root(log):
    note = log.checkpoint(12, ROOT)
    assert verify_checkpoint(note, keys_of(log)[0]) == (12, ROOT)


def test_a_checkpoint_with_other_cosignatures_is_accepted_for_the_log_s_line(log):
    witness = signed_note(ec_key(), "witness.test", 12, ROOT).split("\n\n", 1)[1]
    note = log.checkpoint(12, ROOT).replace("\n\n", "\n\n" + witness, 1)
    assert verify_checkpoint(note, keys_of(log)[0]) == (12, ROOT)


def test_a_checkpoint_another_key_signed_is_refused(log):
    note = signed_note(ec_key(), "rekor.test - 1", 12, ROOT)
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_checkpoint(note, keys_of(log)[0])


def test_a_checkpoint_another_key_signed_under_the_log_s_key_hint_is_refused(log):
    hint = hashlib.sha256(public_der(log.key)).digest()[:4]
    note = signed_note(ec_key(), "rekor.test - 1", 12, ROOT, hint=hint)
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_checkpoint(note, keys_of(log)[0])


def test_a_checkpoint_the_log_signed_under_another_key_hint_is_refused(log):
    note = signed_note(log.key, "rekor.test - 1", 12, ROOT, hint=b"\x00\x01\x02\x03")
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_checkpoint(note, keys_of(log)[0])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n12\n", "\n13\n"),
        (b64(ROOT), b64(hashlib.sha256(b"another root").digest())),
        ("rekor.test - 1\n12", "rekor.evil - 1\n12"),
    ],
    ids=["size", "root", "origin"],
)
def test_a_checkpoint_altered_after_signing_is_refused(log, old, new):
    note = log.checkpoint(12, ROOT)
    altered = note.replace(old, new, 1)
    assert altered != note
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_checkpoint(altered, keys_of(log)[0])


def test_the_checkpoint_signature_covers_the_body_with_its_final_newline(log):
    text = f"rekor.test - 1\n12\n{b64(ROOT)}"  # without the final newline
    note = signed_note(log.key, "rekor.test - 1", 12, ROOT, body=text)
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_checkpoint(note, keys_of(log)[0])


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (f"rekor.test - 1\n12\n{b64(ROOT)}\n", "not a signed note"),
        ("rekor.test - 1\ntwelve\nroot\n\n\u2014 rekor.test - 1 AAAA\n", "not origin, size and root hash"),
        ("rekor.test - 1\n12\n\n\u2014 rekor.test - 1 AAAA\n", "not origin, size and root hash"),
    ],
    ids=["no-signatures", "size-not-a-number", "no-root-line"],
)  # fmt: skip
def test_a_checkpoint_that_is_not_a_checkpoint_is_refused(log, note, message):
    with pytest.raises(VerificationError, match=message):
        verify_checkpoint(note, keys_of(log)[0])


def test_a_signature_line_without_the_em_dash_is_not_read(log):
    note = log.checkpoint(12, ROOT).replace("\u2014 ", "- ", 1)
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_checkpoint(note, keys_of(log)[0])


# -- an entry proven by its inclusion proof and checkpoint ---------------------------------------


def proven_entry(
    log: Log,
    *,
    size=9,
    index=5,
    checkpoint_size=None,
    checkpoint_root=None,
    proof_root=None,
    signer=None,
) -> LogEntry:
    """BODY logged at `index` of a tree of `size`, with its proof and the log's checkpoint
    (no SET, as a Rekor v2 entry)."""
    leaves = tree(size)
    leaves[index] = leaf_hash(BODY)
    root = tree_root(leaves)
    note = signed_note(
        signer or log.key, "rekor.test - 1", checkpoint_size or size, checkpoint_root or root
    )
    proof = InclusionProof(index, size, proof_root or root, tuple(audit_path(index, leaves)), note)
    return LogEntry(BODY, int(NOW.timestamp()), index, log.log_id, None, proof)


def test_an_entry_proven_included_in_a_checkpoint_the_log_signed_verifies(log):
    verify_entry(proven_entry(log), keys_of(log))


def test_an_entry_with_both_set_and_proof_verifies(log):
    promise = log.entry(BODY, log_index=5).signed_entry_timestamp
    entry = dataclasses.replace(proven_entry(log), signed_entry_timestamp=promise)
    verify_entry(entry, keys_of(log))


def test_an_entry_whose_proof_does_not_lead_to_its_root_is_refused(log):
    other = tree_root(tree(9))
    with pytest.raises(VerificationError, match="does not lead to its root hash"):
        verify_entry(proven_entry(log, proof_root=other, checkpoint_root=other), keys_of(log))


@pytest.mark.parametrize(
    "change",
    [{"checkpoint_size": 10}, {"checkpoint_root": hashlib.sha256(b"x").digest()}],
    ids=["size", "root"],
)
def test_an_entry_whose_checkpoint_is_of_another_tree_is_refused(log, change):
    with pytest.raises(VerificationError, match="checkpoint is for another tree"):
        verify_entry(proven_entry(log, **change), keys_of(log))


def test_an_entry_whose_checkpoint_another_key_signed_is_refused(log):
    with pytest.raises(VerificationError, match="not signed by the configured log"):
        verify_entry(proven_entry(log, signer=ec_key()), keys_of(log))
