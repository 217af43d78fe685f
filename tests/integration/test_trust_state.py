"""Trust on first use that outlives the process, against the real notary-server.

Each `verifier` below is a fresh process state (new enforcer, trust cache and
store) on the same `--trust-state-file`: what the first trusted, the next one
must hold to, as a restarted webhook or another replica must.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portieris_webhook.cluster.trust_state_backends import FileBackend
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.trust.state_store import TrustStateStore
from portieris_webhook.wiring import enforcer_for

from tests.builders import decide, memory_state
from tests.fixtures.notary import NotarySigner
from tests.fixtures.trust_helpers import trust_policy

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def verifier(path: Path, trust_server: str, pattern: str, ca_file: Path) -> AsyncIterator[Enforcer]:  # fmt: skip
    """A webhook process as `admit --trust-state-file` runs one: read, decide, write."""
    store = TrustStateStore(FileBackend(str(path)))
    await store.sync()
    settings = Settings(ca_file=str(ca_file), trust_refresh_interval=0.0, trust_failure_ttl=0)
    state = memory_state(trust_policy(pattern, trust_server))
    async with enforcer_for(state, settings, store) as enforcer:
        yield enforcer
    await store.sync()


def portieris_webhook(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portieris_webhook.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "trust-state.json"


async def test_a_new_process_refuses_a_new_root_for_a_repository_trusted_before_until_reset(
    signed, notary_signer, notary_server, tmp_path_factory, state_file
) -> None:
    where = (state_file, notary_server.url, f"{signed.host}/*", notary_server.ca_file)
    async with verifier(*where) as first:
        trusted = await decide(first, signed.ref)
    # The repository is deleted and created again with new keys: a new root, certificate and
    # all, for the same GUN (what a server, or whoever answers for it, can do at any time).
    notary_signer.delete(signed.name)
    other = NotarySigner(notary_server, tmp_path_factory.mktemp("notary-other"))
    other.sign(signed.name, signed.tag, signed.size, signed.hex)

    async with verifier(*where) as second:
        refused = await decide(second, signed.ref)
    reset = await asyncio.to_thread(
        portieris_webhook,
        "trust-state", "reset", "--trust-state-file", str(state_file),
        "--server", notary_server.url, "--gun", signed.name,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    async with verifier(*where) as after_reset:
        retrusted = await decide(after_reset, signed.ref)
    async with verifier(*where) as later:
        kept = await decide(later, signed.ref)

    assert trusted.response.allowed, trusted.summary
    assert not refused.response.allowed
    assert "is trusted and differs from it" in refused.response.message
    assert retrusted.response.allowed, retrusted.summary
    assert kept.response.allowed, kept.summary


async def test_a_new_process_refuses_rolled_back_trust_data(
    signed, image_factory, notary_signer, proxy, notary_server, state_file
) -> None:
    where = (state_file, proxy.url, f"{signed.host}/*", notary_server.ca_file)
    async with verifier(*where) as first:
        old_v1 = await decide(first, signed.ref)
        old = dict(proxy.record)
        v2 = image_factory("v2", repo=signed.repo)
        notary_signer.add_hash(signed.name, "v2", v2.size, v2.hex, publish=True)
        newer = await decide(first, v2.ref)
    for path, body in old.items():
        proxy.replace[path.rsplit("/_trust/tuf/", 1)[1]] = body

    async with verifier(*where) as restarted:
        replayed = await decide(restarted, signed.ref)

    assert old_v1.response.allowed and newer.response.allowed, newer.summary
    assert not replayed.response.allowed
    assert "(rollback)" in replayed.response.message


async def test_a_replayed_older_snapshot_is_refused_by_a_new_process(
    signed, image_factory, notary_signer, proxy, notary_server, state_file
) -> None:
    where = (state_file, proxy.url, f"{signed.host}/*", notary_server.ca_file)
    async with verifier(*where) as first:
        await decide(first, signed.ref)
        old_snapshot = next(b for p, b in proxy.record.items() if p.endswith("/snapshot.json"))
        old_timestamp = next(b for p, b in proxy.record.items() if p.endswith("/timestamp.json"))
        v2 = image_factory("v2", repo=signed.repo)
        notary_signer.add_hash(signed.name, "v2", v2.size, v2.hex, publish=True)
        await decide(first, v2.ref)
    proxy.replace["snapshot.json"] = old_snapshot
    proxy.replace["timestamp.json"] = old_timestamp

    async with verifier(*where) as restarted:
        replayed = await decide(restarted, signed.ref)

    assert not replayed.response.allowed
    assert "older than version" in replayed.response.message


async def test_show_names_the_trusted_root_of_each_repository(
    signed, notary_server, state_file
) -> None:
    async with verifier(
        state_file, notary_server.url, f"{signed.host}/*", notary_server.ca_file
    ) as e:
        await decide(e, signed.ref)
    root = json.loads(notary_server.fetch(signed.name, "root"))["signed"]

    show = await asyncio.to_thread(
        portieris_webhook, "trust-state", "show", "--trust-state-file", str(state_file)
    )

    (entry,) = json.loads(show.stdout)
    assert entry["gun"] == signed.name and entry["server"] == notary_server.url
    assert entry["root_keyids"] == root["roles"]["root"]["keyids"]
    assert entry["seen"]["timestamp"] >= 1 and entry["seen"]["snapshot"] >= 1
