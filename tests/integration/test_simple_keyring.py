"""Per-secret GnuPG keyrings with the real gpg: isolation, caching, threads, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portieris_webhook.simple import keyring as keyring_module
from portieris_webhook.simple.keyring import KeyRings, SignatureRejected
from portieris_webhook.simple.payload import parse_payload

from tests.builders import ManualClock
from tests.fixtures.simple_helpers import atomic_payload, gpg_sign

pytestmark = pytest.mark.integration
DIGEST = "sha256:" + "5" * 64


@pytest.fixture
async def rings(tmp_path):
    rings = KeyRings(tmp_path / "rings")
    yield rings
    await rings.close()


async def test_a_signature_verifies_with_the_ring_of_its_key_and_gives_the_payload(
    rings, gpg_home, gpg_key
) -> None:
    key = gpg_key("ring-alice")
    payload = atomic_payload(DIGEST, "r.io/a/b:1")
    ring = await rings.ring(key.public_armored.encode(), "secret a")

    verified = await ring.verify(gpg_sign(gpg_home, key.fingerprint, payload))

    assert verified.fingerprint == key.fingerprint
    assert parse_payload(verified.payload).manifest_digest == DIGEST
    assert ring.fingerprints == {key.fingerprint}
    assert ring.home.parent == rings._root  # its own home, never the user's keyring


async def test_a_ring_does_not_know_keys_imported_into_other_rings(
    rings, gpg_home, gpg_key
) -> None:
    alice, bob = gpg_key("ring-alice"), gpg_key("ring-bob")
    await rings.ring(alice.public_armored.encode(), "secret a")
    bob_ring = await rings.ring(bob.public_armored.encode(), "secret b")
    signature = gpg_sign(gpg_home, alice.fingerprint, atomic_payload(DIGEST, "r.io/a/b:1"))

    with pytest.raises(SignatureRejected, match="no public key"):
        await bob_ring.verify(signature)


async def test_the_same_key_data_is_imported_once_even_when_asked_concurrently(
    rings, gpg_key
) -> None:
    armored = gpg_key("ring-alice").public_armored.encode()
    got = await asyncio.gather(*(rings.ring(armored, f"secret {i}") for i in range(5)))
    assert all(ring is got[0] for ring in got)


async def test_many_concurrent_verifications_in_one_home_all_succeed(
    rings, gpg_home, gpg_key
) -> None:
    key = gpg_key("ring-alice")
    ring = await rings.ring(key.public_armored.encode(), "secret a")
    signatures = [
        gpg_sign(gpg_home, key.fingerprint, atomic_payload(DIGEST, f"r.io/a/b:{i}"))
        for i in range(12)
    ]
    results = await asyncio.gather(*(ring.verify(s) for s in signatures))
    assert [parse_payload(r.payload).docker_reference for r in results] == [
        f"r.io/a/b:{i}" for i in range(12)
    ]


async def test_gpg_runs_in_threads_and_a_verified_signature_is_remembered(
    rings, gpg_home, gpg_key, monkeypatch
) -> None:
    calls: list[str] = []
    real_to_thread = asyncio.to_thread

    async def recording_to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await real_to_thread(func, *args, **kwargs)

    monkeypatch.setattr(keyring_module.asyncio, "to_thread", recording_to_thread)
    key = gpg_key("ring-alice")
    signature = gpg_sign(gpg_home, key.fingerprint, atomic_payload(DIGEST, "r.io/a/b:1"))

    ring = await rings.ring(key.public_armored.encode(), "secret a")
    first = await ring.verify(signature)
    again = await ring.verify(signature)

    assert calls == ["load", "verify_blocking"]
    assert first == again


async def test_a_refusal_is_remembered_too(rings, gpg_home, gpg_key) -> None:
    alice, bob = gpg_key("ring-alice"), gpg_key("ring-bob")
    ring = await rings.ring(bob.public_armored.encode(), "secret b")
    signature = gpg_sign(gpg_home, alice.fingerprint, atomic_payload(DIGEST, "r.io/a/b:1"))
    for _ in range(2):
        with pytest.raises(SignatureRejected, match="no public key"):
            await ring.verify(signature)


async def test_closing_removes_every_home(tmp_path, gpg_key) -> None:
    rings = KeyRings(tmp_path / "rings")
    ring = await rings.ring(gpg_key("ring-alice").public_armored.encode(), "secret a")
    assert ring.home.is_dir()
    await rings.close()
    assert not (tmp_path / "rings").exists()


async def test_old_rings_are_evicted_beyond_the_limit(tmp_path, gpg_key) -> None:
    rings = KeyRings(tmp_path / "rings", max_rings=1)
    try:
        first = await rings.ring(gpg_key("ring-alice").public_armored.encode(), "a")
        await rings.ring(gpg_key("ring-bob").public_armored.encode(), "b")
        assert not first.home.exists()
    finally:
        await rings.close()


async def test_a_ring_past_its_age_is_imported_again_and_still_verifies(
    tmp_path, gpg_home, gpg_key
) -> None:
    clock = ManualClock()
    rings = KeyRings(tmp_path / "rings", monotonic=clock)
    key = gpg_key("ring-alice")
    armored = key.public_armored.encode()
    try:
        first = await rings.ring(armored, "secret a")
        clock.now += keyring_module.RING_MAX_AGE
        again = await rings.ring(armored, "secret a")
        signature = gpg_sign(gpg_home, key.fingerprint, atomic_payload(DIGEST, "r.io/a/b:1"))
        verified = await again.verify(signature)
    finally:
        await rings.close()
    assert again is not first and again.home == first.home
    assert verified.fingerprint == key.fingerprint


async def test_concurrent_verifications_of_one_signature_run_gpg_once(
    rings, gpg_home, gpg_key
) -> None:
    key = gpg_key("ring-alice")
    ring = await rings.ring(key.public_armored.encode(), "secret a")
    signature = gpg_sign(gpg_home, key.fingerprint, atomic_payload(DIGEST, "r.io/a/b:1"))

    results = await asyncio.gather(*(ring.verify(signature) for _ in range(10)))

    assert all(result == results[0] for result in results)
    assert rings.gpg_runs == 1


async def test_what_gpg_said_is_remembered_per_key_data_and_forgotten_after_its_age(
    tmp_path, gpg_home, gpg_key
) -> None:
    clock = ManualClock()
    rings = KeyRings(tmp_path / "rings", monotonic=clock)
    alice, bob = gpg_key("ring-alice"), gpg_key("ring-bob")
    signature = gpg_sign(gpg_home, alice.fingerprint, atomic_payload(DIGEST, "r.io/a/b:1"))
    try:
        alice_ring = await rings.ring(alice.public_armored.encode(), "secret a")
        bob_ring = await rings.ring(bob.public_armored.encode(), "secret b")
        await alice_ring.verify(signature)
        with pytest.raises(SignatureRejected):
            await bob_ring.verify(signature)  # the same bytes, other keys: gpg runs again
        await alice_ring.verify(signature)
        runs = rings.gpg_runs
        clock.now += keyring_module.VERIFY_CACHE_SECONDS
        await alice_ring.verify(signature)
    finally:
        await rings.close()
    assert runs == 2
    assert rings.gpg_runs == 3
