"""Reading what cosign stores in a registry into evidence: legacy signature and attestation
layers (the payload and its annotations), DSSE envelopes and Sigstore v0.3 bundles.

Good documents are read field by field (and then verify); malformed ones are refused with a
VerificationError naming where they were found, never another exception.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from portieris_webhook.errors import VerificationError
from portieris_webhook.sigstore.authority import check_evidence
from portieris_webhook.sigstore.evidence import (
    ATTESTATION,
    BUNDLE_V03,
    DSSE_LAYER,
    IN_TOTO_PAYLOAD_TYPE,
    SIGNATURE,
    SIMPLE_SIGNING_LAYER,
    Envelope,
    InclusionProof,
    legacy_layer,
    parse_bundle,
    parse_envelope,
)

from tests.unit.sigstore.material import (
    NOW,
    SLSA,
    SUBJECT,
    FulcioCA,
    Log,
    b64,
    cosign_payload,
    dsse_body,
    ec_key,
    envelope_json,
    hashedrekord_body,
    keyed,
    keyless,
    pae,
    public_pem,
    sign,
    signed_note,
    statement,
    trust,
)

PAYLOAD = cosign_payload()
WHERE = "registry.local/team/app@sha256:ab layer sha256:cd"
TIMESTAMP = b"\x30\x03\x02\x01\x00"  # read as bytes here; timestamps.py verifies them


@pytest.fixture(scope="module")
def ca() -> FulcioCA:
    return FulcioCA.create()


@pytest.fixture(scope="module")
def log() -> Log:
    return Log.create()


def pem(certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


# -- legacy layers -----------------------------------------------------------------------------


def rekor_bundle(entry) -> str:
    """The `dev.sigstore.cosign/bundle` annotation cosign writes."""
    return json.dumps(
        {
            "SignedEntryTimestamp": b64(entry.signed_entry_timestamp),
            "Payload": {
                "body": b64(entry.body),
                "integratedTime": entry.integrated_time,
                "logIndex": entry.log_index,
                "logID": entry.log_id.hex(),
            },
        }
    )


@pytest.fixture(scope="module")
def keyless_layer(ca, log) -> tuple[dict[str, str], Any, Any, bytes]:
    """A keyless signature layer's annotations, as `cosign sign` writes them."""
    leaf = ca.leaf()
    signature = sign(leaf.key, PAYLOAD)
    entry = log.entry(hashedrekord_body(signature, leaf.pem, PAYLOAD))
    annotations = {
        "dev.cosignproject.cosign/signature": b64(signature),
        "dev.sigstore.cosign/certificate": leaf.pem.decode(),
        "dev.sigstore.cosign/chain": pem(ca.intermediate) + pem(ca.root),
        "dev.sigstore.cosign/bundle": rekor_bundle(entry),
        "dev.sigstore.cosign/rfc3161timestamp": json.dumps(
            {"SignedRFC3161Timestamp": b64(TIMESTAMP)}
        ),
        "org.example/unrelated": "kept out",
    }
    return annotations, leaf, entry, signature


def test_a_legacy_signature_layer_is_read_field_by_field(ca, keyless_layer):
    annotations, leaf, entry, signature = keyless_layer
    evidence = legacy_layer(SIMPLE_SIGNING_LAYER, annotations, PAYLOAD, WHERE)
    assert (evidence.where, evidence.kind) == (WHERE, SIGNATURE)
    assert evidence.statement == evidence.signed == PAYLOAD
    assert evidence.signature == signature
    assert evidence.certificate == leaf.der
    assert evidence.chain == (
        ca.intermediate_der,
        ca.root.public_bytes(serialization.Encoding.DER),
    )
    assert evidence.log_entry == entry
    assert evidence.timestamp == TIMESTAMP
    assert evidence.timestamped == signature  # cosign timestamps the raw signature
    assert evidence.envelope is None


def test_a_legacy_keyless_signature_layer_read_from_its_annotations_verifies(
    ca, log, keyless_layer
):
    annotations = keyless_layer[0]
    evidence = legacy_layer(SIMPLE_SIGNING_LAYER, annotations, PAYLOAD, WHERE)
    assert check_evidence(trust(keyless(ca, log)), evidence, SUBJECT) is None


