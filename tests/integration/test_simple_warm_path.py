"""The simple-signing warm path against the real registry, lookaside store and gpg.

Images are named through counting proxies in front of the real registry and store,
so each test sees exactly which requests an admission made; the verifier's clock is
moved by hand, and gpg runs are counted by the verifier's key rings. The enforcer's
decision cache is off unless a test says otherwise, so what is measured is the
verifier's own reuse (which is what answers when the decision cache cannot: another
image of the same repository and tag written differently, another policy, a rotated
key secret).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from portieris_webhook.cluster.state import MODIFIED, MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.cache import DecisionCache
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.outcome import ImageDecision
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.verify.contract import VerifierContext

from tests.builders import ManualClock, memory_state
from tests.fixtures.counting_proxy import CountingProxy
from tests.fixtures.gpg import GpgKey, LookasideStore, SimpleSigner
from tests.fixtures.registry import PushedImage, Registry
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    alice_secret,
    decide_image,
    policy_under_test,
    pull_secret,
    secret,
    server_ssl_context,
    signed_by,
)

pytestmark = pytest.mark.integration

WINDOW = 30.0  # the default --trust-refresh-interval, which the simple window follows
FAILURE_TTL = 5.0


@pytest.fixture
async def registry_proxy(registry: Registry, test_ca, tmp_path) -> AsyncIterator[CountingProxy]:
    client_ssl = ssl.create_default_context(cafile=str(registry.ca_file))
    server_ssl = server_ssl_context(test_ca, tmp_path / "registry-proxy")
    async with CountingProxy(registry.url, server_ssl=server_ssl, client_ssl=client_ssl) as proxy:
        yield proxy


@pytest.fixture
async def store_proxy(lookaside_store: LookasideStore) -> AsyncIterator[CountingProxy]:
    async with CountingProxy(lookaside_store.url) as proxy:
        yield proxy


def proxied(image: PushedImage, proxy: CountingProxy) -> str:
    return f"{proxy.host}/{image.repo}:{image.tag}"


def sign_through(
    image: PushedImage,
    proxy: CountingProxy,
    key: GpgKey,
    signer: SimpleSigner,
    store: LookasideStore,
) -> str:
    """Sign `image` as named through `proxy` into the store; the reference to admit."""
    ref = proxied(image, proxy)
    store.add(
        image.repo, image.digest, signer.standalone_sign(image.manifest, ref, key.fingerprint)
    )
    return ref


def policy(store: CountingProxy, **simple: Any) -> dict[str, Any]:
    return policy_under_test(
        {"simple": {"requirements": [signed_by("alice")], "storeURL": store.url, **simple}}
    )


class Warm:
    """An Enforcer over the real SimpleVerifier, whose clock the test moves."""

    def __init__(self, enforcer: Enforcer, verifier: SimpleVerifier, clock: ManualClock) -> None:
        self.enforcer, self.verifier, self.clock = enforcer, verifier, clock

    async def decide(
        self, ref: str, namespace: str = NAMESPACE, pull_secrets: tuple[str, ...] = ()
    ) -> ImageDecision:
        return await decide_image(self.enforcer, ref, namespace, pull_secrets)

    @property
    def gpg_runs(self) -> int:
        return self.verifier.keyrings.gpg_runs


@contextlib.asynccontextmanager
async def warm(state: MemoryState, ca_file: Any, **settings: Any) -> AsyncIterator[Warm]:
    settings.setdefault("decision_cache_max_entries", 0)
    config = Settings(ca_file=str(ca_file), verify_timeout=20.0, **settings)
    http = HttpClient(config.ca_file)
    clock = ManualClock()
    verifier = SimpleVerifier(VerifierContext(config, state, http), monotonic=clock)
    decisions = DecisionCache(config.decision_cache_max_entries, monotonic=clock)
    try:
        enforcer = Enforcer(state, {verifier.name: verifier}, config, decisions=decisions)
        yield Warm(enforcer, verifier, clock)
    finally:
        await verifier.close()
        await http.close()


@pytest.fixture
def signed(
    image_factory, registry_proxy, store_proxy, alice, simple_signer, lookaside_store
) -> tuple[PushedImage, str]:
    image = image_factory("v1")
    return image, sign_through(image, registry_proxy, alice, simple_signer, lookaside_store)


# --- reuse within the window -----------------------------------------------------------


async def test_a_second_admission_within_the_window_asks_no_server_and_runs_no_gpg(
    registry, registry_proxy, store_proxy, signed, alice
) -> None:
    image, ref = signed
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file) as w:
        first = await w.decide(ref)
        asked = (len(registry_proxy.requests), len(store_proxy.requests), w.gpg_runs)
        w.clock.now += WINDOW - 1
        second = await w.decide(ref)

    assert first.allowed and second.allowed, (first.reasons, second.reasons)
    assert second.patched_image == f"{registry_proxy.host}/{image.repo}@{image.digest}"
    assert asked == (1, 2, 1)  # the manifest; signature-1 and the 404 of signature-2; gpg
    assert (len(registry_proxy.requests), len(store_proxy.requests), w.gpg_runs) == asked


async def test_after_the_window_a_moved_tag_resolves_to_the_new_digest(
    registry,
    registry_proxy,
    store_proxy,
    signed,
    image_factory,
    alice,
    simple_signer,
    lookaside_store,
) -> None:
    old, ref = signed
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file) as w:
        before = await w.decide(ref)
        moved = image_factory("v1", repo=old.repo)  # the tag now names another image
        sign_through(moved, registry_proxy, alice, simple_signer, lookaside_store)
        w.clock.now += WINDOW - 1
        pinned = await w.decide(ref)
        w.clock.now += 1
        after = await w.decide(ref)

    assert moved.digest != old.digest
    assert before.digest == old.digest
    assert pinned.digest == old.digest  # within the window: the digest read before
    assert after.allowed, after.reasons
    assert after.digest == moved.digest
    assert registry_proxy.count("/manifests/v1") == 2
    assert store_proxy.count(moved.hex) == 2  # the new digest's signatures were read


async def test_with_the_decision_cache_a_moved_tag_is_seen_once_the_simple_window_passed(
    registry,
    registry_proxy,
    store_proxy,
    signed,
    image_factory,
    alice,
    simple_signer,
    lookaside_store,
) -> None:
    """A cached decision lives no longer than the simple window, even when trust's is longer."""
    old, ref = signed
    state = memory_state(policy(store_proxy), alice_secret(alice))
    settings = {
        "decision_cache_max_entries": 100,
        "trust_refresh_interval": 300.0,
        "simple_refresh_interval": 10.0,
    }
    async with warm(state, registry.ca_file, **settings) as w:
        await w.decide(ref)
        moved = image_factory("v1", repo=old.repo)
        sign_through(moved, registry_proxy, alice, simple_signer, lookaside_store)
        w.clock.now += 9.9
        pinned = await w.decide(ref)
        asked = len(registry_proxy.requests)
        w.clock.now += 0.1
        after = await w.decide(ref)

    assert pinned.digest == old.digest and asked == 1
    assert after.allowed, after.reasons
    assert after.digest == moved.digest


