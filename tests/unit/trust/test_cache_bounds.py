"""The trust cache is bounded: entries, bytes and age; failures are small and short-lived.

One client naming ever new repositories must not grow the webhook's memory:
the cache keeps at most `max_entries` repositories and `max_bytes` of raw
metadata, forgets repositories unused for `max_age` seconds, and remembers a
failed lookup only as a short message for `failure_ttl` seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import weakref

import pytest

from portieris_webhook.errors import AccessRefused, ReadBudgetExhausted, RemoteError
from portieris_webhook.trust.cache import CacheLimits, Failure, TrustCache
from portieris_webhook.trust.errors import TrustError
from portieris_webhook.trust.trusted_set import TrustData
from portieris_webhook.trust.updater import GunState

from tests.builders import ManualClock
from tests.unit.trust.conftest import load_files
from tests.unit.trust.simulator import NOW, RepositorySimulator

SERVER = "https://notary.example.com"


@pytest.fixture
def data(repo: RepositorySimulator) -> TrustData:
    return load_files(repo.publish())


def cache_with(monotonic: ManualClock | None = None, **limits: float) -> TrustCache:
    return TrustCache(
        30.0, lambda: NOW, CacheLimits(**limits), monotonic=monotonic or ManualClock()
    )


def returning(data: TrustData):
    async def load(state: GunState, now: datetime.datetime) -> TrustData:
        return data

    return load


class Failing:
    """A loader that fails, counting its calls."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error or TrustError("no trust data for it (the repository is not signed)")

    async def __call__(self, state: GunState, now: datetime.datetime) -> TrustData:
        self.calls += 1
        raise self.error


class Big:
    def __init__(self) -> None:
        self.payload = bytearray(1024 * 1024)


def gun(n: int) -> str:
    return f"registry.example.com/flood/repo-{n}"


def size_of(data: TrustData) -> int:
    return sum(len(raw) for raw in data.raw.values())


# --- entries and bytes -----------------------------------------------------------------


async def test_many_distinct_repositories_keep_the_entry_count_at_the_bound(data):
    cache = cache_with(max_entries=50)

    counts = []
    for n in range(500):
        await cache.get(SERVER, gun(n), returning(data), 5.0)
        counts.append(cache.stats().entries)

    assert max(counts) == 50 and counts[-1] == 50


async def test_the_least_recently_used_repository_is_the_one_forgotten(data):
    cache = cache_with(max_entries=3)
    for n in (1, 2, 3):
        await cache.get(SERVER, gun(n), returning(data), 5.0)
    await cache.get(SERVER, gun(1), returning(data), 5.0)

    await cache.get(SERVER, gun(4), returning(data), 5.0)

    assert [(SERVER, gun(n)) in cache for n in (1, 2, 3, 4)] == [True, False, True, True]


async def test_the_metadata_kept_stays_within_the_byte_bound(data):
    cache = cache_with(max_bytes=int(size_of(data) * 2.5))

    for n in range(20):
        await cache.get(SERVER, gun(n), returning(data), 5.0)

    stats = cache.stats()
    assert stats.entries == 2 and stats.bytes == 2 * size_of(data)


async def test_a_repository_unused_for_longer_than_the_max_age_is_forgotten(data):
    clock = ManualClock()
    cache = cache_with(clock, max_age=3600.0)
    await cache.get(SERVER, gun(1), returning(data), 5.0)
    clock.now += 1800.0
    await cache.get(SERVER, gun(2), returning(data), 5.0)
    clock.now += 1801.0

    await cache.get(SERVER, gun(3), returning(data), 5.0)

    assert [(SERVER, gun(n)) in cache for n in (1, 2, 3)] == [False, True, True]


async def test_asking_whether_data_is_fresh_creates_no_entries():
    cache = cache_with()

    assert all(cache.fresh(SERVER, gun(n)) is None for n in range(100))
    assert cache.stats().entries == 0


# --- failures --------------------------------------------------------------------------


