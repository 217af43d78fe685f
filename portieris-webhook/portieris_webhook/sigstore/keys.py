"""Public keys and the signatures they make, as cosign makes them.

ECDSA (P-256, P-384, P-521) with the authority's hash algorithm over the signed bytes
(DER signatures), RSA PKCS#1 v1.5, and Ed25519 (which hashes internally).
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from portieris_webhook.errors import VerificationError

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
MIN_RSA_BITS = 2048
MAX_KEYS = 16


def load_public_keys(pem: str, what: str) -> tuple[PublicKey, ...]:
    """Every `PUBLIC KEY` block of `pem` (at least one, at most MAX_KEYS)."""
    blocks = pem.split("-----END PUBLIC KEY-----")
    keys = []
    for block in blocks[:-1]:
        start = block.find("-----BEGIN PUBLIC KEY-----")
        if start < 0:
            continue
        keys.append(load_public_key(block[start:].encode() + b"-----END PUBLIC KEY-----\n", what))
    if not keys:
        raise VerificationError(f"{what} holds no PEM public key (-----BEGIN PUBLIC KEY-----)")
    if len(keys) > MAX_KEYS:
        raise VerificationError(f"{what} holds {len(keys)} public keys; at most {MAX_KEYS}")
    return tuple(keys)


def load_public_key(pem: bytes, what: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise VerificationError(f"{what} is not a usable public key: {exc}") from None
    return checked_key(key, what)


def checked_key(key: object, what: str) -> PublicKey:
    """`key` if it is of a kind and size cosign signs with."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise VerificationError(f"{what}: an RSA key of {key.key_size} bits is too weak")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    raise VerificationError(f"{what}: keys of type {type(key).__name__} are not supported")


def verify_signature(key: PublicKey, signature: bytes, data: bytes, algorithm: str) -> bool:
    """Whether `signature` is `key`'s over `data` with hash `algorithm`."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(HASHES[algorithm]()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), HASHES[algorithm]())
        else:
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def der(key: PublicKey) -> bytes:
    """The key's SubjectPublicKeyInfo (DER)."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> bytes:
    """SHA-256 of the key's DER: a Rekor log's ID, a bundle's public-key hint."""
    return hashlib.sha256(der(key)).digest()
