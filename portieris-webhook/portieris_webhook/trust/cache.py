"""Verified trust data per (trust server, GUN): fresh for a while, fetched once at a time, bounded.

Data is answered from memory while it is younger than the refresh interval and
no role has expired; otherwise one refresh runs (re-checking the timestamp and
fetching only what changed) and every concurrent request for the same GUN
waits for that one refresh. The refresh runs shielded, so a request that
gives up at its own deadline does not cancel it for the others.

Memory is bounded whatever clients ask for. Repositories are kept in
least-recently-used order, at most `max_entries` of them and `max_bytes` of
raw metadata, and one unused for `max_age` seconds is forgotten (its first
root and the versions seen are then learnt again, as after a restart). A
failed refresh (unless the failure is the asking request's own: errors.askers_own)
is remembered for `failure_ttl` seconds as its error class and message only
(never the exception, whose traceback would keep every frame's locals alive)
in a separate, equally bounded table, so failing lookups never push verified
repositories out.

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
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from portieris_webhook.errors import RemoteError, VerificationError, askers_own
from portieris_webhook.trust.persisted import GunRecord, Reconcile, reconcile, seed
from portieris_webhook.trust.trusted_set import TrustData
from portieris_webhook.trust.updater import GunState

LOG = logging.getLogger(__name__)

Loader = Callable[[GunState, datetime.datetime], Awaitable[TrustData]]
Key = tuple[str, str]
MAX_FAILURE_MESSAGE = 1024


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
class Failure:
    """A failed refresh as remembered: the error class and message, nothing else."""

    kind: type[VerificationError]
    message: str
    expires_at: float

    def error(self) -> VerificationError:
        return self.kind(self.message)


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    failures: int


@dataclass
class _Entry:
    used_at: float
    state: GunState = field(default_factory=GunState)
    inflight: asyncio.Future[TrustData] | None = None
    size: int = 0
    """Raw metadata bytes of `state.data`, as counted toward max_bytes."""


class TrustCache:
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
        self.limits = limits or CacheLimits()
        self.monotonic = monotonic
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        """Repositories with verified data, least recently used first."""
        self._pending: dict[Key, _Entry] = {}
        """First lookups in flight: they join `_entries` only once verified."""
        self._failures: OrderedDict[Key, Failure] = OrderedDict()
        self._bytes = 0
        self.refreshes = 0
        """How many refreshes ran (for tests)."""

    # --- looking -------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def stats(self) -> CacheStats:
        return CacheStats(len(self._entries), self._bytes, len(self._failures))

    def state(self, server: str, gun: str) -> GunState | None:
        entry = self._entries.get((server, gun))
        return entry.state if entry is not None else None

    def age(self, server: str, gun: str) -> float:
        """Seconds since the trust data of `gun` was last checked with the server (0 if
        there is none)."""
        entry = self._entries.get((server, gun))
        if entry is None or entry.state.data is None:
            return 0.0
        return max(0.0, self.monotonic() - entry.state.checked_at)

    def failure(self, server: str, gun: str) -> Failure | None:
        """The remembered failure of the last refresh, while it has not expired."""
        self._forget_old(self.monotonic())
        return self._failures.get((server, gun))

    def fresh(self, server: str, gun: str) -> TrustData | None:
        """Cached data that may be used now without asking the server, if any."""
        now = self.monotonic()
        self._forget_old(now)
        entry = self._entries.get((server, gun))
        if entry is None or entry.state.data is None:
            return None
        data = entry.state.data
        if now - entry.state.checked_at >= self.refresh_interval or self.clock() >= data.expires:
            return None
        self._touch((server, gun), entry, now)
        return data

    # --- loading -------------------------------------------------------------
    async def get(self, server: str, gun: str, load: Loader, timeout: float) -> TrustData:
        """Fresh trust data of `gun`, refreshing once for all concurrent callers."""
        cached = self.fresh(server, gun)
        if cached is not None:
            return cached
        key = (server, gun)
        entry = self._entries.get(key) or self._pending.get(key)
        if entry is None or entry.inflight is None:
            failure = self._failures.get(key)
            if failure is not None:
                raise failure.error()
        if entry is None:
            state = self.memory.seed(server, gun) if self.memory else GunState()
            entry = self._pending[key] = _Entry(used_at=self.monotonic(), state=state)
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
        except VerificationError as exc:
            self._failed(key, entry, exc)
            raise
        except BaseException:
            self._failed(key, entry, None)
            raise
        entry.inflight = None
        if entry.state is not state:
            return data  # reconciled meanwhile: verified from a root no longer trusted, not kept
        entry.state.data = data
        entry.state.checked_at = self.monotonic()
        if self.memory is not None:
            self.memory.observe(*key, entry.state)
        if self._pending.get(key) is entry:
            del self._pending[key]
            self._entries[key] = entry
        if self._entries.get(key) is entry:  # not evicted meanwhile
            size = sum(len(raw) for raw in data.raw.values())
            self._bytes += size - entry.size
            entry.size = size
            self._touch(key, entry, entry.state.checked_at)
        return data

    def _failed(self, key: Key, entry: _Entry, error: VerificationError | None) -> None:
        entry.inflight = None
        if self._pending.get(key) is entry:
            del self._pending[key]  # nothing verified to keep
        if error is None or self.limits.failure_ttl <= 0:
            return
        if askers_own(error):
            return  # refused credentials or a spent read budget: not an answer for others
        expires_at = self.monotonic() + self.limits.failure_ttl
        message = str(error)[:MAX_FAILURE_MESSAGE]
        self._failures[key] = Failure(type(error), message, expires_at)
        self._failures.move_to_end(key)
        while len(self._failures) > self.limits.max_entries:
            self._failures.popitem(last=False)

    # --- the persisted state ---------------------------------------------------
    def reconcile(self, records: Mapping[Key, GunRecord]) -> None:
        """Bring cached repositories in line with the stored records (persisted.reconcile):
        adopt a root trusted first elsewhere, forget a repository an operator reset."""
        for table in (self._entries, self._pending):
            for key, entry in list(table.items()):
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
                if action is Reconcile.FORGET and table is self._entries:
                    del self._entries[key]
                    self._bytes -= entry.size
                    continue
                entry.state = seed(records.get(key))
                self._bytes -= entry.size
                entry.size = 0

    # --- bounds --------------------------------------------------------------
    def _touch(self, key: Key, entry: _Entry, now: float) -> None:
        entry.used_at = now
        self._entries.move_to_end(key)
        self._evict()

    def _evict(self) -> None:
        """Drop least recently used entries past the bounds (never the one just used)."""
        limits = self.limits
        while len(self._entries) > 1 and (
            len(self._entries) > limits.max_entries or self._bytes > limits.max_bytes
        ):
            _, entry = self._entries.popitem(last=False)
            self._bytes -= entry.size

    def _forget_old(self, now: float) -> None:
        """Drop repositories unused for max_age and failures past their time (oldest first)."""
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.used_at <= self.limits.max_age:
                break
            del self._entries[key]
            self._bytes -= entry.size
        while self._failures:
            key, failure = next(iter(self._failures.items()))
            if failure.expires_at > now:
                break
            del self._failures[key]


def _consume(future: asyncio.Future[TrustData]) -> None:
    """Retrieve a background refresh's exception so it is never reported as unhandled."""
    if not future.cancelled() and future.exception() is not None:
        LOG.debug("trust refresh failed: %s", future.exception())
