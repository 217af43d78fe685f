"""Trust on first use that outlives a process: the persisted trust state, as pure logic (no I/O).

One document, shared by every replica and kept across restarts (a ConfigMap in
cluster mode, a file offline), holds for each (notary server, GUN) the root
first trusted (or rotated to since) and the highest version seen of each role.
The rules, one function each:

* `merge`: what a process learnt (an Observation) meets the stored record. A
  GUN's record is created on its first successful verification; versions only
  go up (the maximum per role); the stored root is replaced only by a root this
  process reached from it through TUF's signed rotation (its lineage names the
  stored root), never by a different root seen first elsewhere: the first root
  written wins and the process that saw another adopts it (`reconcile`).
* `reset`: an operator re-trusts a GUN knowingly; the record becomes a
  tombstone one generation higher, so every process forgets what it remembers
  of it and observations from before the reset are discarded.
* `bound`: the document stays under its limits, least recently used records
  dropped first (they are then trusted on first use again).
* `seed` / `reconcile`: how a process's in-memory GunState starts from, and
  follows, the stored record.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from portieris_webhook.errors import TrustStateError
from portieris_webhook.kits.nesting import check_depth
from portieris_webhook.trust.updater import GunState, root_hash

FORMAT = 1
"""Version of the document format; a document of another format is never overwritten."""
USED_RESOLUTION = 3600
"""Seconds: `used` is written again only when it moved this much, so verifying is not writing."""
MAX_ROLES = 32
"""Roles whose versions one record keeps: the top-level ones, then delegations by name. (The
snapshot records the hash of every targets role, so a delegation cannot roll back without
the snapshot, whose version is always kept.)"""
TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")
MAX_ROOT_BYTES = 512 * 1024
"""A stored root is never inflated past this (the most a served root may be, updater.ReadLimits)."""

Key = tuple[str, str]
"""(normalised notary server URL, GUN)."""


@dataclass(frozen=True)
class GunRecord:
    """What the cluster remembers of one GUN; a record without root is a reset (tombstone)."""

    generation: int
    root: bytes | None
    seen: Mapping[str, int] = field(default_factory=dict)
    used: int = 0
    """Unix seconds when a process last verified this GUN (to within USED_RESOLUTION)."""

    @property
    def root_hash(self) -> str | None:
        return root_hash(self.root) if self.root is not None else None


@dataclass(frozen=True)
class Observation:
    """What one process verified about a GUN, to be merged into the stored record."""

    generation: int
    root: bytes
    lineage: tuple[str, ...]
    """root_hash of the roots this one was reached from by verified rotations, itself last."""
    seen: Mapping[str, int]
    used: int


@dataclass(frozen=True)
class StateLimits:
    max_entries: int = 1000
    """Records (repositories, resets included) the document keeps at most."""
    max_bytes: int = 768 * 1024
    """Bytes the encoded document may have (a ConfigMap holds at most 1 MiB)."""


@dataclass(frozen=True)
class Document:
    records: Mapping[Key, GunRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Conflict:
    """An observation whose root was not stored: another root is trusted for that GUN."""

    key: Key
    stored_root: str
    observed_root: str


@dataclass(frozen=True)
class Merged:
    document: Document
    conflicts: tuple[Conflict, ...] = ()


# --- merging ---------------------------------------------------------------------------------
def merge_seen(*versions: Mapping[str, int]) -> dict[str, int]:
    """The highest version of every role in any of `versions`."""
    merged: dict[str, int] = {}
    for seen in versions:
        for role, version in seen.items():
            merged[role] = max(version, merged.get(role, version))
    return merged


def merge_observation(stored: GunRecord | None, seen: Observation) -> tuple[GunRecord, bool]:
    """The record after `seen`, and whether `seen`'s root was kept out (a conflict)."""
    fresh = GunRecord(seen.generation, seen.root, _kept_roles(seen.seen), seen.used)
    if stored is None or seen.generation > stored.generation or stored.root is None:
        if stored is not None and seen.generation < stored.generation:
            return stored, False  # observed before the reset: forgotten with it
        return fresh, False
    if seen.generation < stored.generation:
        return stored, False
    used = seen.used if seen.used - stored.used >= USED_RESOLUTION else stored.used
    if seen.root == stored.root:
        return GunRecord(stored.generation, stored.root, _merged_roles(stored, seen), used), False
    if stored.root_hash in seen.lineage:
        # A signed rotation away from the stored root: the rotated root replaces it.
        return GunRecord(stored.generation, seen.root, _merged_roles(stored, seen), used), False
    # Another root, not reached from the stored one: the first written stays trusted, and
    # versions read under the other root (possibly an impostor's) are not believed.
    return stored, True


