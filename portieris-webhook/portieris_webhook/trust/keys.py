"""Notary public keys: parsing, key IDs, signature verification.

Key types and what `keyval.public` holds (base64):
  ecdsa, rsa        DER SubjectPublicKeyInfo
  ed25519           the raw 32-byte public key
  ecdsa-x509, rsa-x509  a PEM certificate
Signature methods: `ecdsa` (raw r||s over SHA-256), `eddsa`, `rsapss`
(SHA-256, salt length = hash length), `rsapkcs1v15` (SHA-256).
A key ID is the sha256 of the canonical JSON of the key object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from portieris_webhook.trust.canonical import encode_canonical
from portieris_webhook.trust.errors import MetadataError

ECDSA, ECDSA_X509, RSA, RSA_X509, ED25519 = "ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"
KEY_TYPES = (ECDSA, ECDSA_X509, RSA, RSA_X509, ED25519)
METHODS_FOR_KEY_TYPE = {
    ECDSA: ("ecdsa",),
    ECDSA_X509: ("ecdsa",),
    ED25519: ("eddsa",),
    RSA: ("rsapss", "rsapkcs1v15"),
    RSA_X509: ("rsapss", "rsapkcs1v15"),
}
MIN_RSA_BITS = 2048


def key_id(keytype: str, public_b64: str) -> str:
    """The ID notary gives a key: sha256 of `{"keytype":..,"keyval":{"private":null,"public":..}}`."""
    document = {"keytype": keytype, "keyval": {"private": None, "public": public_b64}}
    return hashlib.sha256(encode_canonical(document)).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    keyid: str
    keytype: str
    key: PublicKeyTypes
    certificate: x509.Certificate | None = None
    """The first certificate of an x509 key: the one whose public key signs."""
    pem: bytes = b""
    """The whole PEM bundle of an x509 key (leaf and any intermediates), as published."""

    @property
    def spki(self) -> bytes:
        """DER SubjectPublicKeyInfo: what identifies the key whatever its wrapping."""
        return spki_of(self.key)

    @property
    def public_id(self) -> str:
        """ID of the bare public key (notary prints this one for x509 keys)."""
        if self.keytype in (ECDSA_X509, RSA_X509):
            base = ECDSA if self.keytype == ECDSA_X509 else RSA
            return key_id(base, base64.b64encode(self.spki).decode())
        return self.keyid

    def verifies(self, method: str, message: bytes, signature: bytes) -> bool:
        """Whether `signature` by this key over `message` is valid with `method`."""
        if method not in METHODS_FOR_KEY_TYPE.get(self.keytype, ()):
            return False
        try:
            _verify(self.key, method, message, signature)
        except (InvalidSignature, ValueError):
            return False
        return True


def _verify(key: PublicKeyTypes, method: str, message: bytes, signature: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey) and method == "ecdsa":
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise InvalidSignature
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, ed25519.Ed25519PublicKey) and method == "eddsa":
        key.verify(signature, message)
    elif isinstance(key, rsa.RSAPublicKey) and method == "rsapss":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        key.verify(signature, message, pss, hashes.SHA256())
    elif isinstance(key, rsa.RSAPublicKey) and method == "rsapkcs1v15":
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise InvalidSignature


def spki_of(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_key(keyid: str, document: Any, where: str) -> PublicKey:
    """A key object from metadata; its ID must be the ID of its content."""
    if not isinstance(document, dict):
        raise MetadataError(f"{where}: key {keyid} is not an object")
    keytype = document.get("keytype")
    keyval = document.get("keyval")
    public_b64 = keyval.get("public") if isinstance(keyval, dict) else None
    if keytype not in KEY_TYPES:
        raise MetadataError(f"{where}: key {keyid} has unsupported type {keytype!r}")
    if not isinstance(public_b64, str):
        raise MetadataError(f"{where}: key {keyid} has no public key")
    if key_id(keytype, public_b64) != keyid:
        raise MetadataError(f"{where}: key ID {keyid} is not the ID of the key it names")
    try:
        raw = base64.b64decode(public_b64, validate=True)
    except binascii.Error as exc:
        raise MetadataError(f"{where}: key {keyid} is not base64") from exc
    try:
        return _load(keyid, keytype, raw)
    except (ValueError, TypeError) as exc:
        raise MetadataError(f"{where}: key {keyid} ({keytype}) cannot be loaded: {exc}") from exc


def _load(keyid: str, keytype: str, raw: bytes) -> PublicKey:
    certificate = None
    pem = b""
    key: PublicKeyTypes
    if keytype == ED25519:
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    elif keytype in (ECDSA_X509, RSA_X509):
        certificate = x509.load_pem_x509_certificate(raw)
        key = certificate.public_key()
        pem = raw
    else:
        key = serialization.load_der_public_key(raw)
    wants_ec = keytype in (ECDSA, ECDSA_X509)
    if wants_ec and not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an EC key")
    if keytype in (RSA, RSA_X509):
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("not an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is shorter than {MIN_RSA_BITS}")
    return PublicKey(keyid, keytype, key, certificate, pem)


def load_pem_public(pem: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a PEM certificate or PEM public key (a signer secret)."""
    text = pem.strip()
    if b"CERTIFICATE" in text:
        return spki_of(x509.load_pem_x509_certificate(text).public_key())
    return spki_of(serialization.load_pem_public_key(text))
