"""Verified trust data per (trust server, GUN), fresh for a while, fetched once at a time.

Data is answered from memory while it is younger than the refresh interval and
no role has expired; otherwise one refresh runs (re-checking the timestamp and
fetching only what changed) and every concurrent request for the same GUN
waits for that one refresh. A failed refresh is not cached: the next request
tries again. The refresh runs shielded, so a request that gives up at its own
deadline does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from portieris_webhook.trust.errors import TrustError
from portieris_webhook.trust.tuf import TrustData
from portieris_webhook.trust.updater import GunState

LOG = logging.getLogger(__name__)

Loader = Callable[[GunState, datetime.datetime], Awaitable[TrustData]]


@dataclass
class _Entry:
    state: GunState = field(default_factory=GunState)
    inflight: asyncio.Future[TrustData] | None = None


class TrustCache:
    def __init__(
        self,
        refresh_interval: float,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self.refresh_interval = refresh_interval
        self.clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.refreshes = 0
        """How many refreshes ran (for tests and benchmarks)."""

    def state(self, server: str, gun: str) -> GunState:
        return self._entry(server, gun).state

    def _entry(self, server: str, gun: str) -> _Entry:
        return self._entries.setdefault((server, gun), _Entry())

    def fresh(self, server: str, gun: str) -> TrustData | None:
        """Cached data that may be used now without asking the server, if any."""
        state = self._entry(server, gun).state
        data = state.data
        if data is None:
            return None
        age = asyncio.get_running_loop().time() - state.checked_at
        if age >= self.refresh_interval or self.clock() >= data.expires:
            return None
        return data

    async def get(self, server: str, gun: str, load: Loader, timeout: float) -> TrustData:
        """Fresh trust data of `gun`, refreshing once for all concurrent callers."""
        cached = self.fresh(server, gun)
        if cached is not None:
            return cached
        entry = self._entry(server, gun)
        if entry.inflight is None or entry.inflight.done():
            entry.inflight = asyncio.ensure_future(self._refresh(entry, load))
            entry.inflight.add_done_callback(_consume)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(entry.inflight)
        except TimeoutError:
            raise TrustError(
                f"trust data of {gun} from {server} did not arrive within the "
                f"verification budget ({timeout:.3g}s left)"
            ) from None

    async def _refresh(self, entry: _Entry, load: Loader) -> TrustData:
        self.refreshes += 1
        data = await load(entry.state, self.clock())
        entry.state.data = data
        entry.state.checked_at = asyncio.get_running_loop().time()
        return data


def _consume(future: asyncio.Future[TrustData]) -> None:
    """Retrieve a background refresh's exception so it is never reported as unhandled."""
    if not future.cancelled() and future.exception() is not None:
        LOG.debug("trust refresh failed: %s", future.exception())
