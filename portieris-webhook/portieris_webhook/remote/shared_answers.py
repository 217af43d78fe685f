"""Answers reused while fresh, loaded once at a time, failures remembered briefly: all bounded.

`SharedAnswers` sits between a verifier and a remote server (or a slow local tool such
as gpg). For a key that names everything the answer depends on (server URL, repository,
tag or digest, and the identity of the credentials used):

- an answer younger than `fresh_for` seconds is handed out again without asking;
- concurrent requests for the same key share one load, which runs shielded so a
  request that gives up at its own deadline does not cancel it for the others;
- a load that fails with a VerificationError is remembered for `failure_ttl` seconds as
  its class and message only (never the exception, whose traceback would keep every
  frame's locals alive; `shared_failure`), unless it belongs to the asker (errors.askers_own):
  refused credentials (AccessRefused, though the key holds the credentials anyway) or a
  spent read budget (ReadBudgetExhausted), which say nothing about the next request;
- an answer the cache is told is `brief` (a signature store that has no signature yet)
  is kept only as long as a failure: whoever signs an image and deploys it at once must
  not be refused for a whole window;
- `fresh_for` 0 turns all of it off: every call loads.

Answers and failures live in separate BoundedDicts (entries, bytes, age), so failing
lookups never push good answers out. No I/O here; clocks are injected for tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from portieris_webhook.errors import VerificationError, askers_own
from portieris_webhook.kits.bounded import BoundedDict

LOG = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_FAILURE_MESSAGE = 1024


@dataclass(frozen=True)
class FreshnessLimits:
    fresh_for: float
    """Seconds an answer is reused after it was loaded (0: never, and loads are not shared)."""
    failure_ttl: float = 5.0
    """Seconds a failed load is answered from memory (0: never)."""
    max_entries: int = 1000
    """Answers (and, separately, failures) kept at most, least recently used dropped first."""
    max_bytes: int = 16 * 1024 * 1024
    """Bytes of answers kept at most, as measured by the cache's size function."""


@dataclass(frozen=True)
class Failure:
    """A failed load as remembered: the error class and message, nothing else."""

    kind: type[VerificationError]
    message: str

    def error(self) -> VerificationError:
        return self.kind(self.message)


def shared_failure(error: BaseException) -> Failure | None:
    """What a failed load may tell the other askers of its key while it is remembered: its
    class and message, cut to MAX_FAILURE_MESSAGE (never the exception, whose traceback would
    keep every frame's locals alive). None for what no cache shares: a failure of the asker's
    own (errors.askers_own), or anything but a VerificationError (a bug, a cancellation).
    The one rule of every cache of remote answers (this one, trust/cache.py)."""
    if not isinstance(error, VerificationError) or askers_own(error):
        return None
    return Failure(type(error), str(error)[:MAX_FAILURE_MESSAGE])


def _unit_size(_value: object) -> int:
    return 1


class SharedAnswers(Generic[K, V]):
    def __init__(
        self,
        limits: FreshnessLimits,
        *,
        size: Callable[[V], int] = _unit_size,
        brief: Callable[[V], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._is_brief = brief
        self._answers: BoundedDict[K, V] = BoundedDict(
            limits.max_entries,
            max_age=limits.fresh_for,
            max_bytes=limits.max_bytes,
            size=size,
            clock=monotonic,
        )
        self._failures: BoundedDict[K, Failure] = BoundedDict(
            limits.max_entries, max_age=limits.failure_ttl, clock=monotonic
        )
        self._brief: BoundedDict[K, V] = BoundedDict(
            limits.max_entries, max_age=limits.failure_ttl, clock=monotonic
        )
        """Answers kept only as long as failures (see `brief`)."""
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self.loads = 0
        """How many loads ran (for tests and benchmarks)."""

    @property
    def enabled(self) -> bool:
        return self.limits.fresh_for > 0

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def bytes(self) -> int:
        return self._answers.bytes

    def age(self, key: K) -> float:
        """Seconds the answer of `key` has been remembered (0 when it is not: just loaded)."""
        age = self._answers.age(key)
        if age is None:
            age = self._brief.age(key)
        return age or 0.0

    def failure(self, key: K) -> Failure | None:
        """The remembered failure of `key`, while it has not expired."""
        return self._failures.get(key)

    async def get(
        self,
        key: K,
        load: Callable[[], Awaitable[V]],
        *,
        timeout: float | None = None,
        late: Callable[[float], VerificationError] | None = None,
    ) -> V:
        """The answer of `key`: remembered, shared with a load in flight, or loaded now.

        The caller waits at most `timeout` seconds (the load goes on for the others); then
        it gets `late(timeout)`, or a VerificationError saying it ran out of time.
        """
        if not self.enabled:
            self.loads += 1
            return await load()
        answer = self._answers.get(key)
        if answer is None:
            answer = self._brief.get(key)
        if answer is not None:
            return answer
        pending = self._inflight.get(key)
        if pending is None:
            failure = self._failures.get(key)
            if failure is not None:
                raise failure.error()
            pending = asyncio.ensure_future(self._load(key, load))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._settled(key, done))
        if timeout is None:
            return await asyncio.shield(pending)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await asyncio.shield(pending)
        except TimeoutError:
            if not deadline.expired():
                raise
            if late is not None:
                raise late(timeout) from None
            raise VerificationError(
                f"no answer within the verification budget ({timeout:.3g}s left)"
            ) from None

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        self.loads += 1
        try:
            answer = await load()
        except VerificationError as exc:
            self._remember_failure(key, exc)
            raise
        if self._is_brief is not None and self._is_brief(answer):
            if self.limits.failure_ttl > 0:
                self._brief.put(key, answer)
        else:
            self._answers.put(key, answer)
        return answer

    def _remember_failure(self, key: K, error: VerificationError) -> None:
        failure = shared_failure(error) if self.limits.failure_ttl > 0 else None
        if failure is not None:
            self._failures.put(key, failure)

    def _settled(self, key: K, done: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        # Retrieve the exception so a load nobody waits for any more is never reported
        # as unhandled.
        if not done.cancelled() and done.exception() is not None:
            LOG.debug("shared load failed: %s", done.exception())

    async def close(self) -> None:
        """Cancel the loads in flight (at shutdown) and forget everything."""
        pending = list(self._inflight.values())
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._inflight.clear()
        self._answers.clear()
        self._brief.clear()
        self._failures.clear()