def test_a_legacy_keyed_signature_layer_needs_only_its_signature():
    key = ec_key()
    annotations = {"dev.cosignproject.cosign/signature": b64(sign(key, PAYLOAD))}
    evidence = legacy_layer(SIMPLE_SIGNING_LAYER, annotations, PAYLOAD, WHERE)
    assert (evidence.certificate, evidence.chain, evidence.log_entry) == (None, (), None)
    assert check_evidence(trust(keyed(key)), evidence, SUBJECT) is None


def test_a_legacy_attestation_layer_is_a_dsse_envelope(log):
    key = ec_key()
    payload = statement(SLSA)
    blob = envelope_json(payload, key)
    entry = log.entry(dsse_body(blob, public_pem(key).encode()))
    annotations = {"dev.sigstore.cosign/bundle": rekor_bundle(entry)}
    evidence = legacy_layer(DSSE_LAYER, annotations, blob, WHERE)
    assert evidence.kind == ATTESTATION
    assert evidence.statement == payload
    assert evidence.signed == pae(IN_TOTO_PAYLOAD_TYPE, payload)
    assert evidence.timestamped == blob  # cosign timestamps the whole envelope
    authority = trust(keyed(key, log=log, attestations=[{"predicateType": SLSA}]))
    assert check_evidence(authority, evidence, SUBJECT) == SLSA


def _with(annotations: dict[str, str], **changes: str | None) -> dict[str, str]:
    names = {
        "signature": "dev.cosignproject.cosign/signature",
        "certificate": "dev.sigstore.cosign/certificate",
        "chain": "dev.sigstore.cosign/chain",
        "bundle": "dev.sigstore.cosign/bundle",
        "timestamp": "dev.sigstore.cosign/rfc3161timestamp",
    }
    changed = dict(annotations)
    for short, value in changes.items():
        if value is None:
            changed.pop(names[short])
        else:
            changed[names[short]] = value
    return changed


def _bundle_with(entry, **payload: Any) -> str:
    doc = json.loads(rekor_bundle(entry))
    doc["Payload"].update(payload)
    return json.dumps(doc)


