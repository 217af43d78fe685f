"""The persisted trust state of one process: what it has read, what it has still to write.

The rules are persisted.py's; this is when they run. A TrustStateStore is the
TrustMemory of the trust caches: a repository a cache has not seen starts from
the stored record, and every verified refresh is noted as pending (no I/O, so a
request never waits for it). A background task writes pending observations
after `write_delay` seconds, batched, and re-reads the shared document every
`sync_interval` seconds, each time a read-modify-write guarded by the stored
version (ConfigMap resourceVersion, file hash), retried when another writer got
in first; what it read is reconciled into the caches. The process is ready only
once the document has been read.

Where the document lives is a Backend: the ConfigMap or a file
(cluster/trust_state_backends.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from portieris_webhook.errors import PortierisError, StateConflict, TrustStateError
from portieris_webhook.kits.background import BackgroundTasks
from portieris_webhook.trust.cache import TrustCache
from portieris_webhook.trust.persisted import (
    Document,
    GunRecord,
    Key,
    Observation,
    StateLimits,
    bound,
    decode,
    encode,
    merge,
    merge_observation,
    observation,
    seed,
)
from portieris_webhook.trust.updater import GunState

LOG = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
"""Read-modify-write attempts in a row before giving up until the next round."""


@dataclass(frozen=True)
class Stored:
    """The document's text as read (None: there is none yet) and the version to write over."""

    text: str | None
    version: str | None


class Backend(Protocol):
    where: str
    """What the document is, for messages (e.g. `ConfigMap portieris/portieris-trust-state`)."""

    async def load(self) -> Stored: ...

    async def save(self, text: str, version: str | None) -> str:
        """Write `text` over `version`; return the new version. StateConflict if the stored
        version is another (someone else wrote); TrustStateError if it cannot be written."""
        ...


@dataclass(frozen=True)
class StoreSettings:
    write_delay: float = 1.0
    """Seconds observations are gathered before they are written (one write for all)."""
    sync_interval: float = 30.0
    """Seconds between reads of the shared document when there is nothing to write."""
    limits: StateLimits = field(default_factory=StateLimits)


async def update(
    backend: Backend,
    change: Callable[[Document], Document],
    read: Callable[[Document], None] = lambda _: None,
) -> Document:
    """Read the document, apply `change`, write it unless unchanged; again on a conflict.

    `read` sees each document as read (before the change)."""
    for attempt in range(MAX_ATTEMPTS):
        stored = await backend.load()
        document = decode(stored.text)
        read(document)
        new = change(document)
        text = encode(new)
        if text == (stored.text if stored.text is not None else encode(Document())):
            return new
        try:
            await backend.save(text, stored.version)
        except StateConflict:
            await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
            continue
        return new
    raise TrustStateError(
        f"{backend.where} was changed by other writers {MAX_ATTEMPTS} times in a row; "
        "trying again later"
    )


