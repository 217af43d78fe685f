"""SharedAnswers: the warm path's reuse window, single flight and short failure memory.

Pure: loaders are coroutines of the test and the clock is moved by hand.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from portieris_webhook.errors import (
    AccessRefused,
    ReadBudgetExhausted,
    RemoteError,
    VerificationError,
)
from portieris_webhook.registry.credentials import credential_identity
from portieris_webhook.remote.shared_answers import (
    Failure,
    FreshnessLimits,
    SharedAnswers,
)

from tests.builders import ManualClock


class Loader:
    """Answers `value` (or raises `error`), counting calls; `gate` holds calls until set."""

    def __init__(self, value: object = "answer", error: BaseException | None = None) -> None:
        self.value = value
        self.error = error
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> object:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Big:
    def __init__(self) -> None:
        self.payload = bytearray(1024 * 1024)


def answers(
    clock: ManualClock | None = None, fresh_for: float = 30.0, **limits: float
) -> SharedAnswers[str, object]:
    return SharedAnswers(
        FreshnessLimits(fresh_for, **limits),  # type: ignore[arg-type]
        size=lambda v: len(v) if isinstance(v, bytes) else 1,
        monotonic=clock or ManualClock(),
    )


# --- the window --------------------------------------------------------------------------


async def test_an_answer_is_reused_within_the_window_and_loaded_again_after_it() -> None:
    clock = ManualClock()
    cache = answers(clock, fresh_for=30.0)
    load = Loader()

    await cache.get("k", load)
    clock.now += 29.9
    await cache.get("k", load)
    assert load.calls == 1
    clock.now += 0.1
    load.value = "moved"

    assert await cache.get("k", load) == "moved"
    assert load.calls == 2


async def test_a_window_of_zero_loads_every_time_and_shares_nothing() -> None:
    cache = answers(fresh_for=0)
    load = Loader()
    load.gate = asyncio.Event()

    calls = [asyncio.ensure_future(cache.get("k", load)) for _ in range(3)]
    await asyncio.sleep(0)
    load.gate.set()
    await asyncio.gather(*calls)
    await cache.get("k", load)

    assert load.calls == 4 and cache.loads == 4 and len(cache) == 0


async def test_each_key_has_its_own_answer() -> None:
    cache = answers()
    first, second = Loader("one"), Loader("two")
    assert await cache.get("a", first) == "one"
    assert await cache.get("b", second) == "two"
    assert await cache.get("a", second) == "one"
    assert (first.calls, second.calls) == (1, 1)


# --- single flight -----------------------------------------------------------------------


async def test_concurrent_requests_for_one_key_share_one_load() -> None:
    cache = answers()
    load = Loader()
    load.gate = asyncio.Event()

    calls = [asyncio.ensure_future(cache.get("k", load)) for _ in range(20)]
    await asyncio.sleep(0)
    load.gate.set()

    assert await asyncio.gather(*calls) == ["answer"] * 20
    assert load.calls == 1 and cache.loads == 1


async def test_a_caller_that_gives_up_does_not_cancel_the_load_for_the_others() -> None:
    cache = answers()
    load = Loader()
    load.gate = asyncio.Event()
    patient = asyncio.ensure_future(cache.get("k", load, timeout=60.0))
    await asyncio.sleep(0)

    with pytest.raises(RemoteError, match=r"late after 0\.01"):
        await cache.get("k", load, timeout=0.01, late=lambda t: RemoteError(f"late after {t}"))
    load.gate.set()

    assert await patient == "answer"
    assert load.calls == 1


async def test_a_cancelled_caller_does_not_cancel_the_load_for_the_others() -> None:
    cache = answers()
    load = Loader()
    load.gate = asyncio.Event()
    first = asyncio.ensure_future(cache.get("k", load))
    second = asyncio.ensure_future(cache.get("k", load))
    await asyncio.sleep(0)

    first.cancel()
    await asyncio.sleep(0)
    load.gate.set()

    assert await second == "answer"
    assert first.cancelled() and load.calls == 1


async def test_a_timeout_raised_by_the_load_itself_is_not_taken_for_the_callers() -> None:
    cache = answers()
    with pytest.raises(TimeoutError):
        await cache.get("k", Loader(error=TimeoutError()), timeout=60.0)


async def test_closing_cancels_loads_in_flight() -> None:
    cache = answers()
    load = Loader()
    load.gate = asyncio.Event()
    waiting = asyncio.ensure_future(cache.get("k", load))
    await asyncio.sleep(0)

    await cache.close()

    with pytest.raises(asyncio.CancelledError):
        await waiting


# --- failures ----------------------------------------------------------------------------


async def test_a_failure_is_remembered_briefly_then_asked_again() -> None:
    clock = ManualClock()
    cache = answers(clock, failure_ttl=5.0)
    load = Loader(error=RemoteError("store.example: answered HTTP 500"))

    for _ in range(3):
        with pytest.raises(RemoteError, match="answered HTTP 500"):
            await cache.get("k", load)
    assert load.calls == 1
    clock.now += 5.0
    load.error = None

    assert await cache.get("k", load) == "answer"
    assert load.calls == 2


async def test_a_failure_is_remembered_as_class_and_message_only() -> None:
    """Tracebacks pin every frame's locals: a remembered failure must not keep them alive."""
    witness: list[weakref.ref[Big]] = []

    async def failing() -> object:
        big = Big()  # a local of the failing frame
        witness.append(weakref.ref(big))
        raise RemoteError("x" * 5000)

    cache = answers()
    with pytest.raises(RemoteError):
        await cache.get("k", failing)
    await asyncio.sleep(0)  # let the event loop drop its own last references
    gc.collect()

    assert cache.failure("k") == Failure(RemoteError, "x" * 1024)
    assert witness[0]() is None