LEGACY_REFUSALS = {
    "no-signature": (lambda a, e: _with(a, signature=None), "signature must be a base64 string"),
    "signature-not-base64": (lambda a, e: _with(a, signature="not base64!"), "signature is not valid base64"),
    "certificate-not-pem": (lambda a, e: _with(a, certificate="MIIB..."), "certificate: not a PEM certificate"),
    "chain-not-pem": (lambda a, e: _with(a, chain="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "chain: not a PEM certificate"),
    "chain-too-long": (lambda a, e: _with(a, chain=a["dev.sigstore.cosign/chain"] * 6), "12 certificates; at most 10"),
    "bundle-not-json": (lambda a, e: _with(a, bundle="{"), "Rekor bundle is not JSON"),
    "bundle-not-an-object": (lambda a, e: _with(a, bundle="[]"), "it must be a JSON object"),
    "bundle-without-payload": (lambda a, e: _with(a, bundle=json.dumps({"SignedEntryTimestamp": "AA=="})), "Payload must be a JSON object"),
    "integrated-time-float": (lambda a, e: _with(a, bundle=_bundle_with(e, integratedTime=1.5)), "integratedTime must be an integer"),
    "integrated-time-bool": (lambda a, e: _with(a, bundle=_bundle_with(e, integratedTime=True)), "integratedTime must be an integer"),
    "integrated-time-superscript-digit": (lambda a, e: _with(a, bundle=_bundle_with(e, integratedTime="\u00b2")), "integratedTime must be an integer"),
    "log-index-negative-text": (lambda a, e: _with(a, bundle=_bundle_with(e, logIndex="-1")), "logIndex must be an integer"),
    "log-id-not-hex": (lambda a, e: _with(a, bundle=_bundle_with(e, logID="zz")), "logID must be a hex string"),
    "body-not-base64": (lambda a, e: _with(a, bundle=_bundle_with(e, body="{}")), "Payload.body is not valid base64"),
    "set-not-base64": (lambda a, e: _with(a, bundle=json.dumps({**json.loads(rekor_bundle(e)), "SignedEntryTimestamp": 7})), "SignedEntryTimestamp must be a base64 string"),
    "timestamp-without-response": (lambda a, e: _with(a, timestamp="{}"), "SignedRFC3161Timestamp must be a base64 string"),
}  # fmt: skip


@pytest.mark.parametrize(("change", "message"), LEGACY_REFUSALS.values(), ids=LEGACY_REFUSALS)
def test_a_malformed_legacy_signature_layer_is_refused(keyless_layer, change, message):
    annotations, _, entry, _ = keyless_layer
    with pytest.raises(VerificationError, match=message) as raised:
        legacy_layer(SIMPLE_SIGNING_LAYER, change(annotations, entry), PAYLOAD, WHERE)
    assert str(raised.value).startswith(WHERE)


def test_a_layer_of_another_media_type_is_refused(keyless_layer):
    with pytest.raises(VerificationError, match="is not cosign's"):
        legacy_layer("application/vnd.oci.image.layer.v1.tar", keyless_layer[0], PAYLOAD, WHERE)


def test_an_attestation_layer_that_is_not_an_envelope_is_refused():
    with pytest.raises(VerificationError, match="DSSE envelope is not JSON"):
        legacy_layer(DSSE_LAYER, {}, b"payload", WHERE)


# -- DSSE envelopes ------------------------------------------------------------------------------


def test_an_envelope_is_read_with_its_one_signature():
    key = ec_key()
    doc = json.loads(envelope_json(b"hello", key, payload_type="text/plain"))
    envelope = parse_envelope(json.dumps(doc).encode(), WHERE)
    assert envelope == Envelope(
        "text/plain", b"hello", (base64.b64decode(doc["signatures"][0]["sig"]),)
    )
    assert envelope.pae() == b"DSSEv1 10 text/plain 5 hello"


def test_an_already_decoded_envelope_reads_the_same():
    raw = envelope_json(b"hello", ec_key())
    assert parse_envelope(json.loads(raw), WHERE) == parse_envelope(raw, WHERE)


def _envelope(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": b64(statement()),
        "signatures": [{"keyid": "", "sig": b64(b"signature")}],
    }
    for name, value in changes.items():
        if value is None:
            doc.pop(name)
        else:
            doc[name] = value
    return json.dumps(doc).encode()


ENVELOPE_REFUSALS = {
    "not-json": (b"{", "DSSE envelope is not JSON"),
    "not-an-object": (b"[]", "the DSSE envelope must be a JSON object"),
    "no-payload-type": (_envelope(payloadType=None), "has no payloadType"),
    "payload-type-not-text": (_envelope(payloadType=1), "has no payloadType"),
    "no-signatures": (_envelope(signatures=None), "must carry exactly one signature"),
    "zero-signatures": (_envelope(signatures=[]), "must carry exactly one signature"),
    "two-signatures": (_envelope(signatures=[{"sig": b64(b"a")}, {"sig": b64(b"b")}]), "must carry exactly one signature"),
    "signatures-not-a-list": (_envelope(signatures={"sig": b64(b"a")}), "must carry exactly one signature"),
    "signature-not-an-object": (_envelope(signatures=["c2ln"]), "signatures\\[0\\] must be a JSON object"),
    "sig-not-base64": (_envelope(signatures=[{"sig": "%%%"}]), "signatures\\[0\\].sig is not valid base64"),
    "sig-missing": (_envelope(signatures=[{"keyid": "k"}]), "signatures\\[0\\].sig must be a base64 string"),
    "payload-not-base64": (_envelope(payload="{not base64}"), "payload is not valid base64"),
    "payload-missing": (_envelope(payload=None), "payload must be a base64 string"),
}  # fmt: skip


@pytest.mark.parametrize(("data", "message"), ENVELOPE_REFUSALS.values(), ids=ENVELOPE_REFUSALS)
def test_a_malformed_envelope_is_refused(data, message):
    with pytest.raises(VerificationError, match=message):
        parse_envelope(data, WHERE)


# -- Sigstore bundles v0.3 -----------------------------------------------------------------------


def bundle(
    ca, log, *, leaf=None, payload=None, material: dict[str, Any] | None = None, **top: Any
) -> tuple[dict[str, Any], Any, Any]:
    """A keyless v0.3 bundle as `cosign sign --new-bundle-format` writes it: a DSSE envelope
    over the cosign/sign statement, the leaf, one dsse log entry with its SET (int64 as
    protobuf-JSON strings) and an inclusion proof, and one RFC 3161 timestamp."""
    leaf = leaf or ca.leaf()
    envelope = envelope_json(payload or statement("https://sigstore.dev/cosign/sign/v1"), leaf.key)
    entry = log.entry(dsse_body(envelope, leaf.pem))
    root = hashlib.sha256(b"\x00" + entry.body).digest()
    doc = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(leaf.der)},
            "tlogEntries": [
                {
                    "logIndex": str(entry.log_index),
                    "logId": {"keyId": b64(entry.log_id)},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(entry.integrated_time),
                    "inclusionPromise": {"signedEntryTimestamp": b64(entry.signed_entry_timestamp)},
                    "inclusionProof": {
                        "logIndex": "0",
                        "rootHash": b64(root),
                        "treeSize": "1",
                        "hashes": [],
                        "checkpoint": {"envelope": signed_note(log.key, "rekor.test - 1", 1, root)},
                    },
                    "canonicalizedBody": b64(entry.body),
                }
            ],
            "timestampVerificationData": {
                "rfc3161Timestamps": [{"signedTimestamp": b64(TIMESTAMP)}]
            },
            **(material or {}),
        },
        "dsseEnvelope": json.loads(envelope),
        **top,
    }
    return doc, leaf, entry


