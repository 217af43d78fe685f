"""The enforcer reuses a passed check while nothing it read changed, and only then."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from portieris_webhook.cluster.state import DELETED, MODIFIED, MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide import memo
from portieris_webhook.decide.cache import DecisionCache
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.memo import POD_MAX_IMAGES
from portieris_webhook.errors import InvalidPolicy, VerificationError
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.verify.contract import (
    ImageCheck,
    StateInput,
    Verdict,
    Verifier,
    VerifierContext,
    pull_credentials_input,
    secret_input,
)

from tests.builders import (
    ManualClock,
    cluster_policy,
    image_policy,
    memory_state,
    pod_spec,
    request_for,
    workload,
)
from tests.fixtures.simple_helpers import pull_secret, secret

DIGEST = "sha256:" + "a" * 64
TRUST = {"trust": {"enabled": True, "signerSecrets": [{"name": "alice"}]}}
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class ReadingVerifier(Verifier):
    """Stands in for the trust plugin: reads its signer secrets, says so, counts its checks."""

    name = "trust"

    def __init__(self, context: VerifierContext, *, error: Exception | None = None) -> None:
        super().__init__(context)
        self.error = error
        self.checks = 0
        self.now = T0
        self.valid_until: datetime.datetime | None = None
        self.age = 0.0
        """How long the answers this check used had been remembered."""
        self.during: list[tuple[str, dict[str, Any]]] = []
        """State changes made while a check runs (event, object)."""

    async def verify(self, check: ImageCheck) -> Verdict:
        self.checks += 1
        for event, obj in self.during:
            self.context.state.apply(event, obj)  # type: ignore[attr-defined]
        if self.error:
            raise self.error
        return Verdict(self.name, DIGEST, "signed", age=self.age, valid_until=self.valid_until)

    def inputs(self, check: ImageCheck) -> tuple[StateInput, ...]:
        state = self.context.state
        return tuple(
            secret_input(state, check.namespace, s) for s in check.policy.trust.signer_secrets
        )

    def max_age(self) -> float:
        return 30.0

    def holds(self, verdict: Verdict) -> bool:
        return verdict.valid_until is None or self.now < verdict.valid_until


def make(
    state: MemoryState, settings: Settings | None = None, **kwargs: Any
) -> tuple[Enforcer, ReadingVerifier, ManualClock]:
    settings = settings or Settings()
    verifier = ReadingVerifier(VerifierContext(settings, state, HttpClient(None)), **kwargs)
    clock = ManualClock(100.0)
    decisions = DecisionCache(settings.decision_cache_max_entries, monotonic=clock)
    return Enforcer(state, {"trust": verifier}, settings, decisions), verifier, clock


async def decide(enforcer: Enforcer, image: str = "reg.io/app:1", namespace: str = "default"):
    obj = workload("Pod", pod_spec(image), namespace=namespace)
    return (await enforcer.decide(request_for(obj))).images[0]


def alice(key: str = "one", namespace: str = "default") -> dict[str, Any]:
    return secret("alice", {"publicKey": key}, namespace=namespace)


def state_with(*objects: dict[str, Any]) -> MemoryState:
    return memory_state(cluster_policy("c", ("reg.io/*", TRUST)), alice(), *objects)


async def test_a_passed_check_is_reused_without_running_the_verifier_again():
    enforcer, verifier, _ = make(state_with())
    first = await decide(enforcer)
    second = await decide(enforcer)

    assert verifier.checks == 1
    assert second == first
    assert second.allowed and second.patched_image == f"reg.io/app@{DIGEST}"
    assert enforcer.decisions.stats().hits == 1


async def test_a_denied_check_is_run_again():
    enforcer, verifier, _ = make(state_with(), error=VerificationError("not signed"))
    assert not (await decide(enforcer)).allowed
    assert not (await decide(enforcer)).allowed
    assert verifier.checks == 2


async def test_a_verifier_that_does_not_say_what_it_reads_is_run_every_time():
    state = state_with()
    enforcer, verifier, _ = make(state)
    verifier.inputs = Verifier.inputs.__get__(verifier)  # type: ignore[method-assign]
    await decide(enforcer)
    await decide(enforcer)
    assert verifier.checks == 2 and enforcer.decisions.stats().entries == 0


async def test_each_image_as_written_is_its_own_decision():
    enforcer, verifier, _ = make(state_with())
    await decide(enforcer, "reg.io/app:1")
    await decide(enforcer, "reg.io/app:2")
    await decide(enforcer, f"reg.io/app@{DIGEST}")
    assert verifier.checks == 3


async def test_rotating_a_secret_the_check_read_runs_it_again_and_another_secret_does_not():
    state = state_with(secret("unrelated", {"x": "1"}))
    enforcer, verifier, _ = make(state)
    await decide(enforcer)
    state.apply(MODIFIED, secret("unrelated", {"x": "2"}))
    await decide(enforcer)
    assert verifier.checks == 1
    state.apply(MODIFIED, alice("two"))
    await decide(enforcer)
    assert verifier.checks == 2
    state.apply(DELETED, alice("two"))
    await decide(enforcer)
    assert verifier.checks == 3


async def test_editing_the_policy_runs_the_check_again():
    state = state_with(secret("bob", {"publicKey": "b"}))
    enforcer, verifier, _ = make(state)
    await decide(enforcer)
    edited = {"trust": {"enabled": True, "signerSecrets": [{"name": "alice"}, {"name": "bob"}]}}
    state.apply(MODIFIED, cluster_policy("c", ("reg.io/*", edited)))
    await decide(enforcer)
    assert verifier.checks == 2


async def test_the_same_policy_under_another_name_reuses_the_check_and_names_the_new_one():
    state = state_with()
    enforcer, verifier, _ = make(state)
    await decide(enforcer)
    state.apply(DELETED, cluster_policy("c", ("reg.io/*", TRUST)))
    state.apply(MODIFIED, cluster_policy("renamed", ("reg.io/*", TRUST)))
    decision = await decide(enforcer)
    assert verifier.checks == 1
    assert decision.allowed and "renamed" in decision.policy


async def test_deleting_the_policy_denies_at_once():
    state = state_with()
    enforcer, _, _ = make(state)
    await decide(enforcer)
    state.apply(DELETED, cluster_policy("c", ("reg.io/*", TRUST)))
    decision = await decide(enforcer)
    assert not decision.allowed and "no ClusterImagePolicy" in decision.reasons[0]


async def test_a_namespace_matters_through_the_secrets_read_in_it():
    rule = ("reg.io/*", TRUST)
    no_signers = ("reg.io/*", {"trust": {"enabled": True}})
    state = memory_state(
        image_policy("p", "team-a", rule),
        image_policy("p", "team-b", rule),
        image_policy("p", "team-c", no_signers),
        image_policy("p", "team-d", no_signers),
        alice(namespace="team-a"),
        alice(namespace="team-b"),
    )
    enforcer, verifier, _ = make(state)
    await decide(enforcer, namespace="team-a")
    await decide(enforcer, namespace="team-b")  # the same key, but a secret of its own
    assert verifier.checks == 2
    await decide(enforcer, namespace="team-c")
    await decide(enforcer, namespace="team-d")  # reads nothing of its namespace
    assert verifier.checks == 3


async def test_a_check_whose_secret_changed_while_it_ran_is_not_kept():
    state = state_with()
    enforcer, verifier, _ = make(state)
    verifier.during = [(MODIFIED, alice("two"))]
    await decide(enforcer)
    verifier.during = []
    await decide(enforcer)
    assert verifier.checks == 2
    await decide(enforcer)
    assert verifier.checks == 2


async def test_a_check_is_reused_for_at_most_the_verifier_max_age():
    enforcer, verifier, clock = make(state_with())
    await decide(enforcer)
    clock.now += 29.9
    await decide(enforcer)
    assert verifier.checks == 1
    clock.now += 0.1
    await decide(enforcer)
    assert verifier.checks == 2


async def test_a_check_made_of_remembered_answers_is_reused_only_for_what_is_left_of_the_window():
    enforcer, verifier, clock = make(state_with())
    verifier.age = 20.0  # the verifier's answers were already 20 s old, of its 30 s
    await decide(enforcer)
    clock.now += 9.9
    await decide(enforcer)
    assert verifier.checks == 1
    clock.now += 0.2
    await decide(enforcer)
    assert verifier.checks == 2


async def test_a_check_made_of_answers_as_old_as_the_window_is_not_kept():
    enforcer, verifier, _ = make(state_with())
    verifier.age = 30.0
    await decide(enforcer)
    await decide(enforcer)
    assert verifier.checks == 2


async def test_a_check_is_not_reused_once_its_verdict_no_longer_holds():
    enforcer, verifier, _ = make(state_with())
    verifier.valid_until = T0 + datetime.timedelta(days=1)
    await decide(enforcer)
    verifier.now += datetime.timedelta(days=1)
    await decide(enforcer)
    assert verifier.checks == 2


@pytest.mark.parametrize(
    "settings",
    [Settings(decision_cache_max_entries=0), Settings(trust_refresh_interval=0.0)],
    ids=["no-entries", "no-age"],
)
async def test_the_cache_can_be_turned_off(settings):
    state = state_with()
    verifier = ReadingVerifier(VerifierContext(settings, state, HttpClient(None)))
    verifier.max_age = lambda: settings.trust_refresh_interval  # type: ignore[method-assign]
    enforcer = Enforcer(state, {"trust": verifier}, settings)
    await decide(enforcer)
    await decide(enforcer)
    assert verifier.checks == 2
    assert enforcer.decisions.stats().hits == 0


async def test_a_verifier_failing_to_say_what_it_reads_is_run_and_not_cached():
    enforcer, verifier, _ = make(state_with())

    def broken(check: ImageCheck) -> tuple[StateInput, ...]:
        raise RuntimeError("plugin bug")

    verifier.inputs = broken  # type: ignore[method-assign]
    first = await decide(enforcer)
    second = await decide(enforcer)
    assert first.allowed and second.allowed
    assert verifier.checks == 2


# --- what the cluster state says about an image (policy, verifiers, decision key) is
# remembered per state generation: every change below must be seen by the very next request


async def test_a_rule_added_after_an_image_was_decided_governs_the_next_request():
    state = state_with()
    enforcer, verifier, _ = make(state)
    await decide(enforcer)
    state.apply(MODIFIED, cluster_policy("c", ("reg.io/*", TRUST), ("reg.io/app:*", {})))
    decision = await decide(enforcer)
    assert decision.allowed and decision.reasons == ("policy requires no checks",)
    assert "reg.io/app:*" in decision.policy and verifier.checks == 1


async def test_the_first_image_policy_of_a_namespace_replaces_the_cluster_policies_at_once():
    state = state_with()
    enforcer, _, _ = make(state)
    assert (await decide(enforcer)).allowed
    state.apply(MODIFIED, image_policy("p", "default", ("other.io/*", {})))
    decision = await decide(enforcer)
    assert not decision.allowed and "no ImagePolicy in namespace" in decision.reasons[0]


async def test_a_policy_turned_invalid_denies_the_next_request():
    state = state_with()
    enforcer, _, _ = make(state)
    await decide(enforcer)
    with pytest.raises(InvalidPolicy):
        state.apply(MODIFIED, cluster_policy("c", ("reg.io/*", {"vulnerability": {}})))
    decision = await decide(enforcer)
    assert not decision.allowed and "invalid" in decision.reasons[0]


async def test_a_denied_image_is_allowed_once_a_policy_for_it_appears():
    state = state_with()
    enforcer, _, _ = make(state)
    assert not (await decide(enforcer, "other.io/app:1")).allowed
    state.apply(MODIFIED, cluster_policy("c", ("reg.io/*", TRUST), ("other.io/*", {})))
    assert (await decide(enforcer, "other.io/app:1")).allowed


async def test_the_same_image_in_two_namespaces_gets_each_namespace_policy():
    state = memory_state(
        cluster_policy("c", ("reg.io/*", TRUST)),
        image_policy("p", "open", ("reg.io/*", {})),
        alice(),
    )
    enforcer, verifier, _ = make(state)
    for _ in range(2):
        assert (await decide(enforcer, namespace="open")).reasons == ("policy requires no checks",)
        assert (await decide(enforcer, namespace="default")).reasons == ("signed",)
    assert verifier.checks == 1


def regcred(name: str, password: str) -> dict[str, Any]:
    obj = pull_secret(name, "reg.io", "user", password)
    obj["metadata"]["namespace"] = "default"
    return obj


class PullReadingVerifier(ReadingVerifier):
    """Reads the pull credentials for the image's registry too, as the real plugins do."""

    def inputs(self, check: ImageCheck) -> tuple[StateInput, ...]:
        return (*super().inputs(check), pull_credentials_input(self.context.state, check))


