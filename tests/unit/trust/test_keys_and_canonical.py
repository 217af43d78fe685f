"""Canonical JSON and signature checks for every key type and method notary uses."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from securesystemslib.formats import encode_canonical as sslib_canonical

from portieris_webhook.trust.canonical import candidates, encode_canonical
from portieris_webhook.trust.errors import MetadataError
from portieris_webhook.trust.keys import load_pem_public, parse_key

from tests.unit.trust.simulator import b64, make_key

DOCUMENTS = [
    {"b": 1, "a": [True, False, None], "c": {"z": "x", "y": ""}},
    {'quote"back\\slash': "tab\tnew\nline", "unicode": "é✓"},
    {"nested": [{"k": -5}, [], {}], "big": 2**62},
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_canonical_json_matches_securesystemslib(document):
    assert encode_canonical(document) == sslib_canonical(document).encode()


def test_go_escaping_is_offered_when_it_differs():
    document = {"path": "a<b>&c"}

    forms = list(candidates(document))

    assert forms == [b'{"path":"a\\u003cb\\u003e\\u0026c"}', b'{"path":"a<b>&c"}']


def go_escaped(char: str) -> str:
    """How Go's encoding/json (notary's canonical fork) writes one character in a string."""
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in short:
        return short[char]
    if char < " " or char in "<>&\u2028\u2029":
        return f"\\u{ord(char):04x}"
    return char


def test_go_escaping_escapes_exactly_what_go_escapes():
    chars = [chr(c) for c in [*range(0x80), 0xE9, 0x2027, 0x2028, 0x2029, 0x202A, 0x2713]]
    for char in chars:
        expected = f'{{"k":"a{go_escaped(char)}b"}}'.encode()
        assert next(candidates({"k": f"a{char}b"})) == expected, repr(char)


@pytest.mark.parametrize(
    ("text", "forms"),
    [("plain é✓", 1), ('quote " and back \\ slash', 1), ("control \x01", 2), ("tag <b>", 2)],
)
def test_the_olpc_form_is_offered_only_when_it_is_other_bytes(text, forms):
    found = list(candidates({"k": text}))
    assert len(found) == forms
    assert found[-1] == encode_canonical({"k": text})


def test_floats_have_no_canonical_form():
    with pytest.raises(MetadataError, match="float"):
        encode_canonical({"x": 1.5})


KEY_TYPES = ["ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"]


@pytest.mark.parametrize("keytype", KEY_TYPES)
def test_a_valid_signature_verifies_and_a_tampered_one_does_not(keytype):
    test_key = make_key(keytype)
    key = parse_key(test_key.keyid, test_key.document, "test")
    signature = test_key.sign(b"message")
    raw = base64.b64decode(signature["sig"])

    assert key.verifies(signature["method"], b"message", raw)
    assert not key.verifies(signature["method"], b"other message", raw)
    assert not key.verifies(signature["method"], b"message", raw[:-1] + bytes([raw[-1] ^ 1]))


@pytest.mark.parametrize("keytype", KEY_TYPES)
def test_a_method_that_does_not_fit_the_key_type_is_refused(keytype):
    test_key = make_key(keytype)
    key = parse_key(test_key.keyid, test_key.document, "test")
    signature = test_key.sign(b"message")
    other = "eddsa" if signature["method"] != "eddsa" else "ecdsa"

    assert not key.verifies(other, b"message", base64.b64decode(signature["sig"]))


def test_rsa_pkcs1v15_signatures_verify():
    test_key = make_key("rsa")
    key = parse_key(test_key.keyid, test_key.document, "test")
    raw = test_key.private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())

    assert key.verifies("rsapkcs1v15", b"m", raw)
    assert not key.verifies("rsapss", b"m", raw)


def test_rsa_keys_shorter_than_2048_bits_are_refused():
    from cryptography.hazmat.primitives import serialization

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public = b64(
        small.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    from portieris_webhook.trust.keys import key_id

    with pytest.raises(MetadataError, match="shorter than 2048"):
        parse_key(key_id("rsa", public), {"keytype": "rsa", "keyval": {"public": public}}, "test")


def test_unknown_key_types_are_refused():
    from portieris_webhook.trust.keys import key_id

    with pytest.raises(MetadataError, match="unsupported type"):
        parse_key(key_id("dsa", "AAAA"), {"keytype": "dsa", "keyval": {"public": "AAAA"}}, "t")


def test_a_signer_secret_may_hold_a_certificate_or_a_public_key():
    test_key = make_key("ecdsa-x509")
    certificate = base64.b64decode(test_key.public_b64)

    assert load_pem_public(certificate) == load_pem_public(test_key.spki_pem)


def test_a_lone_surrogate_is_a_metadata_error_not_a_crash():
    with pytest.raises(MetadataError, match="not valid Unicode"):
        encode_canonical({"name": "\ud800"})