async def test_a_decision_made_from_remembered_answers_lives_only_for_the_rest_of_the_window(
    registry,
    registry_proxy,
    store_proxy,
    signed,
    image_factory,
    alice,
    simple_signer,
    lookaside_store,
) -> None:
    """A decision made late in the simple window from answers read earlier (for another
    decision: the policy was edited meanwhile) ends with that window, not a window after the
    decision: stacking the decision cache on the verifier's answers adds no staleness."""
    old, ref = signed
    state = memory_state(policy(store_proxy), alice_secret(alice))
    settings = {"decision_cache_max_entries": 100, "simple_refresh_interval": 10.0}
    async with warm(state, registry.ca_file, **settings) as w:
        await w.decide(ref)  # reads the tag and the store at t=0
        w.clock.now += 8.0
        edited = {"type": "matchRepository"}
        state.apply(
            MODIFIED,
            policy(store_proxy, requirements=[signed_by("alice"), signed_by("alice", edited)]),
        )
        late = await w.decide(ref)  # a new decision, made of the answers read at t=0
        moved = image_factory("v1", repo=old.repo)
        sign_through(moved, registry_proxy, alice, simple_signer, lookaside_store)
        w.clock.now += 2.0  # 10 s after the reads, 2 s after the late decision
        after = await w.decide(ref)

    assert late.allowed and late.digest == old.digest
    assert after.allowed, after.reasons
    assert after.digest == moved.digest


