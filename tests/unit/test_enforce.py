"""Per-request decisions: precedence, owners, dedupe, patches, fail-closed paths."""

import asyncio

import pytest

from portieris_webhook.admission.review import parse_review
from portieris_webhook.cluster.state import ADDED, MODIFIED
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.errors import VerificationError
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.verify.contract import ImageCheck, Verdict, Verifier, VerifierContext

from tests.builders import (
    ACCEPT,
    REJECT,
    cluster_policy,
    decode_patch,
    image_policy,
    memory_state,
    pod_spec,
    request_for,
    review,
    workload,
)

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
TRUST = {"trust": {"enabled": True}}
BOTH = {
    "trust": {"enabled": True},
    "simple": {"requirements": [{"type": "insecureAcceptAnything"}]},
}


class DigestVerifier(Verifier):
    """Stands in for the trust plugin: vouches for a fixed digest, or fails, after a delay."""

    name = "trust"

    def __init__(self, context, digest=DIGEST_A, error=None, delay=0.0, cacheable=False):
        super().__init__(context)
        self.digest, self.error, self.delay = digest, error, delay
        self.cacheable = cacheable
        """Whether its passed checks are kept by the decision cache (it reads no secrets)."""
        self.seen: list[str] = []

    async def verify(self, check: ImageCheck) -> Verdict:
        self.seen.append(check.image.raw)
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return Verdict(self.name, self.digest, "signed")

    def inputs(self, check: ImageCheck):
        return () if self.cacheable else None

    def max_age(self) -> float:
        return 60.0 if self.cacheable else 0.0


def make_enforcer(state, *, trust=None, timeout=5.0, **trust_kwargs):
    settings = Settings(verify_timeout=timeout)
    context = VerifierContext(settings, state, HttpClient(None))
    verifiers: dict[str, Verifier] = {"simple": SimpleVerifier(context)}
    if trust is not False:
        verifiers["trust"] = DigestVerifier(context, **trust_kwargs)
    return Enforcer(state, verifiers, settings)


async def decide(enforcer, obj, **kwargs):
    return (await enforcer.decide(request_for(obj, **kwargs))).response.to_review()["response"]


async def test_allowed_image_is_pinned_to_the_verified_digest():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/app:1")))
    assert response["allowed"] is True
    assert decode_patch(response) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"reg.io/app@{DIGEST_A}"}
    ]


async def test_mutate_image_false_allows_without_patch():
    policy = {**TRUST, "mutateImage": False}
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", policy))))
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/app:1")))
    assert response["allowed"] is True and "patch" not in response


async def test_empty_policy_allows_without_checks_or_patch():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", {}))))
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/app:1")))
    assert response["allowed"] is True and "patch" not in response
    assert enforcer.verifiers["trust"].seen == []


async def test_object_without_images_is_allowed_unchanged():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    response = await decide(enforcer, workload("Deployment", pod_spec()))
    assert response["allowed"] is True and "patch" not in response
    assert enforcer.verifiers["trust"].seen == []


async def test_no_matching_policy_denies_naming_what_was_searched():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", {}))))
    response = await decide(enforcer, workload("Pod", pod_spec("quay.io/app:1")))
    assert response["allowed"] is False
    assert "no ClusterImagePolicy matches" in response["status"]["message"]


async def test_namespace_image_policy_hides_cluster_policies():
    state = memory_state(
        cluster_policy("c", ("*", {})), image_policy("p", "team", ("reg.io/*", {}))
    )
    response = await decide(
        make_enforcer(state), workload("Pod", pod_spec("quay.io/x"), namespace="team")
    )
    assert response["allowed"] is False
    assert "no ImagePolicy in namespace 'team'" in response["status"]["message"]


async def test_deny_lists_every_failing_image_with_its_reason():
    state = memory_state(cluster_policy("c", ("good/*", ACCEPT), ("bad/*", REJECT)))
    obj = workload("Pod", pod_spec("good/a", "bad/b", "Bad/Case", "other/c"))
    message = (await decide(make_enforcer(state), obj))["status"]["message"]
    assert "image bad/b: simple: simple signing requirement 1 is 'reject'" in message
    assert "image Bad/Case: " in message and "lower-case" in message
    assert "image other/c: no ClusterImagePolicy matches" in message
    assert "image good/a" not in message


