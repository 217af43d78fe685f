"""Verified trust data per (trust server, GUN): fresh for a while, fetched once at a time, bounded.

Data is answered from memory while it is younger than the refresh interval and
no role has expired; otherwise one refresh runs (re-checking the timestamp and
fetching only what changed) and every concurrent request for the same GUN
waits for that one refresh. The refresh runs shielded, so a request that
gives up at its own deadline does not cancel it for the others.

Memory is bounded whatever clients ask for, by the bounded parts every cache fed by
request data is built from (kits/bounded.py). Repositories are kept in least-recently-used
order, at most `max_entries` of them and `max_bytes` of raw metadata, and one unused for
`max_age` seconds is forgotten (its first root and the versions seen are then learnt again,
as after a restart). A failed refresh is remembered for `failure_ttl` seconds as its error
class and message only, unless no cache may share it (remote/shared_answers.shared_failure:
the one rule, errors.askers_own), in a separate, equally bounded table, so failing lookups
never push verified repositories out.

With a TrustMemory (the persisted trust state, trust/state_store.py), what is
forgotten is not lost: a repository's state starts from the stored root and
versions, every successful refresh is reported to it (it writes later, never on
the request path), and `reconcile` brings cached repositories in line with what
other replicas stored.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from portieris_webhook.errors import RemoteError
from portieris_webhook.kits.bounded import BoundedDict
from portieris_webhook.remote import shared_answers
from portieris_webhook.trust.persisted import GunRecord, Reconcile, reconcile, seed
from portieris_webhook.trust.trusted_set import TrustData
from portieris_webhook.trust.updater import GunState

LOG = logging.getLogger(__name__)

Loader = Callable[[GunState, datetime.datetime], Awaitable[TrustData]]
Key = tuple[str, str]


class TrustMemory(Protocol):
    """Where a repository's state starts from and what it learns goes to (beyond this cache)."""

    def seed(self, server: str, gun: str) -> GunState:
        """The state to start from for a repository not in the cache."""
        ...

    def observe(self, server: str, gun: str, state: GunState) -> None:
        """`state` was just verified; must return at once (writing happens elsewhere)."""
        ...


@dataclass(frozen=True)
class CacheLimits:
    max_entries: int = 1000
    """Repositories (and, separately, failed lookups) kept at most."""
    max_bytes: int = 32 * 1024 * 1024
    """Raw metadata bytes kept at most, over all repositories."""
    max_age: float = 24 * 3600.0
    """Seconds a repository may go unused before it is forgotten."""
    failure_ttl: float = 5.0
    """Seconds a failed lookup is answered from memory (0: never)."""


@dataclass(frozen=True)
class Failure(shared_answers.Failure):
    """A failed refresh as remembered (shared_answers.shared_failure: the error class and
    message, nothing else), and when it is forgotten."""

    expires_at: float


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    failures: int


@dataclass(eq=False)
class _Entry:
    state: GunState = field(default_factory=GunState)
    inflight: asyncio.Future[TrustData] | None = None

    def size(self) -> int:
        """Raw metadata bytes of `state.data`, as counted toward max_bytes."""
        data = self.state.data
        return sum(len(raw) for raw in data.raw.values()) if data is not None else 0


