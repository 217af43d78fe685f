"""One refresh of a GUN's trust data: decide what to fetch, feed the state machine in order.

Fetching is concurrent where order does not matter for security (all bytes are
checked against hashes and signatures in TUF order afterwards): a cold load
asks for root, timestamp, snapshot, targets and targets/releases at once.
Documents whose bytes still match what their parent records are reused from
the previous refresh instead of fetched again.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

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
)
from portieris_webhook.trust.tuf import RootPin, TrustData, TrustedMetadataSet

MAX_ROOT_BYTES = 1024 * 1024
MAX_TIMESTAMP_BYTES = 64 * 1024
MAX_SPECULATIVE_BYTES = 16 * 1024 * 1024
MAX_ROOT_ROTATIONS = 64

Fetch = Callable[[str, int], Awaitable[bytes | None]]
"""fetch(role, max_bytes) -> raw bytes, or None when the server has no such document."""


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


async def refresh(
    gun: str,
    state: GunState,
    fetch: Fetch,
    now: datetime.datetime,
    pin: RootPin | None = None,
) -> TrustData:
    """Bring `state` up to date with the server, or raise TrustError saying what failed."""
    previous: Mapping[str, bytes] = state.data.raw if state.data else {}
    fetched: dict[str, bytes | None] = {}
    first_use = state.trusted_root is None
    start_root: bytes
    latest_root: bytes
    if state.trusted_root is None:
        roles = (ROOT, TIMESTAMP, SNAPSHOT, TARGETS, RELEASES)
        limits = (MAX_ROOT_BYTES, MAX_TIMESTAMP_BYTES) + (MAX_SPECULATIVE_BYTES,) * 3
        results = await asyncio.gather(*(fetch(r, n) for r, n in zip(roles, limits, strict=True)))
        fetched = dict(zip(roles, results, strict=True))
        first_root = fetched[ROOT]
        if first_root is None:
            raise RepositoryNotFound(f"no trust data for {gun} (the repository is not signed)")
        start_root = latest_root = first_root
    else:
        start_root = state.trusted_root
        fetched[TIMESTAMP] = await fetch(TIMESTAMP, MAX_TIMESTAMP_BYTES)
        latest_root = start_root
        if fetched[TIMESTAMP] != previous.get(TIMESTAMP):
            root, snapshot = await asyncio.gather(
                fetch(ROOT, MAX_ROOT_BYTES), fetch(SNAPSHOT, MAX_SPECULATIVE_BYTES)
            )
            if root is None:
                raise RepositoryNotFound(f"no trust data for {gun} any more (root is gone)")
            latest_root, fetched[SNAPSHOT] = root, snapshot

    # A pin anchors the first root only; later roots are trusted by rotation, as notary does.
    anchor = pin if first_use else None
    trusted = TrustedMetadataSet(gun, start_root, now=now, seen=state.seen, pin=anchor)
    if latest_root != start_root:
        await _rotate(trusted, latest_root, fetch)
    state.trusted_root = trusted.raw[ROOT]

    timestamp = fetched.get(TIMESTAMP)
    if timestamp is None:
        raise TrustError(f"notary server has root but no timestamp for {gun}")
    trusted.update_timestamp(timestamp)
    assert trusted.timestamp is not None
    snapshot_meta = trusted.timestamp.snapshot
    trusted.update_snapshot(await _document(SNAPSHOT, snapshot_meta, previous, fetched, fetch, gun))

    level = [TARGETS]
    while level:
        assert trusted.snapshot is not None
        metas = [_listed(trusted.snapshot.meta, role, gun) for role in level]
        documents = await asyncio.gather(
            *(
                _document(r, m, previous, fetched, fetch, gun)
                for r, m in zip(level, metas, strict=True)
            )
        )
        for role, document in zip(level, documents, strict=True):
            try:
                trusted.update_delegated_targets(role, document)
            except (ExpiredMetadataError, SignatureError) as exc:
                if role == TARGETS:
                    raise
                trusted.skip(role, str(exc))
        level = [
            child
            for role in level
            if role in trusted.roles
            for child in trusted.delegated_roles(role)
        ]
    return trusted.result()


def _listed(meta: Mapping[str, FileMeta], role: str, gun: str) -> FileMeta:
    if role not in meta:
        raise MetadataError(f"snapshot of {gun} does not list {role}")
    return meta[role]


async def _document(
    role: str,
    meta: FileMeta,
    previous: Mapping[str, bytes],
    fetched: Mapping[str, bytes | None],
    fetch: Fetch,
    gun: str,
) -> bytes:
    """Bytes for `role`: the previous copy if it still matches `meta`, else prefetched or fetched."""
    old = previous.get(role)
    if old is not None:
        try:
            meta.check(old, role)
        except HashMismatchError:
            pass
        else:
            return old
    data = fetched.get(role)
    if data is None:
        data = await fetch(role, meta.length)
    if data is None:
        raise TrustError(f"notary server lists {role} of {gun} but does not serve it")
    return data


async def _rotate(trusted: TrustedMetadataSet, latest: bytes, fetch: Fetch) -> None:
    """Walk root versions from the trusted one to `latest`, each verified by its predecessor."""
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
    for version in range(current + 1, target + 1):
        data = latest if version == target else await fetch(f"{version}.{ROOT}", MAX_ROOT_BYTES)
        if data is None:
            raise TrustError(
                f"root version {version} of {trusted.gun} is not served, so the rotation "
                f"to version {target} cannot be verified"
            )
        trusted.update_root(data)


def _claimed_version(data: bytes) -> int:
    """The version a (not yet verified) root claims; only used to plan the walk."""
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MetadataError("root: metadata has no signed.version") from exc
    if not isinstance(version, int):
        raise MetadataError("root: signed.version is not an integer")
    return version