@pytest.mark.parametrize(
    "error",
    [
        AccessRefused("registry refused access (HTTP 401)"),
        ReadBudgetExhausted("stopped reading at the limit for one admission request"),
        KeyError("a bug"),
    ],
)
async def test_failures_of_the_asker_and_bugs_are_not_remembered(error: Exception) -> None:
    cache = answers(failure_ttl=5.0)
    load = Loader(error=error)

    for _ in range(2):
        with pytest.raises(type(error)):
            await cache.get("k", load)

    assert load.calls == 2 and cache.failure("k") is None


async def test_a_failure_ttl_of_zero_remembers_nothing() -> None:
    cache = answers(failure_ttl=0)
    load = Loader(error=VerificationError("no such manifest"))
    for _ in range(2):
        with pytest.raises(VerificationError):
            await cache.get("k", load)
    assert load.calls == 2


# --- bounds ------------------------------------------------------------------------------


async def test_answers_stay_within_the_entry_bound() -> None:
    cache = answers(max_entries=10)
    for n in range(100):
        await cache.get(f"k{n}", Loader())
    assert len(cache) == 10


async def test_answers_stay_within_the_byte_bound_and_a_huge_one_is_not_kept() -> None:
    cache = answers(max_bytes=1000)
    for n in range(10):
        await cache.get(f"k{n}", Loader(b"x" * 300))
    assert len(cache) == 3 and cache.bytes == 900

    huge = Loader(b"y" * 2000)
    await cache.get("huge", huge)
    await cache.get("huge", huge)
    assert huge.calls == 2 and cache.bytes <= 1000


async def test_failures_do_not_push_answers_out() -> None:
    cache = answers(max_entries=3)
    good = Loader()
    for n in range(3):
        await cache.get(f"good{n}", good)
    for n in range(50):
        with pytest.raises(RemoteError):
            await cache.get(f"bad{n}", Loader(error=RemoteError("down")))

    for n in range(3):
        await cache.get(f"good{n}", good)
    assert good.calls == 3


# --- credential identity -----------------------------------------------------------------


def test_credential_identity_tells_credentials_apart_without_holding_the_password() -> None:
    alice = credential_identity([("alice", "s3cret")])
    assert alice == credential_identity([("alice", "s3cret")])
    assert alice != credential_identity([("alice", "other")])
    assert alice != credential_identity([])
    assert credential_identity([("a", "b:c")]) != credential_identity([("a:b", "c")])
    assert "s3cret" not in alice


# --- brief answers -----------------------------------------------------------------------


async def test_a_brief_answer_is_kept_only_as_long_as_a_failure() -> None:
    clock = ManualClock()
    cache: SharedAnswers[str, object] = SharedAnswers(
        FreshnessLimits(30.0, failure_ttl=5.0), brief=lambda v: v == (), monotonic=clock
    )
    empty, full = Loader(value=()), Loader(value=(b"sig",))

    await cache.get("empty", empty)
    await cache.get("full", full)
    clock.now += 4.9
    await cache.get("empty", empty)
    await cache.get("full", full)
    assert (empty.calls, full.calls) == (1, 1)
    clock.now += 0.2
    await cache.get("empty", empty)
    await cache.get("full", full)
    assert (empty.calls, full.calls) == (2, 1)


async def test_a_brief_answer_is_not_kept_when_failures_are_not() -> None:
    cache: SharedAnswers[str, object] = SharedAnswers(
        FreshnessLimits(30.0, failure_ttl=0.0), brief=lambda v: v == (), monotonic=ManualClock()
    )
    empty = Loader(value=())

    await cache.get("k", empty)
    await cache.get("k", empty)
    assert empty.calls == 2


async def test_the_age_of_an_answer_counts_from_its_load() -> None:
    clock = ManualClock()
    cache = answers(clock, fresh_for=30.0)
    load = Loader()
    assert cache.age("k") == 0.0
    await cache.get("k", load)
    clock.now += 12.0
    await cache.get("k", load)
    assert cache.age("k") == 12.0