async def test_rotating_a_pull_secret_runs_the_check_again():
    state = state_with(regcred("regcred", "one"))
    settings = Settings()
    verifier = PullReadingVerifier(VerifierContext(settings, state, HttpClient(None)))
    enforcer = Enforcer(state, {"trust": verifier}, settings)
    obj = workload("Pod", pod_spec("reg.io/app:1", pull_secrets=("regcred",)))
    await enforcer.decide(request_for(obj))
    await enforcer.decide(request_for(obj))
    assert verifier.checks == 1
    state.apply(MODIFIED, regcred("regcred", "two"))
    await enforcer.decide(request_for(obj))
    assert verifier.checks == 2


async def test_a_service_account_naming_other_pull_secrets_runs_the_check_again():
    account = {"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default"}}
    state = state_with(regcred("one", "1"), regcred("two", "2"), account)
    settings = Settings()
    verifier = PullReadingVerifier(VerifierContext(settings, state, HttpClient(None)))
    enforcer = Enforcer(state, {"trust": verifier}, settings)
    for names, checks in ((["one"], 1), (["one"], 1), (["two"], 2)):
        state.apply(MODIFIED, {**account, "imagePullSecrets": [{"name": n} for n in names]})
        await decide(enforcer)
        assert verifier.checks == checks


