"""The decision cache: what a key holds, when an entry is used, how it is bounded."""

from __future__ import annotations

import datetime

import pytest

from portieris_webhook.cluster.state import DELETED, MODIFIED
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.cache import (
    CachedAllow,
    DecisionCache,
    DecisionCacheStats,
    DecisionKey,
    decision_key,
    policy_fingerprint,
)
from portieris_webhook.images import parse_image
from portieris_webhook.policy.model import (
    Policy,
    Requirement,
    SignedIdentity,
    SimplePolicy,
    TrustPolicy,
)
from portieris_webhook.serving.metrics import DecisionCacheMetrics, Metrics
from portieris_webhook.verify.contract import (
    ABSENT,
    ImageCheck,
    StateInput,
    Verdict,
    pull_credentials_input,
    secret_input,
)

from tests.builders import cluster_policy, memory_state
from tests.fixtures.simple_helpers import pull_secret, secret

ALLOW = CachedAllow("sha256:" + "a" * 64, "reg.io/app@sha256:" + "a" * 64, ("signed",))
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TRUST = Policy(TrustPolicy(enabled=True, signer_secrets=("alice",)))


class Clocks:
    """A monotonic and a wall clock that tests move by hand."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.now = T0

    def monotonic(self) -> float:
        return self.seconds

    def cache(self, max_entries: int = 10) -> DecisionCache:
        return DecisionCache(max_entries, monotonic=self.monotonic)


def key(image: str = "reg.io/app:1", policy: Policy = TRUST, *inputs: StateInput) -> DecisionKey:
    made = decision_key(image, policy, [("trust", tuple(inputs))])
    assert made is not None
    return made


def secret_at(name: str, fingerprint: str, namespace: str = "apps") -> StateInput:
    return StateInput("Secret", namespace, name, fingerprint)


# --- keys ------------------------------------------------------------------------------


def test_equal_policies_have_one_fingerprint_whatever_holds_them() -> None:
    simple = SimplePolicy((Requirement("signedBy", "keys", None, SignedIdentity()),))
    assert policy_fingerprint(Policy(simple=simple)) == policy_fingerprint(
        Policy(simple=SimplePolicy((Requirement("signedBy", "keys"),)))
    )


@pytest.mark.parametrize(
    "edited",
    [
        Policy(TrustPolicy(enabled=True, signer_secrets=("alice", "bob"))),
        Policy(TrustPolicy(enabled=True, signer_secrets=("alice",), trust_server="https://n")),
        Policy(TrustPolicy(enabled=True, signer_secrets=("alice",)), mutate_image=False),
        Policy(
            TrustPolicy(enabled=True, signer_secrets=("alice",)),
            SimplePolicy((Requirement("insecureAcceptAnything"),)),
        ),
    ],
    ids=["signer-added", "trust-server", "mutate-image", "requirement-added"],
)
def test_any_edit_of_a_policy_changes_its_fingerprint(edited: Policy) -> None:
    assert policy_fingerprint(edited) != policy_fingerprint(TRUST)


def test_a_key_names_the_image_as_written_the_policy_and_what_was_read_once_sorted() -> None:
    alice, creds = secret_at("alice", "1"), StateInput("RegistryCredentials", "", "reg.io", "2")
    made = decision_key(
        "reg.io/app:1", TRUST, [("simple", (creds, alice)), ("trust", (alice, creds))]
    )
    assert made == DecisionKey(
        "reg.io/app:1", policy_fingerprint(TRUST), ("simple", "trust"), (creds, alice)
    )
    assert key("reg.io/app:1") != key("reg.io/app:1.0") != key("REG.io/app:1")


def test_a_verifier_that_does_not_say_what_it_reads_makes_a_decision_uncacheable() -> None:
    assert decision_key("reg.io/app:1", TRUST, [("trust", ()), ("custom", None)]) is None


def test_a_secret_is_read_by_content() -> None:
    state = memory_state(secret("alice", {"key": "one"}))
    first = secret_input(state, "apps", "alice")
    state.apply(MODIFIED, secret("alice", {"key": "one"}))
    same = secret_input(state, "apps", "alice")
    state.apply(MODIFIED, secret("alice", {"key": "two"}))
    rotated = secret_input(state, "apps", "alice")
    state.apply(DELETED, secret("alice", {}))
    deleted = secret_input(state, "apps", "alice")

    assert first == same
    assert len({first.fingerprint, rotated.fingerprint, deleted.fingerprint}) == 3
    assert deleted.fingerprint == ABSENT
    assert secret_input(state, "other", "alice").namespace == "other"


def test_a_secret_fingerprint_tells_apart_data_that_concatenates_alike() -> None:
    state = memory_state(secret("a", {"k": "ey"}), secret("b", {"ke": "y"}))
    assert (
        secret_input(state, "apps", "a").fingerprint != secret_input(state, "apps", "b").fingerprint
    )


def _credentials(state, pull_secrets=("regcred",), image="reg.io/app:1") -> StateInput:
    check = ImageCheck(parse_image(image), TRUST, "apps", tuple(pull_secrets), 0.0)
    return pull_credentials_input(state, check)


def test_only_the_pull_credentials_for_the_image_registry_count() -> None:
    state = memory_state(
        pull_secret("regcred", "reg.io", "u", "p"), pull_secret("other", "other.io", "u", "p")
    )
    before = _credentials(state, ("regcred", "other"))
    state.apply(MODIFIED, pull_secret("other", "other.io", "u", "rotated"))
    assert _credentials(state, ("regcred", "other")) == before
    assert _credentials(state, ("regcred",)) == before  # the other registry's secret: no matter
    state.apply(MODIFIED, pull_secret("regcred", "reg.io", "u", "rotated"))
    assert _credentials(state, ("regcred", "other")) != before
    assert _credentials(state, ()) != before  # no credentials at all


# --- entries ---------------------------------------------------------------------------


def test_a_stored_allow_is_answered_and_counted() -> None:
    cache = Clocks().cache()
    assert cache.get(key()) is None
    cache.put(key(), ALLOW, max_age=30)
    assert cache.get(key()) == ALLOW
    assert cache.get(key("reg.io/app:2")) is None
    assert cache.stats() == DecisionCacheStats(entries=1, hits=1, misses=2)


def test_another_input_is_another_entry() -> None:
    cache = Clocks().cache()
    cache.put(key("reg.io/app:1", TRUST, secret_at("alice", "old")), ALLOW, max_age=30)
    assert cache.get(key("reg.io/app:1", TRUST, secret_at("alice", "new"))) is None
    assert cache.get(key("reg.io/app:1", TRUST, secret_at("alice", "old", "other"))) is None
    assert cache.get(key("reg.io/app:1", TRUST, secret_at("alice", "old"))) == ALLOW


def test_an_entry_is_used_for_at_most_its_max_age() -> None:
    clocks = Clocks()
    cache = clocks.cache()
    cache.put(key(), ALLOW, max_age=30)
    clocks.seconds += 29.9
    assert cache.get(key()) == ALLOW
    clocks.seconds += 0.1
    assert cache.get(key()) is None
    assert cache.stats().entries == 0  # forgotten


def test_an_entry_is_used_only_while_each_of_its_verdicts_holds() -> None:
    clocks = Clocks()
    cache = clocks.cache()
    expiring = Verdict("trust", ALLOW.digest, valid_until=T0 + datetime.timedelta(seconds=10))
    lasting = Verdict("simple", ALLOW.digest)
    cache.put(key(), ALLOW, max_age=3600, verdicts=(lasting, expiring))

    def holds(verdict: Verdict) -> bool:
        return verdict.valid_until is None or clocks.now < verdict.valid_until

    clocks.now += datetime.timedelta(seconds=9)
    assert cache.get(key(), holds) == ALLOW
    clocks.now += datetime.timedelta(seconds=1)
    assert cache.get(key(), holds) is None
    assert cache.get(key(), lambda _: True) is None  # forgotten once found stale


def test_an_allow_of_no_age_is_not_kept() -> None:
    cache = Clocks().cache()
    cache.put(key(), ALLOW, max_age=0)
    assert cache.stats().entries == 0


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = Clocks().cache(max_entries=2)
    cache.put(key("reg.io/a:1"), ALLOW, max_age=30)
    cache.put(key("reg.io/b:1"), ALLOW, max_age=30)
    assert cache.get(key("reg.io/a:1")) == ALLOW
    cache.put(key("reg.io/c:1"), ALLOW, max_age=30)
    assert cache.get(key("reg.io/b:1")) is None
    assert cache.get(key("reg.io/a:1")) == ALLOW and cache.get(key("reg.io/c:1")) == ALLOW
    assert cache.stats().entries == 2


def test_no_entries_turns_the_cache_off() -> None:
    cache = Clocks().cache(max_entries=0)
    cache.put(key(), ALLOW, max_age=30)
    assert not cache.enabled
    assert cache.get(key()) is None
    assert cache.stats() == DecisionCacheStats(entries=0, hits=0, misses=0)


def test_the_default_size_comes_from_the_settings() -> None:
    assert Settings().decision_cache_max_entries == 4096
    assert DecisionCache(Settings().decision_cache_max_entries).enabled


# --- metrics ---------------------------------------------------------------------------


def test_hits_misses_and_entries_are_exported() -> None:
    cache = Clocks().cache()
    metrics = Metrics()
    metrics.registry.register(DecisionCacheMetrics(cache.stats))
    cache.get(key())
    cache.put(key(), ALLOW, max_age=30)
    cache.get(key())
    cache.get(key())

    text = metrics.exposition().decode()

    assert "portieris_decision_cache_hits_total 2.0" in text
    assert "portieris_decision_cache_misses_total 1.0" in text
    assert "portieris_decision_cache_entries 1.0" in text


def test_a_policy_content_is_what_counts_not_the_object_name() -> None:
    rule = ("reg.io/*", {"trust": {"enabled": True}})
    state = memory_state(cluster_policy("one", rule), cluster_policy("two", rule))
    one, two = state.cluster_image_policies()
    assert one.name != two.name
    assert policy_fingerprint(one.repositories[0].policy) == policy_fingerprint(
        two.repositories[0].policy
    )
