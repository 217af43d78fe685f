"""One refresh of a GUN's trust data: decide what to fetch, feed the state machine in order.

Fetching is concurrent where order does not matter for security (all bytes are
checked against hashes and signatures in TUF order afterwards): a cold load
asks for root, timestamp, snapshot, targets and targets/releases at once.
Documents whose bytes still match what their parent records are reused from
the previous refresh instead of fetched again.

What is read is bounded (ReadLimits): a document whose length its parent
records is fetched with exactly that limit, any other with the most a
document of its kind may be, and one refresh reads no more than its budget,
so a hostile or broken server costs at most a few MiB per image.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from portieris_webhook.kits.nesting import check_depth
from portieris_webhook.trust.errors import (
    ExpiredMetadataError,
    HashMismatchError,
    MetadataError,
    RepositoryNotFound,
    SignatureError,
    TrustError,
)
from portieris_webhook.trust.metadata import (
    RELEASES,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    FileMeta,
    Snapshot,
    Timestamp,
)
from portieris_webhook.trust.trusted_set import RootPin, TrustData, TrustedMetadataSet

MAX_ROOT_ROTATIONS = 64
MAX_LINEAGE = 4 * MAX_ROOT_ROTATIONS
"""Hashes of roots passed through that GunState.lineage keeps (the most recent)."""
KiB = 1024
MiB = 1024 * KiB

Fetch = Callable[[str, int], Awaitable[bytes | None]]
"""fetch(role, max_bytes) -> raw bytes, or None when the server has no such document;
it raises (never truncates) when the answer is longer than max_bytes."""


@dataclass(frozen=True)
class ReadLimits:
    """The most one refresh reads from a notary server, per document and in all."""

    root: int = 512 * KiB
    timestamp: int = 64 * KiB
    snapshot: int = 1 * MiB
    targets: int = 2 * MiB
    """Each of `targets` and its delegated roles."""
    refresh: int = 8 * MiB

    def of(self, role: str) -> int:
        """The most a document of `role`'s kind may be (`N.root` is a root)."""
        if role == ROOT or role.endswith("." + ROOT):
            return self.root
        return {TIMESTAMP: self.timestamp, SNAPSHOT: self.snapshot}.get(role, self.targets)


class Reader:
    """Fetches the documents of one refresh within their limits and the refresh's budget.

    Each fetch reserves its limit from the budget before it starts and gives
    back what was not used when it ends, so concurrent fetches can never read
    more than the budget together.
    """

    def __init__(self, fetch: Fetch, gun: str, limits: ReadLimits) -> None:
        self._fetch = fetch
        self.gun = gun
        self.limits = limits
        self.left = limits.refresh

    async def unknown_length(self, role: str) -> bytes | None:
        """`role` whose length nothing has recorded yet: up to the limit of its kind."""
        if self.left <= 0:
            raise self._over_budget(role)
        return await self._read(role, min(self.limits.of(role), self.left))

    async def recorded_length(self, role: str, length: int, recorded_by: str) -> bytes | None:
        """`role` whose length `recorded_by` records: exactly that, if its kind allows it."""
        most = self.limits.of(role)
        if length > most:
            raise TrustError(
                f"{recorded_by} of {self.gun} records {length} bytes for {role}, more than the "
                f"{most} bytes such a document may have here"
            )
        return await self._read(role, length)

    async def _read(self, role: str, limit: int) -> bytes | None:
        if limit > self.left:
            raise self._over_budget(role)
        self.left -= limit
        data = None
        try:
            data = await self._fetch(role, limit)
        finally:
            self.left += limit - (len(data) if data is not None else 0)
        if data is not None and len(data) > limit:
            raise TrustError(f"{role} of {self.gun} is larger than the {limit} bytes asked for")
        return data

    def _over_budget(self, role: str) -> TrustError:
        return TrustError(
            f"trust data of {self.gun} needs more than the {self.limits.refresh} bytes one "
            f"refresh may read (stopped before {role})"
        )


def root_hash(root: bytes) -> str:
    """How a root is named in lineages and in the persisted trust state: sha256 of its bytes."""
    return hashlib.sha256(root).hexdigest()