class TrustCache:
    """Trust data per (server, GUN), on BoundedDicts (entries, bytes, age; failures apart).

    The loading is its own, not a remote.shared_answers.SharedAnswers: what a refresh starts
    from is the repository's state (its first-use root, the versions seen), kept, reported to
    the TrustMemory and reconciled with what other replicas stored long after its data stops
    being fresh, and refreshed in place; data is fresh for the refresh interval only while no
    role has expired; and concurrent requests share a refresh even with a refresh interval of
    0 (where SharedAnswers would load for each). So each entry holds its state and its refresh
    in flight, and is stored again in `_entries` on each use: max_age counts from the last
    use, and its size is measured again.
    """

    def __init__(
        self,
        refresh_interval: float,
        clock: Callable[[], datetime.datetime],
        limits: CacheLimits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        memory: TrustMemory | None = None,
    ) -> None:
        self.memory = memory
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.limits = limits = limits or CacheLimits()
        self.monotonic = monotonic
        self._entries: BoundedDict[Key, _Entry] = BoundedDict(
            limits.max_entries,
            max_age=limits.max_age,
            max_bytes=limits.max_bytes,
            size=_Entry.size,
            clock=monotonic,
            keep_newest=True,  # a repository just verified stays, whatever its size
        )
        """Repositories with verified data, least recently used first."""
        self._pending: dict[Key, _Entry] = {}
        """First lookups in flight: they join `_entries` only once verified (as many at most
        as requests in flight)."""
        self._failures: BoundedDict[Key, Failure] = BoundedDict(
            limits.max_entries, max_age=limits.failure_ttl, clock=monotonic
        )
        self.refreshes = 0
        """How many refreshes ran (for tests)."""

    # --- looking -------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def stats(self) -> CacheStats:
        return CacheStats(len(self._entries), self._entries.bytes, len(self._failures))

    def state(self, server: str, gun: str) -> GunState | None:
        entry = self._entries.peek((server, gun))
        return entry.state if entry is not None else None

    def age(self, server: str, gun: str) -> float:
        """Seconds since the trust data of `gun` was last checked with the server (0 if
        there is none)."""
        entry = self._entries.peek((server, gun))
        if entry is None or entry.state.data is None:
            return 0.0
        return max(0.0, self.monotonic() - entry.state.checked_at)

    def failure(self, server: str, gun: str) -> Failure | None:
        """The remembered failure of the last refresh, while it has not expired."""
        return self._failures.peek((server, gun))

    def fresh(self, server: str, gun: str) -> TrustData | None:
        """Cached data that may be used now without asking the server, if any."""
        key = (server, gun)
        entry = self._entries.peek(key)
        if entry is None or entry.state.data is None:
            return None
        data = entry.state.data
        stale = self.monotonic() - entry.state.checked_at >= self.refresh_interval
        if stale or self.clock() >= data.expires:
            return None
        self._entries.put(key, entry)  # used: the most recently, kept max_age from now
        return data

    # --- loading -------------------------------------------------------------
    async def get(self, server: str, gun: str, load: Loader, timeout: float) -> TrustData:
        """Fresh trust data of `gun`, refreshing once for all concurrent callers."""
        cached = self.fresh(server, gun)
        if cached is not None:
            return cached
        key = (server, gun)
        entry = self._entries.peek(key) or self._pending.get(key)
        if entry is None or entry.inflight is None:
            failure = self._failures.peek(key)
            if failure is not None:
                raise failure.error()
        if entry is None:
            state = self.memory.seed(server, gun) if self.memory else GunState()
            entry = self._pending[key] = _Entry(state)
        if entry.inflight is None:
            entry.inflight = asyncio.ensure_future(self._refresh(key, entry, load))
            entry.inflight.add_done_callback(_consume)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(entry.inflight)
        except TimeoutError:
            raise RemoteError(
                f"trust data of {gun} from {server} did not arrive within the "
                f"verification budget ({timeout:.3g}s left)"
            ) from None

    async def _refresh(self, key: Key, entry: _Entry, load: Loader) -> TrustData:
        self.refreshes += 1
        state = entry.state
        try:
            data = await load(state, self.clock())
        except BaseException as exc:
            self._failed(key, entry, exc)
            raise
        entry.inflight = None
        if entry.state is not state:
            return data  # reconciled meanwhile: verified from a root no longer trusted, not kept
        state.data = data
        state.checked_at = self.monotonic()
        if self.memory is not None:
            self.memory.observe(*key, state)
        if self._pending.get(key) is entry:
            del self._pending[key]
            self._entries.put(key, entry)
        elif self._entries.peek(key) is entry:  # not evicted meanwhile: used, and measured
            self._entries.put(key, entry)
        return data

    def _failed(self, key: Key, entry: _Entry, error: BaseException) -> None:
        entry.inflight = None
        if self._pending.get(key) is entry:
            del self._pending[key]  # nothing verified to keep
        if self.limits.failure_ttl <= 0:
            return
        shared = shared_answers.shared_failure(error)
        if shared is not None:
            expires_at = self.monotonic() + self.limits.failure_ttl
            self._failures.put(key, Failure(shared.kind, shared.message, expires_at))

    # --- the persisted state ---------------------------------------------------
    def reconcile(self, records: Mapping[Key, GunRecord]) -> None:
        """Bring cached repositories in line with the stored records (persisted.reconcile):
        adopt a root trusted first elsewhere, forget a repository an operator reset."""
        for cached, table in ((True, self._entries.items()), (False, list(self._pending.items()))):
            for key, entry in table:
                action = reconcile(entry.state, records.get(key))
                if action is Reconcile.KEEP:
                    continue
                LOG.warning(
                    "trust state of %s on %s: %s",
                    key[1],
                    key[0],
                    "reset by an operator, trusting on first use again"
                    if action is Reconcile.FORGET
                    else "another root is trusted in the shared trust state; verifying from it",
                )
                if action is Reconcile.FORGET and cached:
                    self._entries.pop(key)
                    continue
                entry.state = seed(records.get(key))
                if cached:
                    self._entries.put(key, entry)  # measured again: nothing verified from it yet


def _consume(future: asyncio.Future[TrustData]) -> None:
    """Retrieve a background refresh's exception so it is never reported as unhandled."""
    if not future.cancelled() and future.exception() is not None:
        LOG.debug("trust refresh failed: %s", future.exception())