async def test_one_log_line_names_every_image_with_its_policy_result_and_reason(caplog):
    state = memory_state(cluster_policy("c", ("good/*", ACCEPT), ("bad/*", REJECT)))
    obj = workload("Pod", pod_spec("good/a", "bad/b", "good/a"), name="web")
    with caplog.at_level("INFO", logger="portieris_webhook.decision"):
        await decide(make_enforcer(state), obj)
    [record] = [r for r in caplog.records if r.name == "portieris_webhook.decision"]
    line = record.getMessage()
    assert line.startswith("namespace=default object=Pod/web result=deny images=2: ")
    good, bad = line.split(": ", 1)[1].split(" | ")
    assert good.startswith("image=good/a policy=\"ClusterImagePolicy c repository 'good/*'\"")
    assert "result=allow digest=- reason=" in good
    assert bad.startswith("image=bad/b ") and "result=deny" in bad and "'reject'" in bad


@pytest.mark.parametrize("field", ["init", "ephemeral"])
async def test_init_and_ephemeral_containers_are_checked(field):
    state = memory_state(cluster_policy("c", ("good/*", {}), ("bad/*", REJECT)))
    obj = workload("Pod", pod_spec("good/a", **{field: ("bad/debugger",)}))
    response = await decide(make_enforcer(state), obj, operation="UPDATE")
    assert response["allowed"] is False and "bad/debugger" in response["status"]["message"]


async def test_zero_replica_workloads_are_checked():
    state = memory_state(cluster_policy("c", ("*", REJECT)))
    obj = workload("Deployment", pod_spec("x/y"), replicas=0)
    assert (await decide(make_enforcer(state), obj))["allowed"] is False


async def test_distinct_images_are_verified_once_and_every_container_is_patched():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    obj = workload("Deployment", pod_spec("reg.io/a:1", "reg.io/a:1", init=("reg.io/a:1",)))
    response = await decide(enforcer, obj)
    assert enforcer.verifiers["trust"].seen == ["reg.io/a:1"]
    paths = [op["path"] for op in decode_patch(response)]
    assert paths == [
        "/spec/template/spec/initContainers/0/image",
        "/spec/template/spec/containers/0/image",
        "/spec/template/spec/containers/1/image",
    ]


async def test_digest_reference_already_pinned_gets_no_patch():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    response = await decide(enforcer, workload("Pod", pod_spec(f"reg.io/a@{DIGEST_A}")))
    assert response["allowed"] is True and "patch" not in response


async def test_digest_reference_that_differs_from_the_verified_digest_is_denied():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))))
    response = await decide(enforcer, workload("Pod", pod_spec(f"reg.io/a@{DIGEST_B}")))
    assert response["allowed"] is False and "verified digest is" in response["status"]["message"]


async def test_verification_error_denies_with_the_verifier_reason():
    enforcer = make_enforcer(
        memory_state(cluster_policy("c", ("reg.io/*", TRUST))),
        error=VerificationError("no signed target for tag 1"),
    )
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["status"]["message"].endswith(
        "image reg.io/a:1: trust: no signed target for tag 1"
    )


async def test_unexpected_verifier_crash_denies():
    enforcer = make_enforcer(
        memory_state(cluster_policy("c", ("reg.io/*", TRUST))), error=RuntimeError("boom")
    )
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["allowed"] is False and "internal error" in response["status"]["message"]


async def test_missing_trust_verifier_fails_closed():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))), trust=False)
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["allowed"] is False
    assert (
        "requires trust verification, but the trust verifier is not installed"
        in response["status"]["message"]
    )


async def test_slow_verification_is_denied_when_the_budget_runs_out():
    enforcer = make_enforcer(
        memory_state(cluster_policy("c", ("reg.io/*", TRUST))), timeout=0.2, delay=5
    )
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["allowed"] is False
    assert "did not finish within 0.2s" in response["status"]["message"]


async def test_trust_and_simple_must_agree_on_the_digest():
    class OtherDigest(SimpleVerifier):
        async def verify(self, check):
            return Verdict("simple", DIGEST_B)

    state = memory_state(cluster_policy("c", ("reg.io/*", BOTH)))
    enforcer = make_enforcer(state)
    enforcer.verifiers["simple"] = OtherDigest(enforcer.verifiers["simple"].context)
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["allowed"] is False
    assert f"simple verified {DIGEST_B}, trust verified {DIGEST_A}" in response["status"]["message"]


async def test_trust_and_simple_agreeing_is_allowed_and_pinned():
    class SameDigest(SimpleVerifier):
        async def verify(self, check):
            return Verdict("simple", DIGEST_A)

    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", BOTH))))
    enforcer.verifiers["simple"] = SameDigest(enforcer.verifiers["simple"].context)
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["allowed"] is True
    assert decode_patch(response)[0]["value"] == f"reg.io/a@{DIGEST_A}"


OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-rs"}
REPLICASET = workload("ReplicaSet", pod_spec("x/y", init=("x/init",)), name="web-1")
REPLICASET["metadata"]["uid"] = "uid-rs"