@dataclass
class GunState:
    """What the process remembers about one GUN on one trust server."""

    seen: dict[str, int] = field(default_factory=dict)
    """Highest version trusted so far of each role: never accept lower."""
    trusted_root: bytes | None = None
    """The root trusted (on first use, by pin, or by rotation); later roots must chain from it."""
    data: TrustData | None = None
    checked_at: float = float("-inf")
    """Event-loop time of the last successful refresh."""
    lineage: list[str] = field(default_factory=list)
    """root_hash of the roots trusted here, oldest first, each reached from the one before by a
    verified rotation; the last is `trusted_root`'s. Says which stored roots this one replaces."""
    generation: int = 0
    """How many times an operator reset this GUN's persisted trust (persisted.py)."""


async def refresh(
    gun: str,
    state: GunState,
    fetch: Fetch,
    now: datetime.datetime,
    pin: RootPin | None = None,
    limits: ReadLimits | None = None,
) -> TrustData:
    """Bring `state` up to date with the server, or raise TrustError saying what failed.

    One step per role, in TUF order, each feeding the state machine what it checks.
    """
    reader = Reader(fetch, gun, limits or ReadLimits())
    documents = _Documents(reader, state.data.raw if state.data else {})
    served_root = await documents.prefetch(state.trusted_root)
    trusted = await _load_root(gun, state, served_root, reader, now, pin)
    timestamp = _load_timestamp(trusted, documents)
    snapshot = await _load_snapshot(trusted, timestamp, documents)
    await _load_targets(trusted, snapshot, documents)
    await _load_delegations(trusted, snapshot, documents)
    return trusted.result()


class _Documents:
    """Where one refresh gets each document: reused from the previous refresh while its
    bytes still match what its parent records, else prefetched, else fetched."""

    def __init__(self, reader: Reader, previous: Mapping[str, bytes]) -> None:
        self.reader = reader
        self.previous = previous
        self.fetched: dict[str, bytes | None] = {}

    async def prefetch(self, trusted_root: bytes | None) -> bytes:
        """Fetch at once what this refresh will need, where order does not matter for
        security; return the root the server serves now."""
        if trusted_root is None:
            return await self._prefetch_cold()
        return await self._prefetch_warm(trusted_root)

    async def _prefetch_cold(self) -> bytes:
        """First use: every top-level role and targets/releases at once."""
        roles = (ROOT, TIMESTAMP, SNAPSHOT, TARGETS, RELEASES)
        results = await asyncio.gather(*(self.reader.unknown_length(r) for r in roles))
        self.fetched = dict(zip(roles, results, strict=True))
        root = self.fetched[ROOT]
        if root is None:
            raise RepositoryNotFound(
                f"no trust data for {self.reader.gun} (the repository is not signed)"
            )
        return root

    async def _prefetch_warm(self, trusted_root: bytes) -> bytes:
        """The timestamp first: only when it changed can root or snapshot have changed."""
        self.fetched[TIMESTAMP] = await self.reader.unknown_length(TIMESTAMP)
        if self.fetched[TIMESTAMP] == self.previous.get(TIMESTAMP):
            return trusted_root
        root, snapshot = await asyncio.gather(
            self.reader.unknown_length(ROOT), self.reader.unknown_length(SNAPSHOT)
        )
        if root is None:
            raise RepositoryNotFound(f"no trust data for {self.reader.gun} any more (root is gone)")
        self.fetched[SNAPSHOT] = snapshot
        return root

    async def recorded(self, role: str, meta: FileMeta, recorded_by: str) -> bytes:
        """Bytes for `role`: the previous copy if it still matches `meta` (which `recorded_by`
        recorded), else prefetched, else fetched with exactly the recorded length."""
        old = self.previous.get(role)
        if old is not None:
            try:
                meta.check(old, role)
            except HashMismatchError:
                pass
            else:
                return old
        data = self.fetched.get(role)
        if data is None:
            data = await self.reader.recorded_length(role, meta.length, recorded_by)
        if data is None:
            raise TrustError(
                f"notary server lists {role} of {self.reader.gun} but does not serve it"
            )
        return data


