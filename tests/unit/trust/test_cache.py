"""Freshness and single flight of the per-GUN trust cache, and what a refresh fetches."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from portieris_webhook.errors import RemoteError
from portieris_webhook.trust.cache import CacheLimits, TrustCache
from portieris_webhook.trust.errors import TrustError
from portieris_webhook.trust.lookup import find_tag
from portieris_webhook.trust.updater import GunState, refresh

from tests.unit.trust.simulator import GUN, NOW, RepositorySimulator

SERVER = "https://notary.example.com"


class FakeServer:
    """Serves a simulator's files and counts requests per role."""

    def __init__(self, repo: RepositorySimulator) -> None:
        self.files = repo.publish()
        self.requests: list[str] = []
        self.delay = 0.0

    async def fetch(self, role: str, max_bytes: int) -> bytes | None:
        self.requests.append(role)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.files.get(role)


def loader(server: FakeServer):
    async def load(state: GunState, now: datetime.datetime):
        return await refresh(GUN, state, server.fetch, now)

    return load


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now


async def test_a_cold_load_fetches_the_top_level_roles_and_releases_at_once(repo):
    server = FakeServer(repo)
    cache = TrustCache(30.0, Clock())

    await cache.get(SERVER, GUN, loader(server), 5.0)

    assert sorted(server.requests) == sorted(
        ["root", "timestamp", "snapshot", "targets", "targets/releases"]
    )


async def test_fresh_data_is_answered_without_asking_the_server(repo):
    server = FakeServer(repo)
    cache = TrustCache(30.0, Clock())
    await cache.get(SERVER, GUN, loader(server), 5.0)
    server.requests.clear()

    await cache.get(SERVER, GUN, loader(server), 5.0)

    assert server.requests == []


async def test_after_the_refresh_interval_only_the_timestamp_is_fetched_if_unchanged(repo):
    server = FakeServer(repo)
    cache = TrustCache(0.0, Clock())
    await cache.get(SERVER, GUN, loader(server), 5.0)
    server.requests.clear()

    await cache.get(SERVER, GUN, loader(server), 5.0)

    assert server.requests == ["timestamp"]


async def test_a_new_publish_is_fetched_but_unchanged_roles_are_reused(repo):
    server = FakeServer(repo)
    cache = TrustCache(0.0, Clock())
    await cache.get(SERVER, GUN, loader(server), 5.0)
    server.requests.clear()
    repo.add_target("targets/releases", "v2", b"v2")
    repo.delegations["targets/releases"].version += 1
    repo.snapshot.version += 1
    repo.timestamp.version += 1
    server.files = repo.publish()

    data = await cache.get(SERVER, GUN, loader(server), 5.0)

    assert sorted(server.requests) == ["root", "snapshot", "targets/releases", "timestamp"]
    assert find_tag(data, "v2") is not None


async def test_data_past_an_expiry_is_refreshed_even_within_the_interval(repo):
    server = FakeServer(repo)
    clock = Clock()
    cache = TrustCache(3600.0, clock)
    await cache.get(SERVER, GUN, loader(server), 5.0)
    clock.now = NOW + datetime.timedelta(days=20)

    with pytest.raises(TrustError, match="timestamp metadata expired"):
        await cache.get(SERVER, GUN, loader(server), 5.0)


async def test_concurrent_requests_for_one_gun_share_one_refresh(repo):
    server = FakeServer(repo)
    server.delay = 0.05
    cache = TrustCache(30.0, Clock())

    results = await asyncio.gather(
        *(cache.get(SERVER, GUN, loader(server), 5.0) for _ in range(20))
    )

    assert cache.refreshes == 1 and len(server.requests) == 5
    assert all(r is results[0] for r in results)


async def test_a_request_that_gives_up_does_not_cancel_the_shared_refresh(repo):
    server = FakeServer(repo)
    server.delay = 0.1
    cache = TrustCache(30.0, Clock())

    with pytest.raises(RemoteError, match="did not arrive within the verification budget"):
        await cache.get(SERVER, GUN, loader(server), 0.01)
    await asyncio.sleep(0.3)

    assert cache.fresh(SERVER, GUN) is not None


async def test_a_failed_refresh_is_tried_again_once_its_failure_expires(repo):
    server = FakeServer(repo)
    good = dict(server.files)
    server.files["timestamp"] = b"garbage"
    monotonic = [0.0]
    cache = TrustCache(30.0, Clock(), CacheLimits(failure_ttl=5.0), monotonic=lambda: monotonic[0])
    with pytest.raises(TrustError):
        await cache.get(SERVER, GUN, loader(server), 5.0)
    server.files = good
    monotonic[0] += 5.0

    data = await cache.get(SERVER, GUN, loader(server), 5.0)

    assert cache.refreshes == 2 and find_tag(data, "v1") is not None


async def test_a_rotated_root_is_followed_on_refresh(repo):
    server = FakeServer(repo)
    cache = TrustCache(0.0, Clock())
    await cache.get(SERVER, GUN, loader(server), 5.0)
    from tests.unit.trust.simulator import make_key

    repo.rotate_root([make_key("ecdsa-x509")])
    repo.rotate_root([make_key("ecdsa-x509")])
    server.files = repo.publish(bump=True)
    server.requests.clear()

    data = await cache.get(SERVER, GUN, loader(server), 5.0)

    assert data.root.version == 3 and "2.root" in server.requests


async def test_the_age_of_trust_data_counts_from_its_last_check_with_the_server(repo):
    seconds = [100.0]
    server = FakeServer(repo)
    cache = TrustCache(30.0, Clock(), monotonic=lambda: seconds[0])
    assert cache.age(SERVER, GUN) == 0.0
    await cache.get(SERVER, GUN, loader(server), 5.0)
    seconds[0] += 12.5
    assert cache.age(SERVER, GUN) == 12.5
    await cache.get(SERVER, GUN, loader(server), 5.0)  # fresh: no check, still as old
    assert cache.age(SERVER, GUN) == 12.5