SIGNED = ("x/*", TRUST)


async def admit_owner(enforcer):
    """The owner goes through the webhook: its images are verified and their allows cached."""
    response = await decide(enforcer, REPLICASET)
    assert response["allowed"] is True and decode_patch(response)


@pytest.mark.parametrize(
    "spec",
    [pod_spec("x/y"), pod_spec("x/y", init=("x/init",)), pod_spec("x/init", "x/y")],
    ids=["one-image", "all-images", "same-images-other-places"],
)
async def test_child_of_an_admitted_owner_is_allowed_from_the_cache_without_a_patch(spec):
    state = memory_state(cluster_policy("c", SIGNED), REPLICASET)
    enforcer = make_enforcer(state, cacheable=True)
    await admit_owner(enforcer)
    response = await decide(enforcer, workload("Pod", spec, owners=[OWNER]))
    assert response["allowed"] is True and "patch" not in response
    assert sorted(enforcer.verifiers["trust"].seen) == ["x/init", "x/y"]  # the owner's checks


async def test_child_of_an_owner_admitted_before_its_policy_was_narrowed_is_denied():
    state = memory_state(cluster_policy("c", SIGNED), REPLICASET)
    enforcer = make_enforcer(state, cacheable=True)
    await admit_owner(enforcer)
    state.apply(MODIFIED, cluster_policy("c", ("x/*", REJECT)))
    response = await decide(enforcer, workload("Pod", pod_spec("x/y"), owners=[OWNER]))
    assert response["allowed"] is False and "image x/y" in response["status"]["message"]


async def test_child_of_an_owner_that_never_went_through_the_webhook_is_decided_now():
    """An owner created before the webhook was installed, during a failurePolicy Ignore
    window or in an exempted namespace vouches for nothing."""
    state = memory_state(cluster_policy("c", ("*", REJECT)), REPLICASET)
    response = await decide(make_enforcer(state), workload("Pod", pod_spec("x/y"), owners=[OWNER]))
    assert response["allowed"] is False and "image x/y" in response["status"]["message"]


async def test_child_whose_images_are_not_cached_is_verified_now_and_left_unpatched():
    enforcer = make_enforcer(memory_state(cluster_policy("c", SIGNED), REPLICASET))
    response = await decide(enforcer, workload("Pod", pod_spec("x/y"), owners=[OWNER]))
    assert response["allowed"] is True and "patch" not in response
    assert enforcer.verifiers["trust"].seen == ["x/y"]


async def test_child_whose_image_fails_verification_now_is_denied():
    state = memory_state(cluster_policy("c", SIGNED), REPLICASET)
    enforcer = make_enforcer(state, error=VerificationError("signature expired"))
    response = await decide(enforcer, workload("Pod", pod_spec("x/y"), owners=[OWNER]))
    assert response["allowed"] is False and "signature expired" in response["status"]["message"]


def _with_subresource(document):
    document["request"]["subResource"] = "ephemeralcontainers"
    return document


@pytest.mark.parametrize(
    ("owner", "images", "namespace", "operation"),
    [
        ({**OWNER, "uid": "forged-uid"}, ("x/y",), "default", "CREATE"),
        ({**OWNER, "name": "not-there"}, ("x/y",), "default", "CREATE"),
        ({**OWNER, "apiVersion": "example.com/v1"}, ("x/y",), "default", "CREATE"),
        (OWNER, ("x/y",), "elsewhere", "CREATE"),
        (OWNER, ("x/y",), "default", "UPDATE"),
        (OWNER, ("x/y", "x/other"), "default", "CREATE"),
    ],
    ids=["wrong-uid", "missing-owner", "other-group", "other-namespace", "update", "other-image"],
)
async def test_only_a_real_owner_of_every_image_spares_the_patch(
    owner, images, namespace, operation
):
    state = memory_state(cluster_policy("c", SIGNED), REPLICASET)
    obj = workload("Pod", pod_spec(*images), namespace=namespace, owners=[owner])
    response = await decide(make_enforcer(state), obj, operation=operation)
    assert response["allowed"] is True
    assert [op["value"] for op in decode_patch(response)] == [f"{i}@{DIGEST_A}" for i in images]


async def test_child_running_an_image_its_owner_does_not_is_checked():
    # The owner exists with the right uid, but it never asked for this image.
    state = memory_state(cluster_policy("c", ("*", REJECT)), REPLICASET)
    obj = workload("Pod", pod_spec("x/y", "evil/miner:1"), owners=[OWNER])
    response = await decide(make_enforcer(state), obj)
    assert response["allowed"] is False and "image evil/miner:1" in response["status"]["message"]