class TrustStateStore:
    def __init__(
        self,
        backend: Backend,
        settings: StoreSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.settings = settings or StoreSettings()
        self.clock = clock
        self.view = Document()
        """The document as last read and written."""
        self.pending: dict[Key, Observation] = {}
        self.caches: list[TrustCache] = []
        self.loaded = False
        self.writes = 0
        """Successful read-modify-write rounds that changed the document (for tests)."""
        self._wake = asyncio.Event()
        self.background = BackgroundTasks()
        """Where the sync task runs (`running`): should it stop, the process is not ready."""
        self._dropped = 0
        self._last_error: str | None = None

    # --- TrustMemory -----------------------------------------------------------------------
    def attach(self, cache: TrustCache) -> None:
        """Make `cache` start from, report to and follow this store."""
        cache.memory = self
        self.caches.append(cache)

    def seed(self, server: str, gun: str) -> GunState:
        return seed(self.record((server, gun)))

    def observe(self, server: str, gun: str, state: GunState) -> None:
        seen = observation(state, int(self.clock()))
        if seen is None:
            return
        key = (server, gun)
        current = self.record(key)
        merged, refused = merge_observation(current, seen)
        if merged == current and not refused:
            return  # nothing new (the usual refresh): no round trip for it
        self.pending[key] = seen
        self._wake.set()

    def record(self, key: Key) -> GunRecord | None:
        """The stored record of `key` as this process knows it, its pending observation merged."""
        stored = self.view.records.get(key)
        if key not in self.pending:
            return stored
        return merge_observation(stored, self.pending[key])[0]

    def is_loaded(self) -> bool:
        return self.loaded

    def not_ready(self) -> str | None:
        """Why this process's trust state is not usable, or None: the document was never
        read, or the task that keeps it in sync stopped."""
        stopped = self.background.problem()
        if stopped is not None:
            return f"is stale: {stopped}"
        return None if self.loaded else "not loaded yet"

    # --- reading and writing ---------------------------------------------------------------
    async def sync(self) -> None:
        """One round: read, merge what is pending, bound, write if changed, reconcile caches."""
        taken = dict(self.pending)
        conflicts = []
        dropped: tuple[Key, ...] = ()

        def change(document: Document) -> Document:
            nonlocal conflicts, dropped
            merged = merge(document, taken)
            conflicts = list(merged.conflicts)
            new, dropped = bound(merged.document, self.settings.limits)
            return new

        def read(document: Document) -> None:
            if not self.loaded:
                self.view, self.loaded = document, True
                count = len(document.records)
                LOG.info("trust state read from %s: %d repositories", self.backend.where, count)

        before = self.view
        self.view = await update(self.backend, change, read)
        if self.view is not before and encode(self.view) != encode(before):
            self.writes += bool(taken)
        for key, seen in taken.items():
            if self.pending.get(key) is seen:
                del self.pending[key]
        for conflict in conflicts:
            LOG.warning(
                "trust state: %s on %s was first trusted with root %s; root %s seen here is "
                "not a signed rotation of it and is not trusted",
                conflict.key[1],
                conflict.key[0],
                conflict.stored_root[:16],
                conflict.observed_root[:16],
            )
        if dropped:
            self._note_dropped(dropped)
        for cache in self.caches:
            cache.reconcile(self.view.records)

    def _note_dropped(self, dropped: tuple[Key, ...]) -> None:
        if not self._dropped:
            LOG.warning(
                "trust state in %s is full (%d repositories or %d bytes at most): the least "
                "recently used are dropped and will be trusted on first use again (first "
                "dropped: %s on %s; further drops are not logged)",
                self.backend.where,
                self.settings.limits.max_entries,
                self.settings.limits.max_bytes,
                dropped[0][1],
                dropped[0][0],
            )
        self._dropped += len(dropped)

    async def run(self) -> None:
        """Read at once, then write what is pending and read again, until cancelled."""
        backoff = 0.5
        while True:
            try:
                await self.sync()
            except Exception as exc:  # whatever fails, the next round tries again
                expected = isinstance(exc, PortierisError | OSError)
                message = str(exc) if expected else f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    LOG.warning(
                        "trust state in %s: %s",
                        self.backend.where,
                        message,
                        exc_info=None if expected else exc,
                    )
                    self._last_error = message
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.sync_interval)
                continue
            if self._last_error is not None:
                LOG.info("trust state in %s is read and written again", self.backend.where)
                self._last_error = None
            backoff = 0.5
            await self._next_round()

    async def _next_round(self) -> None:
        if not self.pending:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.sync_interval):
                    await self._wake.wait()
        await asyncio.sleep(self.settings.write_delay)


@contextlib.asynccontextmanager
async def running(store: TrustStateStore, final_write_timeout: float = 5.0) -> AsyncIterator[None]:
    """Keep `store` in sync while inside; write what is pending on the way out."""
    store.background.start("trust-state", store.run())
    try:
        yield
    finally:
        await store.background.cancel()
        if store.pending and store.loaded:
            try:
                async with asyncio.timeout(final_write_timeout):
                    await store.sync()
            except (PortierisError, OSError, TimeoutError) as exc:
                LOG.warning("trust state not written to %s at exit: %s", store.backend.where, exc)