def encoded(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_a_bundle_is_read_field_by_field(ca, log):
    doc, leaf, entry = bundle(ca, log)
    evidence = parse_bundle(encoded(doc), WHERE)
    envelope = doc["dsseEnvelope"]
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    assert (evidence.where, evidence.kind) == (WHERE, ATTESTATION)
    assert evidence.statement == base64.b64decode(envelope["payload"])
    assert evidence.signed == pae(IN_TOTO_PAYLOAD_TYPE, evidence.statement)
    assert evidence.signature == signature
    assert evidence.certificate == leaf.der
    assert evidence.timestamp == TIMESTAMP
    assert evidence.timestamped == signature  # a bundle's timestamp covers the signature
    logged = evidence.log_entry
    assert (logged.body, logged.integrated_time, logged.log_index, logged.log_id) == (
        entry.body,
        int(NOW.timestamp()),
        entry.log_index,
        log.log_id,
    )
    assert logged.signed_entry_timestamp == entry.signed_entry_timestamp
    assert isinstance(logged.proof, InclusionProof)
    assert (logged.proof.log_index, logged.proof.tree_size, logged.proof.hashes) == (0, 1, ())


def test_a_keyless_bundle_verifies_as_a_signature(ca, log):
    doc, _, _ = bundle(ca, log)
    evidence = parse_bundle(encoded(doc), WHERE)
    assert check_evidence(trust(keyless(ca, log)), evidence, SUBJECT) is None


def test_a_bundle_may_hold_an_attestation(ca, log):
    doc, _, _ = bundle(ca, log, payload=statement(SLSA))
    evidence = parse_bundle(encoded(doc), WHERE)
    authority = trust(keyless(ca, log, attestations=[{"predicateType": SLSA}]))
    assert check_evidence(authority, evidence, SUBJECT) == SLSA


def test_a_bundle_may_name_its_certificate_in_a_chain(ca, log):
    doc, leaf, _ = bundle(ca, log)
    material = doc["verificationMaterial"]
    del material["certificate"]
    material["x509CertificateChain"] = {
        "certificates": [{"rawBytes": b64(leaf.der)}, {"rawBytes": b64(ca.intermediate_der)}]
    }
    assert parse_bundle(encoded(doc), WHERE).certificate == leaf.der


def test_a_keyed_bundle_names_a_public_key_hint_and_no_certificate(ca, log):
    doc, _, _ = bundle(ca, log)
    material = doc["verificationMaterial"]
    del material["certificate"]
    material["publicKey"] = {"hint": "c2hhMjU2"}
    assert parse_bundle(encoded(doc), WHERE).certificate is None


def test_a_bundle_without_log_entries_or_timestamps_is_read(ca, log):
    doc, _, _ = bundle(ca, log)
    del doc["verificationMaterial"]["tlogEntries"]
    del doc["verificationMaterial"]["timestampVerificationData"]
    evidence = parse_bundle(encoded(doc), WHERE)
    assert (evidence.log_entry, evidence.timestamp) == (None, None)


def test_the_older_spelling_of_the_v03_media_type_is_accepted(ca, log):
    doc, _, _ = bundle(ca, log, mediaType="application/vnd.dev.sigstore.bundle+json;version=0.3")
    assert parse_bundle(encoded(doc), WHERE).kind == ATTESTATION


def _material(doc, **changes):
    doc["verificationMaterial"].update(changes)
    return doc


def _entry(doc, **changes):
    doc["verificationMaterial"]["tlogEntries"][0].update(changes)
    return doc


def _proof(doc, **changes):
    doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"].update(changes)
    return doc


def _without(doc, *path):
    *parents, last = path
    node = doc
    for step in parents:
        node = node[step]
    del node[last]
    return doc


BUNDLE_REFUSALS = {
    "v0.2": (lambda d: {**d, "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2"}, "is not v0.3"),
    "no-media-type": (lambda d: _without(d, "mediaType"), "bundle media type None is not v0.3"),
    "no-verification-material": (lambda d: _without(d, "verificationMaterial"), "verificationMaterial must be a JSON object"),
    "two-log-entries": (lambda d: _material(d, tlogEntries=d["verificationMaterial"]["tlogEntries"] * 2), "at most one log entry"),
    "log-entries-not-a-list": (lambda d: _material(d, tlogEntries={"logIndex": "1"}), "at most one log entry"),
    "log-entry-not-an-object": (lambda d: _material(d, tlogEntries=["entry"]), "tlogEntries\\[0\\] must be a JSON object"),
    "message-signature": (lambda d: {**_without(d, "dsseEnvelope"), "messageSignature": {"signature": "AA=="}}, "holds no DSSE envelope"),
    "no-certificate-or-key": (lambda d: _without(d, "verificationMaterial", "certificate"), "names neither a certificate nor a public key"),
    "empty-chain": (lambda d: _material(_without(d, "verificationMaterial", "certificate"), x509CertificateChain={"certificates": []}), "x509CertificateChain holds no certificate"),
    "certificate-not-base64": (lambda d: _material(d, certificate={"rawBytes": "!"}), "certificate is not valid base64"),
    "two-timestamps": (lambda d: _material(d, timestampVerificationData={"rfc3161Timestamps": [{"signedTimestamp": "AA=="}] * 2}), "at most one RFC 3161 timestamp"),
    "log-index-not-a-number": (lambda d: _entry(d, logIndex="forty-one"), "logIndex must be an integer"),
    "integrated-time-missing": (lambda d: _without(d, "verificationMaterial", "tlogEntries", 0, "integratedTime"), "integratedTime must be an integer"),
    "log-id-not-an-object": (lambda d: _entry(d, logId="abc"), "logId must be a JSON object"),
    "body-not-base64": (lambda d: _entry(d, canonicalizedBody="{}"), "canonicalizedBody is not valid base64"),
    "promise-not-an-object": (lambda d: _entry(d, inclusionPromise="set"), "inclusionPromise must be a JSON object"),
    "too-many-proof-hashes": (lambda d: _proof(d, hashes=["AA=="] * 65), "hashes must be a list of at most 64"),
    "proof-hash-not-base64": (lambda d: _proof(d, hashes=["??"]), "inclusionProof.hashes\\[\\] is not valid base64"),
    "no-checkpoint": (lambda d: _without(d, "verificationMaterial", "tlogEntries", 0, "inclusionProof", "checkpoint"), "inclusionProof.checkpoint must be a JSON object"),
    "checkpoint-not-text": (lambda d: _proof(d, checkpoint={"envelope": 7}), "checkpoint.envelope must be text"),
    "tree-size-not-a-number": (lambda d: _proof(d, treeSize="1e3"), "inclusionProof.treeSize must be an integer"),
    "two-dsse-signatures": (lambda d: {**d, "dsseEnvelope": {**d["dsseEnvelope"], "signatures": d["dsseEnvelope"]["signatures"] * 2}}, "must carry exactly one signature"),
    "envelope-not-an-object": (lambda d: {**d, "dsseEnvelope": "e30="}, "dsseEnvelope must be a JSON object"),
}  # fmt: skip


@pytest.mark.parametrize(("change", "message"), BUNDLE_REFUSALS.values(), ids=BUNDLE_REFUSALS)
def test_a_malformed_bundle_is_refused(ca, log, change, message):
    doc, _, _ = bundle(ca, log)
    with pytest.raises(VerificationError, match=message) as raised:
        parse_bundle(encoded(change(doc)), WHERE)
    assert str(raised.value).startswith(WHERE)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "Sigstore bundle is not JSON"),
        (b"[]", "the bundle must be a JSON object"),
        (b"[" * 10_000 + b"]" * 10_000, "Sigstore bundle"),
    ],
    ids=["not-json", "not-an-object", "deeply-nested"],
)
def test_a_bundle_that_is_not_a_json_object_is_refused(data, message):
    with pytest.raises(VerificationError, match=message):
        parse_bundle(data, WHERE)
