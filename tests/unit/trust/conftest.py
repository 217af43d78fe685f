"""Fixtures for the pure trust tests: a simulated repository and a loader for it."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, MutableMapping

import pytest

from portieris_webhook.trust.trusted_set import RootPin, TrustData
from portieris_webhook.trust.updater import GunState, refresh

from tests.unit.trust.simulator import GUN, NOW, RepositorySimulator

Loader = Callable[..., TrustData]


@pytest.fixture
def repo() -> RepositorySimulator:
    """A repository with `targets/releases` delegated (all paths) and tag v1 signed in it."""
    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    sim.add_target("targets/releases", "v1", b"manifest v1")
    return sim


def load_files(
    files: dict[str, bytes],
    *,
    now: datetime.datetime = NOW,
    state: GunState | None = None,
    seen: MutableMapping[str, int] | None = None,
    pin: RootPin | None = None,
) -> TrustData:
    """Run one refresh against `files` (what a notary server serves) and return the verified data."""
    state = state or GunState()
    if seen is not None:
        state.seen = dict(seen)

    async def fetch(role: str, max_bytes: int) -> bytes | None:
        data = files.get(role)
        return None if data is None else data[: max_bytes + 1]

    data = asyncio.run(refresh(GUN, state, fetch, now, pin))
    state.data = data
    return data


@pytest.fixture
def load() -> Loader:
    return load_files
