"""Sigstore trust roots for the chart's `sigstore.trustRoots`: entry name -> PEM text, checked.

An entry is public material a `sigstore` policy names: PUBLIC KEY blocks (a cosign key, a Rekor
log's key), or CERTIFICATE blocks holding at least one self-signed root (the chain of a Fulcio
certificate authority or of an RFC 3161 timestamp authority), as the webhook loads them. A private
key, text outside the PEM blocks, a name that cannot be a Secret key, or a name sysinv's image
scan would take for an image is refused, with a message naming the entry and where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from k8sapp_portieris.common.errors import OverridesError

_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>[A-Za-z0-9+/=\s]*?)-----END (?P=label)-----"
)
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_NAME = 253
MAX_ENTRY_BYTES = 256 * 1024
"""What the webhook reads of one Secret entry."""
MAX_KEYS = 16
"""Public keys the webhook takes from one entry."""
MAX_CERTIFICATES = 32
MIN_RSA_BITS = 2048
# sysinv's AppImageParser takes the value of these keys (compared in lower case), at any depth
# of the overrides, for an image to download before the apply.
_IMAGE_KEYS = ("image", "images", "tag", "imagetag")


def parse_trust_roots(entries: object, source: str) -> dict[str, str]:
    """Every entry of `entries` (name -> PEM text), each checked, in canonical PEM, by name.

    `source` names the map in messages (e.g. "sigstore.trustRoots" or a Secret).
    """
    if entries is None:
        return {}
    if not isinstance(entries, Mapping):
        raise OverridesError(
            f"{source} must be a map of entry name to PEM text, not {type(entries).__name__}"
        )
    return {
        name: parse_trust_root(entries[name], f"{source} entry {name!r}")
        for name in sorted(_checked_names(entries, source))
    }


def user_trust_root_problems(entries: object, source: str = "sigstore.trustRoots") -> list[str]:
    """What is wrong with the operator's `sigstore.trustRoots`. An entry set to null (which
    removes the platform's entry of that name, as helm merges values) is no problem."""
    if entries is None:
        return []
    if not isinstance(entries, Mapping):
        return [f"{source} must be a map of entry name to PEM text, not {type(entries).__name__}"]
    problems = []
    try:
        names = _checked_names(entries, source)
    except OverridesError as exc:
        return [str(exc)]
    for name in sorted(names):
        if entries[name] is None:
            continue
        try:
            parse_trust_root(entries[name], f"{source} entry {name!r}")
        except OverridesError as exc:
            problems.append(str(exc))
    return problems


def _checked_names(entries: Mapping[Any, Any], source: str) -> list[str]:
    names = []
    for name in entries:
        if not isinstance(name, str) or not _SECRET_KEY.match(name) or len(name) > MAX_NAME:
            raise OverridesError(
                f"{source} entry name {name!r} cannot be a Secret key: use letters, digits, "
                f"'-', '_' and '.' (at most {MAX_NAME})"
            )
        if name.lower() in _IMAGE_KEYS:
            raise OverridesError(
                f"{source} entry name {name!r} is one sysinv reads as an image to download: "
                "choose another name (e.g. rekor, fulcio, release-key)"
            )
        names.append(name)
    return names


def parse_trust_root(text: object, where: str) -> str:
    """One entry's PEM blocks, checked and written again in canonical form."""
    if not isinstance(text, str):
        raise OverridesError(f"{where} must be PEM text, not {type(text).__name__}")
    if len(text.encode()) > MAX_ENTRY_BYTES:
        raise OverridesError(f"{where} has more than {MAX_ENTRY_BYTES} bytes")
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise OverridesError(
            f"{where} holds no PEM block (-----BEGIN PUBLIC KEY----- or "
            "-----BEGIN CERTIFICATE-----)"
        )
    leftover = _PEM_BLOCK.sub("", text).strip()
    if leftover:
        raise OverridesError(
            f"{where} has text outside its PEM blocks ({leftover[:40]!r}): give only the PEM"
        )
    labels = {block.group("label") for block in blocks}
    private = sorted(label for label in labels if "PRIVATE" in label)
    if private:
        raise OverridesError(
            f"{where} holds a {private[0]}: a trust root is public, give the public key "
            "(e.g. cosign public-key --key <key>) or the certificates"
        )
    other = sorted(labels - {"CERTIFICATE", "PUBLIC KEY"})
    if other:
        raise OverridesError(
            f"{where} holds a {other[0]} block: give PUBLIC KEY or CERTIFICATE blocks"
        )
    if len(labels) > 1:
        raise OverridesError(
            f"{where} mixes public keys and certificates: give each in an entry of its own"
        )
    pems = [block.group(0) for block in blocks]
    if labels == {"PUBLIC KEY"}:
        return _public_keys(pems, where)
    return _certificates(pems, where)


def _public_keys(pems: list[str], where: str) -> str:
    if len(pems) > MAX_KEYS:
        raise OverridesError(f"{where} holds {len(pems)} public keys; at most {MAX_KEYS}")
    out = []
    for number, pem in enumerate(pems, start=1):
        what = f"{where} key {number}" if len(pems) > 1 else where
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise OverridesError(f"{what} is not a usable public key: {exc}") from exc
        problem = _key_problem(key)
        if problem:
            raise OverridesError(f"{what}: {problem}")
        out.append(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
        )
    return "".join(out)


def _key_problem(key: object) -> str | None:
    """Why the webhook would not take `key` (cosign's kinds: ECDSA, RSA, Ed25519), or None."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"an RSA key of {key.key_size} bits is too weak (at least {MIN_RSA_BITS})"
        return None
    if isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        return None
    return f"keys of type {type(key).__name__} are not supported (ECDSA, RSA or Ed25519)"


def _certificates(pems: list[str], where: str) -> str:
    if len(pems) > MAX_CERTIFICATES:
        raise OverridesError(f"{where} holds {len(pems)} certificates; at most {MAX_CERTIFICATES}")
    certificates = []
    for number, pem in enumerate(pems, start=1):
        what = f"{where} certificate {number}" if len(pems) > 1 else where
        try:
            certificates.append(x509.load_pem_x509_certificate(pem.encode()))
        except ValueError as exc:
            raise OverridesError(f"{what} is not a valid X.509 certificate: {exc}") from exc
    if not any(cert.issuer == cert.subject for cert in certificates):
        raise OverridesError(
            f"{where} holds no root (self-signed) certificate: give the chain up to its root"
        )
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certificates)