def merge(document: Document, observations: Mapping[Key, Observation]) -> Merged:
    records = dict(document.records)
    conflicts = []
    for key, seen in observations.items():
        records[key], refused = merge_observation(records.get(key), seen)
        if refused:
            stored = records[key].root_hash
            assert stored is not None
            conflicts.append(Conflict(key, stored, root_hash(seen.root)))
    return Merged(Document(records), tuple(conflicts))


def reset(document: Document, key: Key, now: int) -> Document:
    """Forget `key`'s root and versions everywhere: the next verification trusts on first use."""
    records = dict(document.records)
    old = records.get(key)
    records[key] = GunRecord((old.generation + 1) if old else 1, None, {}, now)
    return Document(records)


def _merged_roles(stored: GunRecord, seen: Observation) -> dict[str, int]:
    return _kept_roles(merge_seen(stored.seen, seen.seen))


def _kept_roles(seen: Mapping[str, int]) -> dict[str, int]:
    top = [r for r in TOP_LEVEL if r in seen]
    rest = sorted(r for r in seen if r not in TOP_LEVEL)
    return {role: seen[role] for role in (top + rest)[:MAX_ROLES]}


# --- processes -------------------------------------------------------------------------------
class Reconcile(enum.Enum):
    KEEP = "keep"
    """The process's state is the stored one or ahead of it (versions merged in)."""
    ADOPT = "adopt"
    """The stored root replaces the process's (another root was trusted first, or rotated to
    elsewhere): verify again from it."""
    FORGET = "forget"
    """The GUN was reset after the process learnt it: forget it and trust on first use."""


def seed(record: GunRecord | None) -> GunState:
    """A process's state of a GUN it has not verified yet, from the stored record."""
    if record is None:
        return GunState()
    if record.root is None:
        return GunState(generation=record.generation)
    return GunState(
        seen=dict(record.seen),
        trusted_root=record.root,
        lineage=[root_hash(record.root)],
        generation=record.generation,
    )


def reconcile(state: GunState, record: GunRecord | None) -> Reconcile:
    """What a process holding `state` does on reading `record`; KEEP merges versions in place."""
    if record is None or record.generation < state.generation:
        return Reconcile.KEEP  # not written yet, or dropped by the bounds: ours is written next
    if record.generation > state.generation:
        return Reconcile.FORGET if record.root is None else Reconcile.ADOPT
    if record.root is None:
        return Reconcile.KEEP
    if state.trusted_root is None:
        return Reconcile.ADOPT  # first written by another process: trust that, not our own
    if record.root == state.trusted_root:
        state.seen.update(merge_seen(state.seen, record.seen))
        return Reconcile.KEEP
    if record.root_hash in state.lineage:
        return Reconcile.KEEP  # ours is a rotation of the stored root, written next
    return Reconcile.ADOPT


def observation(state: GunState, now: int) -> Observation | None:
    """What `state` has to tell the persisted state after a successful verification."""
    if state.trusted_root is None:
        return None
    lineage = tuple(state.lineage) or (root_hash(state.trusted_root),)
    return Observation(state.generation, state.trusted_root, lineage, dict(state.seen), now)


# --- bounds ----------------------------------------------------------------------------------
def bound(document: Document, limits: StateLimits) -> tuple[Document, tuple[Key, ...]]:
    """`document` within `limits`, least recently used records dropped first; and what was
    dropped (oldest first)."""
    sizes = {key: len(_encode_record(key, r)) + 1 for key, r in document.records.items()}
    total = len(encode(Document()))
    total += sum(sizes.values())
    order = sorted(document.records, key=lambda k: (document.records[k].used, k))
    dropped: list[Key] = []
    count = len(order)
    for key in order:
        if count <= limits.max_entries and total <= limits.max_bytes:
            break
        dropped.append(key)
        count -= 1
        total -= sizes[key]
    if not dropped:
        return document, ()
    gone = set(dropped)
    kept = {k: r for k, r in document.records.items() if k not in gone}
    return Document(kept), tuple(dropped)


