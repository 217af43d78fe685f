"""The trust state shared through a file by several processes' stores and caches (state_store.py,
cluster/trust_state_backends.FileBackend), driven by real TUF refreshes of simulated repositories."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from portieris_webhook import cli
from portieris_webhook.cluster.trust_state_backends import FileBackend
from portieris_webhook.errors import TrustStateError
from portieris_webhook.trust.cache import CacheLimits, TrustCache
from portieris_webhook.trust.errors import RollbackError, TrustError
from portieris_webhook.trust.persisted import StateLimits, decode, reset
from portieris_webhook.trust.state_store import StoreSettings, TrustStateStore, update

from tests.unit.trust.simulator import GUN, RepositorySimulator
from tests.unit.trust.test_cache import SERVER, Clock, FakeServer, loader


def impostor() -> RepositorySimulator:
    """Another repository published under the same GUN: genuine-looking, other keys."""
    other = RepositorySimulator()
    other.delegate("targets/releases")
    other.add_target("targets/releases", "v1", b"evil")
    return other


class Process:
    """One webhook process: its trust cache and its store on the shared file."""

    def __init__(self, path: Path, limits: StateLimits | None = None) -> None:
        self.store = TrustStateStore(
            FileBackend(str(path)), StoreSettings(limits=limits or StateLimits())
        )
        self.cache = TrustCache(0.0, Clock(), CacheLimits(failure_ttl=0))
        self.store.attach(self.cache)

    async def verify(self, server: FakeServer, gun: str = GUN):
        return await self.cache.get(SERVER, gun, loader(server), 5.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "trust-state.json"


async def test_a_verification_is_noted_at_once_and_written_later(repo, path) -> None:
    process = Process(path)
    await process.store.sync()

    await process.verify(FakeServer(repo))

    assert (SERVER, GUN) in process.store.pending and not path.exists()
    await process.store.sync()
    assert decode(path.read_text()).records[(SERVER, GUN)].root == repo.root_bytes


async def test_a_restarted_process_refuses_another_root_for_a_gun_trusted_before(
    repo, path
) -> None:
    first = Process(path)
    await first.store.sync()
    await first.verify(FakeServer(repo))
    await first.store.sync()

    restarted = Process(path)
    await restarted.store.sync()

    with pytest.raises(TrustError, match="differs"):
        await restarted.verify(FakeServer(impostor()))
    assert await restarted.verify(FakeServer(repo))


async def test_a_restarted_process_refuses_versions_older_than_seen_before(repo, path) -> None:
    old = FakeServer(repo)
    first = Process(path)
    await first.store.sync()
    repo.publish(bump=True)
    await first.verify(FakeServer(repo))
    await first.store.sync()

    restarted = Process(path)
    await restarted.store.sync()

    with pytest.raises(RollbackError):
        await restarted.verify(old)


async def test_concurrent_writers_merge_and_neither_loses_its_entry(path) -> None:
    a, b = Process(path), Process(path)
    await asyncio.gather(a.store.sync(), b.store.sync())
    repo_a, repo_b = RepositorySimulator("reg.io/a"), RepositorySimulator("reg.io/b")
    for sim in (repo_a, repo_b):
        sim.delegate("targets/releases")

    async def verify(process: Process, sim: RepositorySimulator) -> None:
        server = FakeServer(sim)

        async def load(state, now):
            from portieris_webhook.trust.updater import refresh

            return await refresh(sim.gun, state, server.fetch, now)

        await process.cache.get(SERVER, sim.gun, load, 5.0)

    await verify(a, repo_a)
    await verify(b, repo_b)
    await asyncio.gather(a.store.sync(), b.store.sync())

    records = decode(path.read_text()).records
    assert set(records) == {(SERVER, "reg.io/a"), (SERVER, "reg.io/b")}


async def test_a_replica_that_trusted_another_root_first_adopts_the_one_written_first(
    repo, path
) -> None:
    honest, fooled = Process(path), Process(path)
    await asyncio.gather(honest.store.sync(), fooled.store.sync())
    await honest.verify(FakeServer(repo))
    await fooled.verify(FakeServer(impostor()))
    await honest.store.sync()

    await fooled.store.sync()

    assert decode(path.read_text()).records[(SERVER, GUN)].root == repo.root_bytes
    with pytest.raises(TrustError, match="differs"):
        await fooled.verify(FakeServer(impostor()))
    assert await fooled.verify(FakeServer(repo))


async def test_a_reset_makes_every_process_trust_on_first_use_again(repo, path) -> None:
    process = Process(path)
    await process.store.sync()
    await process.verify(FakeServer(repo))
    await process.store.sync()
    replaced = impostor()  # say, the publisher lost its keys and made a new repository

    await update(FileBackend(str(path)), lambda d: reset(d, (SERVER, GUN), 1))
    await process.store.sync()

    assert await process.verify(FakeServer(replaced))
    await process.store.sync()
    assert decode(path.read_text()).records[(SERVER, GUN)].root == replaced.root_bytes


async def test_past_its_bound_the_oldest_used_are_dropped_and_logged_once(path, caplog) -> None:
    process = Process(path, StateLimits(max_entries=2))
    await process.store.sync()
    sims = [RepositorySimulator(f"reg.io/app{i}") for i in range(4)]
    caplog.set_level(logging.WARNING)
    for used, sim in enumerate(sims):
        sim.delegate("targets/releases")
        server = FakeServer(sim)

        async def load(state, now, sim=sim, server=server):
            from portieris_webhook.trust.updater import refresh

            return await refresh(sim.gun, state, server.fetch, now)

        process.store.clock = lambda used=used: 1000.0 + used * 10_000
        await process.cache.get(SERVER, sim.gun, load, 5.0)
        await process.store.sync()

    records = decode(path.read_text()).records
    assert sorted(g for _, g in records) == ["reg.io/app2", "reg.io/app3"]
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1


async def test_a_file_that_is_not_a_trust_state_is_never_overwritten(repo, path) -> None:
    path.write_text('{"format": 99}')
    process = Process(path)

    with pytest.raises(TrustStateError, match="format 99"):
        await process.store.sync()
    assert path.read_text() == '{"format": 99}'
    assert not process.store.is_loaded()


def test_trust_state_show_and_reset_on_a_file(repo, path, capsys) -> None:
    async def fill() -> None:
        process = Process(path)
        await process.store.sync()
        await process.verify(FakeServer(repo))
        await process.store.sync()

    asyncio.run(fill())

    assert cli.main(["trust-state", "show", "--trust-state-file", str(path)]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["server"], entry["gun"], entry["root_version"]) == (SERVER, GUN, 1)
    assert cli.main(["trust-state", "show", "--trust-state-file", str(path), "--gun", "x"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    argv = ["trust-state", "reset", "--trust-state-file", str(path), "--server", SERVER]
    assert cli.main([*argv, "--gun", GUN]) == 0
    assert "forgotten" in capsys.readouterr().out
    record = decode(path.read_text()).records[(SERVER, GUN)]
    assert record.root is None and record.generation == 1
    assert cli.main(argv) == 2  # reset needs the GUN


async def test_a_refresh_that_learns_nothing_new_queues_no_write(repo, path) -> None:
    process = Process(path)
    await process.store.sync()
    server = FakeServer(repo)
    await process.verify(server)
    await process.store.sync()

    await process.verify(server)  # refreshed again (interval 0), same root and versions

    assert not process.store.pending
    server.files = repo.publish(bump=True)
    await process.verify(server)
    assert process.store.pending[(SERVER, GUN)].seen["timestamp"] == 2