async def test_an_overlong_image_string_is_decided_but_never_remembered():
    """No valid reference is over 1 KiB; remembering such strings would let requests of
    up to 3 MiB fill the plan memo with gigabytes."""
    enforcer, _, _ = make(state_with())
    assert enforcer.plans is not None
    huge = "reg.io/" + "a" * 200_000 + ":1"
    decision = await decide(enforcer, huge)
    assert not decision.allowed
    assert len(enforcer.plans) == 0
    await decide(enforcer)
    assert len(enforcer.plans) == 1


async def decide_pod(enforcer: Enforcer, *images: str):
    obj = workload("Pod", pod_spec(*images))
    return await enforcer.decide(request_for(obj, uid=f"uid-{len(images)}"))


async def test_a_pod_answered_again_gets_the_same_answer_from_the_remembered_allow():
    enforcer, verifier, _ = make(state_with())
    images = [f"reg.io/app{n}:1" for n in range(10)]
    first = await decide_pod(enforcer, *images)
    assert enforcer.answers is not None and len(enforcer.answers) == 0  # it was verified
    second = await decide_pod(enforcer, *images)  # from cached allows: remembered
    assert len(enforcer.answers) == 1
    third = await decide_pod(enforcer, *images)  # the remembered answer
    assert verifier.checks == 10
    assert first.response.to_review() == second.response.to_review()
    assert third.response.to_review() == second.response.to_review()
    assert third.images == first.images
    patch = json.loads(base64.b64decode(third.response.to_review()["response"]["patch"]))
    assert [op["value"] for op in patch] == [f"reg.io/app{n}@{DIGEST}" for n in range(10)]