async def _load_root(
    gun: str,
    state: GunState,
    served_root: bytes,
    reader: Reader,
    now: datetime.datetime,
    pin: RootPin | None,
) -> TrustedMetadataSet:
    """Trust the root `state` trusts (on first use, `served_root`), rotated to `served_root`."""
    # A pin anchors the first root; later roots are trusted by a rotation the trusted root signs.
    # The pin is checked on the first root this process starts from (seen first, or seeded from
    # the persisted trust state): a root rotated away from the pinned key fails it after a
    # restart, as in notary, so operators update pins when they rotate root keys.
    start_root = served_root if state.trusted_root is None else state.trusted_root
    anchor = pin if state.data is None else None
    trusted = TrustedMetadataSet(gun, start_root, now=now, seen=state.seen, pin=anchor)
    passed = [root_hash(start_root)]
    if served_root != start_root:
        passed += await _rotate(trusted, served_root, reader)
    if not state.lineage or state.lineage[-1] != passed[0]:
        state.lineage = passed[:1]
    state.lineage = (state.lineage + passed[1:])[-MAX_LINEAGE:]
    state.trusted_root = trusted.raw[ROOT]
    return trusted


def _load_timestamp(trusted: TrustedMetadataSet, documents: _Documents) -> Timestamp:
    """The timestamp is always fetched: it is what says whether anything changed."""
    data = documents.fetched.get(TIMESTAMP)
    if data is None:
        raise TrustError(f"notary server has root but no timestamp for {trusted.gun}")
    return trusted.update_timestamp(data)


async def _load_snapshot(
    trusted: TrustedMetadataSet, timestamp: Timestamp, documents: _Documents
) -> Snapshot:
    data = await documents.recorded(SNAPSHOT, timestamp.snapshot, TIMESTAMP)
    return trusted.update_snapshot(data)


async def _load_targets(
    trusted: TrustedMetadataSet, snapshot: Snapshot, documents: _Documents
) -> None:
    if TARGETS not in snapshot.meta:
        raise MetadataError(f"snapshot of {trusted.gun} does not list {TARGETS}")
    trusted.update_targets(await documents.recorded(TARGETS, snapshot.meta[TARGETS], SNAPSHOT))


async def _load_delegations(
    trusted: TrustedMetadataSet, snapshot: Snapshot, documents: _Documents
) -> None:
    """Delegated roles level by level below `targets`, each level fetched at once.

    A delegated role that is expired or short of signatures is left out with
    everything below it (as notary's client does); any other failure fails the refresh.
    """
    level = trusted.delegated_roles(TARGETS)
    while level:
        # delegated_roles() names only roles the snapshot lists.
        fetches = (documents.recorded(role, snapshot.meta[role], SNAPSHOT) for role in level)
        for role, data in zip(level, await asyncio.gather(*fetches), strict=True):
            try:
                trusted.update_delegated_targets(role, data)
            except (ExpiredMetadataError, SignatureError) as exc:
                trusted.skip(role, str(exc))
        level = [
            child
            for role in level
            if role in trusted.roles
            for child in trusted.delegated_roles(role)
        ]


async def _rotate(trusted: TrustedMetadataSet, latest: bytes, reader: Reader) -> list[str]:
    """Walk root versions from the trusted one to `latest`, each verified by its predecessor;
    return the root_hash of each root rotated to, in order."""
    target = _claimed_version(latest)
    current = trusted.root.version
    if target <= current:
        raise TrustError(
            f"notary server serves root version {target} of {trusted.gun}, but version "
            f"{current} is trusted and differs from it"
        )
    if target - current > MAX_ROOT_ROTATIONS:
        raise TrustError(
            f"root of {trusted.gun} jumps from version {current} to {target}; "
            f"more than {MAX_ROOT_ROTATIONS} rotations are not followed"
        )
    passed = []
    for version in range(current + 1, target + 1):
        data = latest if version == target else await reader.unknown_length(f"{version}.{ROOT}")
        if data is None:
            raise TrustError(
                f"root version {version} of {trusted.gun} is not served, so the rotation "
                f"to version {target} cannot be verified"
            )
        trusted.update_root(data)
        passed.append(root_hash(data))
    return passed


def _claimed_version(data: bytes) -> int:
    """The version a (not yet verified) root claims; only used to plan the walk."""
    check_depth(data, "root: metadata", MetadataError)
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MetadataError("root: metadata has no signed.version") from exc
    if not isinstance(version, int):
        raise MetadataError("root: signed.version is not an integer")
    return version
