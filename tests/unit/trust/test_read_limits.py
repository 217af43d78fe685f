"""How much one refresh may read from a notary server: per document and in all.

Each document is fetched with a limit: the length its parent role records
when that is known (exactly), else the most a document of its kind may be.
A recorded length above that most is refused without fetching, and one
refresh reads no more than its budget whatever the documents claim.
tests/integration/test_trust_limits.py shows a real HTTP answer cut off.
"""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest

from portieris_webhook.errors import RemoteError
from portieris_webhook.trust.errors import TrustError
from portieris_webhook.trust.lookup import find_tag
from portieris_webhook.trust.updater import GunState, ReadLimits, refresh

from tests.unit.trust.simulator import GUN, NOW, RepositorySimulator, envelope, file_meta

LIMITS = ReadLimits()
MiB = 1024 * 1024


class LimitedServer:
    """Serves files as an HTTP client with a size limit would: more than asked is an error."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.asked: dict[str, int] = {}
        self.served = 0

    async def fetch(self, role: str, max_bytes: int) -> bytes | None:
        self.asked[role] = max_bytes
        data = self.files.get(role)
        if data is not None and len(data) > max_bytes:
            raise RemoteError(f"response for {role} is larger than {max_bytes} bytes")
        self.served += len(data or b"")
        return data


def run(server: LimitedServer, state: GunState | None = None, now: datetime.datetime = NOW):
    return asyncio.run(refresh(GUN, state or GunState(), server.fetch, now))


def test_a_cold_load_asks_for_each_document_with_the_limit_of_its_kind(repo):
    server = LimitedServer(repo.publish())

    run(server)

    assert server.asked == {
        "root": LIMITS.root,
        "timestamp": LIMITS.timestamp,
        "snapshot": LIMITS.snapshot,
        "targets": LIMITS.targets,
        "targets/releases": LIMITS.targets,
    }


def test_the_limits_of_a_kind_are_a_few_mebibytes_at_most():
    assert LIMITS.timestamp <= 64 * 1024 and LIMITS.root <= MiB // 2
    assert max(LIMITS.snapshot, LIMITS.targets) <= 2 * MiB
    assert LIMITS.refresh <= 8 * MiB


def test_a_document_whose_length_is_recorded_is_asked_for_with_exactly_that_length(repo):
    state = GunState()
    run(LimitedServer(repo.publish()), state)
    repo.add_target("targets/releases", "v2", b"manifest v2")
    files = repo.publish(bump=True)
    server = LimitedServer(files)

    run(server, state)

    assert server.asked["targets/releases"] == len(files["targets/releases"])


def _recording_length(repo: RepositorySimulator, role: str, length: int) -> dict[str, bytes]:
    """The repository with its snapshot claiming `length` bytes for `role` (re-signed)."""
    files = repo.publish()
    snapshot = json.loads(files["snapshot"])["signed"]
    snapshot["meta"][role]["length"] = length
    files["snapshot"] = envelope(snapshot, repo.snapshot.keys)
    timestamp = json.loads(files["timestamp"])["signed"]
    timestamp["meta"]["snapshot"] = file_meta(files["snapshot"])
    files["timestamp"] = envelope(timestamp, repo.timestamp.keys)
    return files


def test_a_recorded_length_above_the_limit_of_its_kind_is_refused_without_fetching(repo):
    repo.delegate("targets/bob")
    server = LimitedServer(_recording_length(repo, "targets/bob", 3 * MiB))

    with pytest.raises(TrustError, match=r"snapshot of .* records 3145728 bytes for targets/bob"):
        run(server)
    assert "targets/bob" not in server.asked


def _padded_delegations(count: int, size: int) -> RepositorySimulator:
    """Delegations each signing one target padded to about `size` bytes (a custom field)."""
    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    sim.add_target("targets/releases", "v1", b"manifest v1")
    for n in range(count):
        role = f"targets/signer-{n}"
        sim.delegate(role)
        sim.add_target(role, "padding", b"x")
        sim.role(role).targets["padding"]["custom"] = {"pad": "x" * size}
    return sim


def test_one_refresh_reads_no_more_than_its_budget():
    files = _padded_delegations(6, int(1.9 * MiB)).publish()
    server = LimitedServer(files)

    with pytest.raises(TrustError, match=f"more than the {LIMITS.refresh} bytes one refresh"):
        run(server)
    assert server.served <= LIMITS.refresh


def test_a_repository_within_the_budget_loads(repo):
    files = _padded_delegations(2, MiB).publish()

    assert find_tag(run(LimitedServer(files)), "v1") is not None