async def test_a_failure_keeps_neither_the_exception_nor_its_frames():
    """Tracebacks pin every frame's locals: a failure must not keep them alive."""
    witness: list[weakref.ref[Big]] = []

    async def load(state: GunState, now: datetime.datetime) -> TrustData:
        big = Big()  # a local of the failing frame
        witness.append(weakref.ref(big))
        raise TrustError("notary server answered HTTP 500")

    cache = cache_with()
    with pytest.raises(TrustError):
        await cache.get(SERVER, gun(1), load, 5.0)
    await asyncio.sleep(0)  # let the event loop drop its own last references
    gc.collect()

    assert witness[0]() is None
    assert cache.failure(SERVER, gun(1)) == Failure(
        TrustError, "notary server answered HTTP 500", expires_at=1005.0
    )


async def test_a_failure_is_answered_from_memory_until_it_expires():
    clock = ManualClock()
    cache = cache_with(clock, failure_ttl=5.0)
    failing = Failing(RemoteError("notary.example.com: no answer within 5s"))

    for _ in range(3):
        with pytest.raises(RemoteError, match="no answer within 5s"):
            await cache.get(SERVER, gun(1), failing, 5.0)
    calls_within_ttl = failing.calls
    clock.now += 5.0
    with pytest.raises(RemoteError):
        await cache.get(SERVER, gun(1), failing, 5.0)

    assert (calls_within_ttl, failing.calls) == (1, 2)


async def test_with_a_failure_ttl_of_zero_every_request_tries_again():
    cache = cache_with(failure_ttl=0.0)
    failing = Failing()

    for _ in range(3):
        with pytest.raises(TrustError):
            await cache.get(SERVER, gun(1), failing, 5.0)

    assert failing.calls == 3 and cache.failure(SERVER, gun(1)) is None


async def test_failures_of_many_repositories_stay_within_the_bound():
    cache = cache_with(max_entries=50)
    failing = Failing()

    for n in range(500):
        with pytest.raises(TrustError):
            await cache.get(SERVER, gun(n), failing, 5.0)

    stats = cache.stats()
    assert stats.failures == 50 and stats.entries == 0


async def test_failing_lookups_do_not_push_verified_repositories_out(data):
    cache = cache_with(max_entries=3)
    for n in (1, 2, 3):
        await cache.get(SERVER, gun(n), returning(data), 5.0)

    for n in range(100, 200):
        with pytest.raises(TrustError):
            await cache.get(SERVER, gun(n), Failing(), 5.0)

    assert all(cache.fresh(SERVER, gun(n)) is data for n in (1, 2, 3))


async def test_unexpected_errors_are_not_remembered():
    cache = cache_with()
    failing = Failing(KeyError("a bug"))

    for _ in range(2):
        with pytest.raises(KeyError):
            await cache.get(SERVER, gun(1), failing, 5.0)

    assert failing.calls == 2 and cache.failure(SERVER, gun(1)) is None


async def test_a_refusal_of_access_is_not_remembered_since_it_depends_on_who_asks():
    """Another request may carry the pull secret the server wants."""
    cache = cache_with(failure_ttl=5.0)
    failing = Failing(AccessRefused("notary server refused access to trust data of it"))

    for _ in range(2):
        with pytest.raises(AccessRefused):
            await cache.get(SERVER, gun(1), failing, 5.0)

    assert failing.calls == 2 and cache.failure(SERVER, gun(1)) is None


@pytest.mark.parametrize(
    "error",
    [
        ReadBudgetExhausted("trust data of it: more than the 4 MiB one image may read"),
        AccessRefused("notary server refused access to trust data of it"),
    ],
    ids=["read budget spent", "credentials refused"],
)
async def test_a_failure_of_the_asking_requests_own_is_never_handed_to_another(error):
    """A spent read budget, like refused credentials, belongs to the request that met it:
    the next request has its own budget and its own pull secrets (errors.askers_own)."""
    cache = cache_with(failure_ttl=5.0)
    failing = Failing(error)

    for _ in range(2):
        with pytest.raises(type(error)):
            await cache.get(SERVER, gun(1), failing, 5.0)

    assert failing.calls == 2 and cache.failure(SERVER, gun(1)) is None