async def test_a_refresh_interval_of_zero_reads_registry_and_store_every_time(
    registry, registry_proxy, store_proxy, signed, alice
) -> None:
    _, ref = signed
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file, simple_refresh_interval=0.0) as w:
        decisions = [await w.decide(ref) for _ in range(3)]

    assert all(d.allowed for d in decisions)
    assert registry_proxy.count("/manifests/") == 3
    assert store_proxy.count("/signature-1") == 3
    assert w.gpg_runs == 1  # gpg's verdict depends only on key and signature bytes


async def test_twenty_concurrent_identical_checks_make_one_request_each_and_one_gpg_run(
    registry, registry_proxy, store_proxy, signed, alice
) -> None:
    _, ref = signed
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file) as w:
        decisions = await asyncio.gather(*(w.decide(ref) for _ in range(20)))

    assert all(d.allowed for d in decisions), decisions[0].reasons
    assert registry_proxy.count("/manifests/") == 1
    assert store_proxy.requests.count(store_proxy.requests[0]) == 1
    assert len(store_proxy.requests) == 2
    assert w.gpg_runs == 1


# --- credentials ---------------------------------------------------------------------------


async def test_pull_secrets_with_different_credentials_do_not_share_answers(
    auth_registry, test_ca, tmp_path, store_proxy, alice, simple_signer, lookaside_store
) -> None:
    client_ssl = ssl.create_default_context(cafile=str(auth_registry.ca_file))
    server_ssl = server_ssl_context(test_ca, tmp_path / "auth-proxy")
    image = auth_registry.push_image("team/warm-private", "v1")
    user, password = auth_registry.credentials
    async with CountingProxy(
        auth_registry.url, server_ssl=server_ssl, client_ssl=client_ssl
    ) as proxy:
        ref = sign_through(image, proxy, alice, simple_signer, lookaside_store)
        state = memory_state(
            policy(store_proxy),
            alice_secret(alice),
            pull_secret("good", proxy.host, user, password),
            pull_secret("bad", proxy.host, user, "not-the-password"),
        )
        async with warm(state, auth_registry.ca_file) as w:
            good = await w.decide(ref, pull_secrets=("good",))
            asked = len(proxy.requests)
            bad = await w.decide(ref, pull_secrets=("bad",))
            asked_bad = len(proxy.requests)
            anonymous = await w.decide(ref)
            again_good = await w.decide(ref, pull_secrets=("good",))

    assert good.allowed and again_good.allowed, (good.reasons, again_good.reasons)
    assert not bad.allowed and "the pull secrets' credentials were refused" in bad.reasons[0]
    assert not anonymous.allowed
    assert "no pull secret has credentials for this registry" in anonymous.reasons[0]
    assert asked_bad > asked  # the bad credentials were tried at the registry, not answered
    assert len(proxy.requests) > asked_bad  # nor were no credentials
    assert again_good.digest == image.digest