# --- format ----------------------------------------------------------------------------------
def encode(document: Document) -> str:
    """The document as stored: JSON, records in key order, each root's exact bytes compressed
    (zlib: about 45% smaller for notary roots, whose base64 certificates do not compress) and
    in base64."""
    records = ",".join(_encode_record(k, document.records[k]) for k in sorted(document.records))
    return f'{{"format":{FORMAT},"repositories":[{records}]}}'


def _encode_record(key: Key, record: GunRecord) -> str:
    return json.dumps(
        {
            "server": key[0],
            "gun": key[1],
            "generation": record.generation,
            "root": _pack(record.root) if record.root is not None else None,
            "seen": dict(record.seen),
            "used": record.used,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def decode(text: str | None) -> Document:
    """The document `text` holds (none: empty); TrustStateError if it is not one, so that what
    cannot be read is never overwritten."""
    if text is None or not text.strip():
        return Document()
    check_depth(text, "trust state", TrustStateError)
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise TrustStateError(f"trust state is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise TrustStateError(f"trust state has format {found!r}; this webhook reads {FORMAT}")
    items = raw.get("repositories")
    if not isinstance(items, list):
        raise TrustStateError("trust state has no list of repositories")
    records: dict[Key, GunRecord] = {}
    for index, item in enumerate(items):
        key, record = _decode_record(item, index)
        if key in records:
            raise TrustStateError(f"trust state lists {key[0]} {key[1]} twice")
        records[key] = record
    return Document(records)


def _decode_record(item: Any, index: int) -> tuple[Key, GunRecord]:
    where = f"trust state repository {index + 1}"
    if not isinstance(item, dict):
        raise TrustStateError(f"{where} is not an object")
    server, gun = item.get("server"), item.get("gun")
    generation, used, seen = item.get("generation"), item.get("used"), item.get("seen")
    if not (isinstance(server, str) and server and isinstance(gun, str) and gun):
        raise TrustStateError(f"{where} needs a server and a gun")
    if not (_natural(generation) and _natural(used) and isinstance(seen, dict)):
        raise TrustStateError(f"{where} ({gun}): generation, used or seen is malformed")
    if not all(isinstance(r, str) and _natural(v) for r, v in seen.items()):
        raise TrustStateError(f"{where} ({gun}): seen must map role names to versions")
    encoded = item.get("root")
    root = _unpack(encoded, f"{where} ({gun})") if encoded is not None else None
    return (server, gun), GunRecord(generation, root, dict(seen), used)


def _pack(root: bytes) -> str:
    return base64.b64encode(zlib.compress(root, 9)).decode()


def _unpack(encoded: object, where: str) -> bytes:
    try:
        inflater = zlib.decompressobj()
        root = inflater.decompress(base64.b64decode(str(encoded), validate=True), MAX_ROOT_BYTES)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise TrustStateError(f"{where}: root is not zlib-compressed base64") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise TrustStateError(f"{where}: root is larger than {MAX_ROOT_BYTES} bytes or truncated")
    return root


def _natural(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def describe(document: Document, keys: Iterable[Key] | None = None) -> list[dict[str, Any]]:
    """Records as `trust-state show` prints them: the root by version, hash and key IDs."""
    chosen = sorted(document.records) if keys is None else list(keys)
    out = []
    for key in chosen:
        record = document.records[key]
        entry: dict[str, Any] = {"server": key[0], "gun": key[1], "generation": record.generation}
        if record.root is None:
            entry["reset"] = True
        else:
            entry["root_sha256"] = record.root_hash
            entry.update(_root_summary(record.root))
        entry["seen"] = dict(record.seen)
        entry["used"] = record.used
        out.append(entry)
    return out


def _root_summary(root: bytes) -> dict[str, Any]:
    try:
        signed = json.loads(root)["signed"]
        return {
            "root_version": signed["version"],
            "root_keyids": list(signed["roles"]["root"]["keyids"]),
        }
    except (ValueError, KeyError, TypeError):
        return {}
