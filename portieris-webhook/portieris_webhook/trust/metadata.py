"""Typed TUF roles as notary serves them, parsed strictly from raw bytes.

Parsing checks shape only (types, required fields, key IDs); whether a
document is trusted is decided in trusted_set.py.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.kits.nesting import check_depth
from portieris_webhook.trust.canonical import candidates
from portieris_webhook.trust.errors import HashMismatchError, MetadataError
from portieris_webhook.trust.keys import PublicKey, parse_key
from portieris_webhook.trust.rfc3339 import parse_go_rfc3339

ROOT, TIMESTAMP, SNAPSHOT, TARGETS = "root", "timestamp", "snapshot", "targets"
RELEASES = "targets/releases"
TOP_LEVEL_ROLES = (ROOT, TIMESTAMP, SNAPSHOT, TARGETS)
_TYPES = {ROOT: "Root", TIMESTAMP: "Timestamp", SNAPSHOT: "Snapshot", TARGETS: "Targets"}
HASH_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


_DELEGATION_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_/")
MAX_ROLE_NAME = 255


def valid_delegation_name(role: str) -> bool:
    """Whether notary takes `role` for a delegated role (its data.IsDelegation): `targets/`,
    then only `[-a-z0-9_/]`, a clean path (no empty segment or trailing slash), < 256 long."""
    return (
        role.startswith(TARGETS + "/")
        and len(role) <= MAX_ROLE_NAME
        and set(role) <= _DELEGATION_CHARACTERS
        and "" not in role.split("/")
    )


def role_type(role: str) -> str:
    return _TYPES[TARGETS if role.startswith(TARGETS + "/") else role]


def parent_of(role: str) -> str:
    return role.rsplit("/", 1)[0]


@dataclass(frozen=True)
class Signature:
    keyid: str
    method: str
    value: bytes


@dataclass(frozen=True)
class Envelope:
    """A metadata document: its `signed` object, the bytes signatures may cover, its signatures."""

    role: str
    signed: Mapping[str, Any]
    messages: tuple[bytes, ...]
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class FileMeta:
    """Length and hashes a parent role records for a file (metadata or target)."""

    length: int
    hashes: Mapping[str, bytes]

    def check(self, data: bytes, what: str) -> None:
        """Raise HashMismatchError unless `data` has this length and every known hash."""
        if len(data) != self.length:
            raise HashMismatchError(
                f"{what}: length {len(data)} differs from the {self.length} bytes recorded for it"
            )
        known = {name: value for name, value in self.hashes.items() if name in HASH_ALGORITHMS}
        if not known:
            raise HashMismatchError(f"{what}: no sha256 or sha512 hash is recorded for it")
        for name, expected in known.items():
            if not hmac.compare_digest(HASH_ALGORITHMS[name](data).digest(), expected):
                raise HashMismatchError(f"{what}: {name} hash differs from the one recorded for it")


@dataclass(frozen=True)
class RoleKeys:
    keyids: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class Root:
    version: int
    expires: datetime.datetime
    keys: Mapping[str, PublicKey]
    roles: Mapping[str, RoleKeys]


@dataclass(frozen=True)
class Timestamp:
    version: int
    expires: datetime.datetime
    snapshot: FileMeta


@dataclass(frozen=True)
class Snapshot:
    version: int
    expires: datetime.datetime
    meta: Mapping[str, FileMeta]


@dataclass(frozen=True)
class Delegation:
    """One delegated role as its parent describes it."""

    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...] | None
    path_hash_prefixes: tuple[str, ...] | None

    def allows(self, target: str) -> bool:
        """Whether this delegation may sign `target`: notary checks path prefixes only, so
        `path_hash_prefixes` grant nothing here either."""
        return self.paths is not None and any(target.startswith(p) for p in self.paths)

    def describe_paths(self) -> str:
        if self.paths is not None:
            return "paths " + ", ".join(repr(p) for p in self.paths)
        return "path hash prefixes " + ", ".join(self.path_hash_prefixes or ())


@dataclass(frozen=True)
class Targets:
    version: int
    expires: datetime.datetime
    targets: Mapping[str, FileMeta]
    keys: Mapping[str, PublicKey]
    delegations: tuple[Delegation, ...]

    def delegation(self, name: str) -> Delegation | None:
        return next((d for d in self.delegations if d.name == name), None)


# --- parsing -------------------------------------------------------------------


def parse_envelope(raw: bytes, role: str) -> Envelope:
    """Split raw bytes into `signed` and signatures; the `_type` must fit `role`."""
    check_depth(raw, f"{role}: metadata", MetadataError)
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{role}: metadata is not valid JSON") from exc
    if not isinstance(document, dict):
        raise MetadataError(f"{role}: metadata is not a JSON object")
    signed, signatures = document.get("signed"), document.get("signatures")
    if not isinstance(signed, dict) or not isinstance(signatures, list):
        raise MetadataError(f"{role}: metadata needs a 'signed' object and a 'signatures' list")
    if signed.get("_type") != role_type(role):
        raise MetadataError(
            f"{role}: metadata has _type {signed.get('_type')!r}, expected {role_type(role)!r}"
        )
    parsed = tuple(_signature(s, role) for s in signatures)
    return Envelope(role, signed, tuple(candidates(signed)), parsed)


def _signature(document: Any, role: str) -> Signature:
    if not isinstance(document, dict):
        raise MetadataError(f"{role}: a signature is not an object")
    keyid, method, sig = document.get("keyid"), document.get("method"), document.get("sig")
    if not (isinstance(keyid, str) and isinstance(method, str) and isinstance(sig, str)):
        raise MetadataError(f"{role}: a signature lacks keyid, method or sig")
    return Signature(keyid, method, _b64(sig, f"{role}: signature by {keyid}"))


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise MetadataError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise MetadataError(f"{what} is not valid base64") from exc


def _int(signed: Mapping[str, Any], field: str, where: str, minimum: int = 0) -> int:
    value = signed.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MetadataError(f"{where}: {field} must be an integer >= {minimum}")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MetadataError(f"{what} must be an object")
    return value


def parse_time(value: Any, what: str) -> datetime.datetime:
    """A time as notary reads it (Go's RFC 3339 layout parser), as an aware UTC datetime."""
    if not isinstance(value, str):
        raise MetadataError(f"{what} is not a time string")
    try:
        return parse_go_rfc3339(value)
    except ValueError as exc:
        raise MetadataError(
            f"{what} {value[:64]!r} is not a time Go's RFC 3339 parser accepts, so notary "
            f"refuses it ({exc})"
        ) from None


def _common(signed: Mapping[str, Any], role: str) -> tuple[int, datetime.datetime]:
    return _int(signed, "version", role, 1), parse_time(signed.get("expires"), f"{role}: expires")


def _file_meta(value: Any, what: str) -> FileMeta:
    document = _object(value, what)
    length = _int(document, "length", what)
    hashes = _object(document.get("hashes"), f"{what}: hashes")
    return FileMeta(length, {name: _b64(h, f"{what}: {name} hash") for name, h in hashes.items()})


def _keys(value: Any, where: str) -> dict[str, PublicKey]:
    return {keyid: parse_key(keyid, doc, where) for keyid, doc in _object(value, where).items()}


def _keyids(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise MetadataError(f"{what}: keyids must be a list of strings")
    return tuple(dict.fromkeys(value))


def parse_root(envelope: Envelope) -> Root:
    signed = envelope.signed
    version, expires = _common(signed, ROOT)
    keys = _keys(signed.get("keys"), "root: keys")
    roles: dict[str, RoleKeys] = {}
    for name, doc in _object(signed.get("roles"), "root: roles").items():
        doc = _object(doc, f"root: role {name}")
        roles[name] = RoleKeys(
            _keyids(doc.get("keyids"), f"root: role {name}"),
            _int(doc, "threshold", f"root: role {name}", 1),
        )
    for name in TOP_LEVEL_ROLES:
        if name not in roles:
            raise MetadataError(f"root: role {name} is not defined")
    return Root(version, expires, keys, roles)


def parse_timestamp(envelope: Envelope) -> Timestamp:
    version, expires = _common(envelope.signed, TIMESTAMP)
    meta = _object(envelope.signed.get("meta"), "timestamp: meta")
    if SNAPSHOT not in meta:
        raise MetadataError("timestamp: meta has no entry for snapshot")
    return Timestamp(version, expires, _file_meta(meta[SNAPSHOT], "timestamp: meta.snapshot"))


def parse_snapshot(envelope: Envelope) -> Snapshot:
    version, expires = _common(envelope.signed, SNAPSHOT)
    meta = _object(envelope.signed.get("meta"), "snapshot: meta")
    return Snapshot(
        version,
        expires,
        {name: _file_meta(doc, f"snapshot: meta.{name}") for name, doc in meta.items()},
    )


def parse_targets(envelope: Envelope) -> Targets:
    role = envelope.role
    version, expires = _common(envelope.signed, role)
    targets = {
        name: _file_meta(doc, f"{role}: target {name!r}")
        for name, doc in _object(envelope.signed.get("targets"), f"{role}: targets").items()
    }
    delegations_doc = envelope.signed.get("delegations") or {}
    delegations_doc = _object(delegations_doc, f"{role}: delegations")
    keys = _keys(delegations_doc.get("keys") or {}, f"{role}: delegations.keys")
    roles = delegations_doc.get("roles") or []
    if not isinstance(roles, list):
        raise MetadataError(f"{role}: delegations.roles must be a list")
    delegations = tuple(_delegation(doc, role) for doc in roles)
    names = [d.name for d in delegations]
    if len(set(names)) != len(names):
        raise MetadataError(f"{role}: a delegated role is listed twice")
    return Targets(version, expires, targets, keys, delegations)


def _delegation(value: Any, parent: str) -> Delegation:
    doc = _object(value, f"{parent}: delegation")
    name = doc.get("name")
    if not isinstance(name, str) or not valid_delegation_name(name):
        shown = repr(name[: MAX_ROLE_NAME + 1]) if isinstance(name, str) else repr(type(name))
        raise MetadataError(
            f"{parent}: delegated role name {shown} is not a delegation name notary accepts "
            "(targets/ then lower-case letters, digits, '-', '_' and '/', under 256 characters)"
        )
    if parent_of(name) != parent:
        raise MetadataError(f"{parent}: delegated role name {name!r} is not a child of {parent}")
    what = f"{parent}: delegation {name}"
    paths, prefixes = doc.get("paths"), doc.get("path_hash_prefixes")
    return Delegation(
        name,
        _keyids(doc.get("keyids"), what),
        _int(doc, "threshold", what, 1),
        _strings(paths, f"{what}: paths") if paths is not None else None,
        _strings(prefixes, f"{what}: path_hash_prefixes") if prefixes is not None else None,
    )


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{what} must be a list of strings")
    return tuple(value)