async def test_store_secrets_with_different_credentials_do_not_share_answers(
    registry, registry_proxy, store_proxy, signed, alice
) -> None:
    _, ref = signed
    store_proxy.basic_auth = ("reader", "s3cret")
    key = {"key": alice.public_armored}
    state = memory_state(
        policy(store_proxy, storeSecret="store"),
        secret("alice", key),
        secret("store", {"username": "reader", "password": "s3cret"}),
        secret("alice", key, namespace="other"),
        secret("store", {"username": "reader", "password": "wrong"}, namespace="other"),
    )
    async with warm(state, registry.ca_file) as w:
        right = await w.decide(ref)
        asked = len(store_proxy.requests)
        wrong = await w.decide(ref, namespace="other")

    assert right.allowed, right.reasons
    assert not wrong.allowed
    assert "storeSecret's credentials were refused" in wrong.reasons[0]
    assert len(store_proxy.requests) == asked + 1


# --- failures --------------------------------------------------------------------------------


async def test_a_failing_store_is_asked_again_after_the_failure_time(
    registry, registry_proxy, store_proxy, signed, alice
) -> None:
    _, ref = signed
    store_proxy.fail_with = 500
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file) as w:
        failed = await w.decide(ref)
        w.clock.now += FAILURE_TTL - 1
        remembered = await w.decide(ref)
        asked = len(store_proxy.requests)
        store_proxy.fail_with = None
        w.clock.now += 1
        recovered = await w.decide(ref)

    for decision in (failed, remembered):
        assert not decision.allowed and "answered HTTP 500" in decision.reasons[0]
    assert asked == 1
    assert recovered.allowed, recovered.reasons
    assert len(store_proxy.requests) == 1 + 2


# --- key rotation ----------------------------------------------------------------------------


async def test_a_key_secret_rotated_to_another_key_verifies_again_and_a_wrong_key_denies(
    registry,
    registry_proxy,
    store_proxy,
    signed,
    alice,
    gpg_key,
    simple_signer,
    lookaside_store,
) -> None:
    image, ref = signed
    bob, carol = gpg_key("warm-bob"), gpg_key("warm-carol")
    sign_through(image, registry_proxy, bob, simple_signer, lookaside_store)  # signature-2
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file) as w:
        as_alice = await w.decide(ref)
        runs = w.gpg_runs
        state.apply(MODIFIED, secret("alice", {"key": bob.public_armored}))
        as_bob = await w.decide(ref)
        runs_bob = w.gpg_runs
        state.apply(MODIFIED, secret("alice", {"key": carol.public_armored}))
        as_carol = await w.decide(ref)

    assert as_alice.allowed and as_bob.allowed, (as_alice.reasons, as_bob.reasons)
    assert runs == 1  # alice's signature-1 was accepted
    assert runs_bob == runs + 2  # bob's ring: signature-1 refused, signature-2 accepted
    assert not as_carol.allowed
    assert "does not verify with the secret's keys" in as_carol.reasons[0]
    assert registry_proxy.count("/manifests/") == 1  # the reads were reused all along
    assert store_proxy.count("/signature-1") == 1


async def test_an_image_signed_after_a_deny_is_allowed_once_the_failure_time_passed(
    registry, image_factory, registry_proxy, store_proxy, alice, simple_signer, lookaside_store
) -> None:
    """Signing often follows pushing: a store that had no signature yet is asked again
    after --simple-failure-ttl, not after the whole window."""
    image = image_factory("late")
    ref = proxied(image, registry_proxy)
    state = memory_state(policy(store_proxy), alice_secret(alice))
    async with warm(state, registry.ca_file) as w:
        unsigned = await w.decide(ref)
        sign_through(image, registry_proxy, alice, simple_signer, lookaside_store)
        w.clock.now += FAILURE_TTL - 1
        still_remembered = await w.decide(ref)
        w.clock.now += 1
        signed_now = await w.decide(ref)

    assert not unsigned.allowed and "has none for" in unsigned.reasons[0]
    assert not still_remembered.allowed
    assert signed_now.allowed, signed_now.reasons
    assert signed_now.digest == image.digest
    assert w.clock.now - 1000.0 < WINDOW
