"""The decision cache with the real verifiers: real registry, lookaside store, gpg, notary.

A decision answered from the cache is told apart from one verified again by taking
away what verification needs (the image's signatures in the store) after the first
check: only a cached allow survives that.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from portieris_webhook.cluster.manifests import load_manifests
from portieris_webhook.cluster.state import DELETED, MODIFIED, MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.cache import DecisionCache
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.outcome import ImageDecision
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.trust.verifier import TrustVerifier, utc_now
from portieris_webhook.verify.contract import VerifierContext

from tests.builders import ManualClock, memory_state
from tests.fixtures.gpg import GpgKey
from tests.fixtures.notary import make_delegation_key
from tests.fixtures.registry import PushedImage
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    alice_secret,
    decide_image,
    key_secret,
    policy_under_test,
    pull_secret,
    secret,
    signed_by,
)
from tests.fixtures.trust_helpers import signer_secret, trust_policy

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def real_enforcer(
    state: MemoryState,
    settings: Settings,
    monotonic: Callable[[], float] | None = None,
) -> AsyncIterator[Enforcer]:
    """An Enforcer with the real trust and simple verifiers and a decision cache; the simple
    verifier's reuse of registry and store reads runs on the decision cache's clock."""
    clock = monotonic or ManualClock()
    http = HttpClient(settings.ca_file)
    context = VerifierContext(settings, state, http)
    trust, simple = TrustVerifier(context), SimpleVerifier(context, monotonic=clock)
    decisions = DecisionCache(settings.decision_cache_max_entries, monotonic=clock)
    try:
        yield Enforcer(state, {"trust": trust, "simple": simple}, settings, decisions)
    finally:
        await simple.close()
        await trust.close()
        await http.close()


SETTINGS = {"verify_timeout": 20.0}


@pytest.fixture
def bob(gpg_key: Callable[[str], GpgKey]) -> GpgKey:
    return gpg_key("cache-bob")


def simple_policy(store_url: str, *key_secrets: str, name: str = "under-test") -> dict[str, Any]:
    policy = {
        "simple": {
            "requirements": [signed_by(k) for k in key_secrets or ("alice",)],
            "storeURL": store_url,
        }
    }
    obj = policy_under_test(policy)
    obj["metadata"]["name"] = name
    return obj


def remove_signatures(store, image: PushedImage) -> None:
    shutil.rmtree(store.signature_dir(image.repo, image.digest))


async def check(enforcer: Enforcer, image: PushedImage, **kwargs: Any) -> ImageDecision:
    return await decide_image(enforcer, image.ref, NAMESPACE, **kwargs)


# --- simple signing -------------------------------------------------------------------------


async def test_a_repeated_check_is_answered_from_the_cache(
    registry, lookaside_store, signed_image, alice, settings
) -> None:
    state = memory_state(simple_policy(lookaside_store.url), alice_secret(alice))
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image)
        remove_signatures(lookaside_store, signed_image)
        again = await check(enforcer, signed_image)

    assert first.allowed, first.reasons
    assert again == first and again.patched_image == signed_image.digest_ref
    assert enforcer.decisions.stats().hits == 1


async def test_rotating_an_unrelated_secret_keeps_the_cached_allow(
    registry, lookaside_store, signed_image, alice, settings
) -> None:
    other_registry = pull_secret("othercred", "other.example.com", "u", "old")
    state = memory_state(
        simple_policy(lookaside_store.url),
        alice_secret(alice),
        other_registry,
        secret("unrelated", {"token": "old"}),
    )
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image, pull_secrets=("othercred",))
        remove_signatures(lookaside_store, signed_image)
        state.apply(MODIFIED, pull_secret("othercred", "other.example.com", "u", "new"))
        state.apply(MODIFIED, secret("unrelated", {"token": "new"}))
        state.apply(MODIFIED, alice_secret(alice))  # re-applied, same content
        again = await check(enforcer, signed_image, pull_secrets=("othercred",))

    assert first.allowed and again.allowed, again.reasons
    assert enforcer.decisions.stats().hits == 1


async def test_rotating_the_key_secret_to_a_wrong_key_denies_and_back_reuses(
    registry, lookaside_store, signed_image, alice, bob, settings
) -> None:
    state = memory_state(simple_policy(lookaside_store.url), alice_secret(alice))
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image)
        state.apply(MODIFIED, key_secret("alice", bob.public_armored))
        rotated = await check(enforcer, signed_image)
        state.apply(MODIFIED, alice_secret(alice))
        back = await check(enforcer, signed_image)
        stats = enforcer.decisions.stats()

    assert first.allowed, first.reasons
    assert not rotated.allowed
    assert "does not verify with the secret's keys" in rotated.reasons[0]
    assert back == first
    assert (stats.hits, stats.misses) == (1, 2)


async def test_editing_the_policy_verifies_again(
    registry, lookaside_store, signed_image, alice, bob, settings
) -> None:
    state = memory_state(
        simple_policy(lookaside_store.url),
        alice_secret(alice),
        key_secret("bob", bob.public_armored),
    )
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image)
        state.apply(MODIFIED, simple_policy(lookaside_store.url, "alice", "bob"))
        edited = await check(enforcer, signed_image)

    assert first.allowed, first.reasons
    assert not edited.allowed
    assert f"requirement 2 (signedBy key secret {NAMESPACE}/bob)" in edited.reasons[0]
    assert enforcer.decisions.stats().hits == 0


async def test_the_same_policy_under_another_name_reuses_the_check(
    registry, lookaside_store, signed_image, alice, settings
) -> None:
    state = memory_state(simple_policy(lookaside_store.url), alice_secret(alice))
    async with real_enforcer(state, settings) as enforcer:
        await check(enforcer, signed_image)
        remove_signatures(lookaside_store, signed_image)
        state.apply(DELETED, simple_policy(lookaside_store.url))
        state.apply(MODIFIED, simple_policy(lookaside_store.url, name="renamed"))
        renamed = await check(enforcer, signed_image)

    assert renamed.allowed, renamed.reasons
    assert renamed.policy.startswith("ClusterImagePolicy renamed")


async def test_deleting_the_policy_denies_at_once(
    registry, lookaside_store, signed_image, alice, settings
) -> None:
    state = memory_state(simple_policy(lookaside_store.url), alice_secret(alice))
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image)
        state.apply(DELETED, simple_policy(lookaside_store.url))
        deleted = await check(enforcer, signed_image)
        cached = await check(enforcer, signed_image)

    assert first.allowed, first.reasons
    assert not deleted.allowed and not cached.allowed
    assert "no ClusterImagePolicy" in deleted.reasons[0]


async def test_an_allow_is_reused_for_at_most_the_refresh_interval(
    registry, lookaside_store, signed_image, alice, settings
) -> None:
    clock = ManualClock()
    state = memory_state(simple_policy(lookaside_store.url), alice_secret(alice))
    async with real_enforcer(state, settings, clock) as enforcer:
        first = await check(enforcer, signed_image)
        remove_signatures(lookaside_store, signed_image)
        clock.now += settings.trust_refresh_interval - 0.5
        young = await check(enforcer, signed_image)
        clock.now += 0.5
        old = await check(enforcer, signed_image)

    assert first.allowed and young.allowed
    assert not old.allowed
    assert "has none for" in old.reasons[0]


async def test_with_no_entries_every_check_is_verified(
    registry, lookaside_store, signed_image, alice
) -> None:
    settings = Settings(
        ca_file=str(registry.ca_file),
        verify_timeout=20.0,
        decision_cache_max_entries=0,
        simple_refresh_interval=0.0,  # the store is read again too (test_simple_warm_path)
    )
    state = memory_state(simple_policy(lookaside_store.url), alice_secret(alice))
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image)
        remove_signatures(lookaside_store, signed_image)
        again = await check(enforcer, signed_image)

    assert first.allowed and not again.allowed


async def test_pull_credentials_for_the_registry_are_part_of_the_decision(
    auth_registry, lookaside_store, simple_signer, alice, image_factory, settings
) -> None:
    image = auth_registry.push_image(image_factory.new_repo("private"), "v1")
    signature = simple_signer.standalone_sign(image.manifest, image.ref, alice.fingerprint)
    lookaside_store.add(image.repo, image.digest, signature)
    user, password = auth_registry.credentials
    state = memory_state(
        simple_policy(lookaside_store.url),
        alice_secret(alice),
        pull_secret("regcred", image.host, user, password),
    )
    async with real_enforcer(state, settings) as enforcer:
        with_secret = await check(enforcer, image, pull_secrets=("regcred",))
        without = await check(enforcer, image)
        again = await check(enforcer, image, pull_secrets=("regcred",))

    assert with_secret.allowed, with_secret.reasons
    assert not without.allowed
    assert "the registry refused access (HTTP 401)" in without.reasons[0]
    assert again == with_secret and enforcer.decisions.stats().hits == 1


# --- offline state from manifest files ----------------------------------------------------


def write_manifest(directory: Path, name: str, obj: dict[str, Any]) -> None:
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(obj))


async def test_offline_state_a_rotated_secret_or_a_deleted_policy_is_verified_again(
    registry, lookaside_store, signed_image, alice, bob, settings, tmp_path
) -> None:
    write_manifest(tmp_path, "policy", simple_policy(lookaside_store.url))
    write_manifest(tmp_path, "key", alice_secret(alice))
    write_manifest(tmp_path, "unrelated", secret("unrelated", {"token": "old"}))
    state = load_manifests([str(tmp_path)])
    async with real_enforcer(state, settings) as enforcer:
        first = await check(enforcer, signed_image)
        state.apply(MODIFIED, secret("unrelated", {"token": "new"}))
        unrelated = await check(enforcer, signed_image)
        state.apply(MODIFIED, key_secret("alice", bob.public_armored))
        rotated = await check(enforcer, signed_image)
        state.apply(MODIFIED, alice_secret(alice))
        state.apply(DELETED, simple_policy(lookaside_store.url))
        deleted = await check(enforcer, signed_image)
        stats = enforcer.decisions.stats()

    assert first.allowed and unrelated == first
    assert not rotated.allowed and "does not verify with the secret's keys" in rotated.reasons[0]
    assert not deleted.allowed and "no ClusterImagePolicy" in deleted.reasons[0]
    assert (stats.hits, stats.misses) == (1, 2)


# --- Notary trust ----------------------------------------------------------------------------


@pytest.fixture
def trust_settings(notary_server) -> Settings:
    return Settings(ca_file=str(notary_server.ca_file), trust_refresh_interval=3600.0)


def signers_policy(image: PushedImage, notary_server, *signers: str) -> dict[str, Any]:
    return trust_policy(f"{image.host}/*", notary_server.url, signers=signers)


async def test_adding_a_signer_to_a_trust_policy_verifies_again(
    alice_signed, notary_server, trust_settings
) -> None:
    image, key = alice_signed
    bob = make_delegation_key("bob")
    state = memory_state(
        signers_policy(image, notary_server, "alice-key"),
        signer_secret("alice-key", "alice", key.cert_pem, namespace=NAMESPACE),
        signer_secret("bob-key", "bob", bob.cert_pem, namespace=NAMESPACE),
    )
    async with real_enforcer(state, trust_settings) as enforcer:
        first = await check(enforcer, image)
        again = await check(enforcer, image)
        state.apply(MODIFIED, signers_policy(image, notary_server, "alice-key", "bob-key"))
        edited = await check(enforcer, image)

    assert first.allowed, first.reasons
    assert again == first and enforcer.decisions.stats().hits == 1
    assert not edited.allowed
    assert f"{image.name} has no delegation targets/bob" in edited.reasons[0]


async def test_rotating_a_signer_secret_verifies_again(
    alice_signed, notary_server, trust_settings
) -> None:
    image, key = alice_signed
    impostor = make_delegation_key("alice")
    state = memory_state(
        signers_policy(image, notary_server, "alice-key"),
        signer_secret("alice-key", "alice", key.cert_pem, namespace=NAMESPACE),
    )
    async with real_enforcer(state, trust_settings) as enforcer:
        first = await check(enforcer, image)
        state.apply(
            MODIFIED, signer_secret("alice-key", "alice", impostor.cert_pem, namespace=NAMESPACE)
        )
        rotated = await check(enforcer, image)

    assert first.allowed, first.reasons
    assert not rotated.allowed
    assert "the key in the secret is not a key of targets/alice" in rotated.reasons[0]


async def test_an_allow_is_not_reused_once_its_trust_data_expired(
    signed, notary_server, trust_settings
) -> None:
    state = memory_state(trust_policy(f"{signed.host}/*", notary_server.url))
    async with real_enforcer(state, trust_settings) as enforcer:
        first = await check(enforcer, signed)
        again = await check(enforcer, signed)
        trust = enforcer.verifiers["trust"]
        trust.clock = lambda: utc_now() + datetime.timedelta(days=400)  # type: ignore[attr-defined]
        expired = await check(enforcer, signed)

    assert first.allowed and again == first, first.reasons
    assert not expired.allowed and "expired" in expired.reasons[0]
    assert enforcer.decisions.stats().hits == 1