@pytest.mark.parametrize(
    "owner",
    [
        {**OWNER, "uid": "forged-uid"},
        {**OWNER, "name": "not-there"},
        {**OWNER, "apiVersion": "example.com/v1"},
        {**OWNER, "kind": "ConfigMap", "apiVersion": "v1"},
    ],
    ids=["wrong-uid", "missing-owner", "other-group", "not-an-owner-kind"],
)
async def test_fabricated_owner_reference_does_not_bypass_checks(owner):
    state = memory_state(cluster_policy("c", ("*", REJECT)), REPLICASET)
    response = await decide(make_enforcer(state), workload("Pod", pod_spec("x/y"), owners=[owner]))
    assert response["allowed"] is False


async def test_updates_of_an_owned_pod_are_checked():
    state = memory_state(cluster_policy("c", ("*", REJECT)), REPLICASET)
    obj = workload("Pod", pod_spec("x/y", ephemeral=("x/debugger",)), owners=[OWNER])
    response = await decide(make_enforcer(state), obj, operation="UPDATE")
    assert response["allowed"] is False


async def test_ephemeral_container_subresource_of_an_owned_pod_is_checked():
    state = memory_state(cluster_policy("c", ("*", REJECT)), REPLICASET)
    document = review(workload("Pod", pod_spec("x/y", ephemeral=("x/debugger",)), owners=[OWNER]))
    document["request"]["subResource"] = "ephemeralcontainers"
    document["request"]["operation"] = "CREATE"
    enforcer = make_enforcer(state)
    response = (await enforcer.decide(parse_review(document))).response.to_review()["response"]
    assert response["allowed"] is False and "x/debugger" in response["status"]["message"]


async def test_owner_in_another_namespace_does_not_count():
    state = memory_state(cluster_policy("c", ("*", REJECT)), REPLICASET)
    obj = workload("Pod", pod_spec("x/y"), namespace="elsewhere", owners=[OWNER])
    assert (await decide(make_enforcer(state), obj))["allowed"] is False


async def test_unsupported_kind_is_denied_with_a_message():
    state = memory_state(cluster_policy("c", ("*", {})))
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    response = await decide(make_enforcer(state), obj)
    assert (
        response["allowed"] is False
        and "not a workload portieris checks" in response["status"]["message"]
    )


async def test_delete_is_not_checked():
    state = memory_state(cluster_policy("c", ("*", REJECT)))
    obj = workload("Pod", pod_spec("x/y"))
    response = await decide(make_enforcer(state), obj, operation="DELETE")
    assert response["allowed"] is True


async def test_invalid_policy_in_scope_denies_everything_there():
    state = memory_state(cluster_policy("c", ("*", {})))
    bad = image_policy("broken", "team", ("*", {"trust": {"enabled": "yes"}}))
    with pytest.raises(Exception, match="must be true or false"):
        state.apply(ADDED, bad)
    response = await decide(
        make_enforcer(state), workload("Pod", pod_spec("x/y"), namespace="team")
    )
    assert response["allowed"] is False
    assert "ImagePolicy team/broken" in response["status"]["message"]
    other = await decide(make_enforcer(state), workload("Pod", pod_spec("x/y"), namespace="other"))
    assert other["allowed"] is True


async def test_only_the_verifiers_the_policy_needs_are_asked():
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", ACCEPT))))
    response = await decide(enforcer, workload("Pod", pod_spec("reg.io/a:1")))
    assert response["allowed"] is True
    assert enforcer.verifiers["trust"].seen == []


@pytest.mark.parametrize(
    ("image", "options", "kind"),
    [
        ("quay.io/a:1", {}, "no-policy"),
        ("reg.io/Upper", {}, "invalid-image"),
        ("reg.io/a:1", {"trust": False}, "verifier-missing"),
        ("reg.io/a:1", {"error": VerificationError("not signed")}, "verification"),
        ("reg.io/a:1", {"error": RuntimeError("boom")}, "verification"),
        (f"reg.io/a@{DIGEST_A}", {"digest": DIGEST_B}, "digest-mismatch"),
        ("reg.io/a:1", {"timeout": 0.2, "delay": 5}, "timeout"),
    ],
    ids=[
        "no-policy",
        "invalid-image",
        "verifier-missing",
        "verification",
        "verifier-crash",
        "digest-mismatch",
        "timeout",
    ],
)
async def test_each_deny_names_its_category_for_metrics(image, options, kind):
    enforcer = make_enforcer(memory_state(cluster_policy("c", ("reg.io/*", TRUST))), **options)
    decision = await enforcer.decide(request_for(workload("Pod", pod_spec(image))))
    assert decision.response.allowed is False
    assert decision.reason_kinds == (kind,)