async def test_a_remembered_pod_answer_is_dropped_when_one_of_its_checks_expires():
    enforcer, verifier, clock = make(state_with())
    verifier.valid_until = T0 + datetime.timedelta(days=1)
    images = ("reg.io/a:1", "reg.io/b:1")
    for _ in range(3):
        await decide_pod(enforcer, *images)
    assert verifier.checks == 2
    verifier.now += datetime.timedelta(days=1)  # the trust data both relied on expired
    await decide_pod(enforcer, *images)
    assert verifier.checks == 4
    clock.now += 31  # past the verifier's max_age
    await decide_pod(enforcer, *images)
    assert verifier.checks == 6


async def test_a_denied_pod_is_never_remembered():
    enforcer, _, _ = make(state_with())
    for _ in range(3):
        decision = await decide_pod(enforcer, "reg.io/a:1", "other.io/b:1")
        assert not decision.response.allowed
    assert enforcer.answers is not None and len(enforcer.answers) == 0


async def test_a_pod_of_more_images_than_an_answer_may_hold_is_decided_image_by_image():
    enforcer, verifier, _ = make(state_with())
    images = [f"reg.io/app{n}:1" for n in range(POD_MAX_IMAGES + 1)]
    for _ in range(3):
        assert (await decide_pod(enforcer, *images)).response.allowed
    assert verifier.checks == len(images)
    assert enforcer.answers is not None and len(enforcer.answers) == 0


async def test_remembered_pod_answers_stay_within_their_text_budget(monkeypatch):
    """Pods naming many long image strings (a dry run is enough to send one) cannot grow
    the memo past its budget: the least recently used answers go first."""
    monkeypatch.setattr(memo, "ANSWERS_MAX_CHARS", 40_000)
    enforcer, _, _ = make(state_with())
    assert enforcer.answers is not None
    pods = [[f"reg.io/{'a' * 150}{pod}x{n}:1" for n in range(8)] for pod in range(20)]
    for images in pods:
        for _ in range(2):  # verified, then answered from cached allows and remembered
            assert (await decide_pod(enforcer, *images)).response.allowed
    assert 0 < enforcer.answers.bytes <= 40_000
    assert 0 < len(enforcer.answers) < len(pods)
    remembered = await decide_pod(enforcer, *pods[-1])  # the latest is still remembered
    assert remembered.response.allowed
