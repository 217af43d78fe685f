"""SimpleVerifier decisions that need no registry, store or gpg, and the digest agreement rule."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.errors import SecretError, VerificationError
from portieris_webhook.images import parse_image
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.verify.contract import ImageCheck, Verdict, Verifier, VerifierContext

from tests.builders import memory_state
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    decide_image,
    policy_under_test,
    secret,
    signed_by,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
IMAGE = "registry.invalid/team/app:v1"


async def run_simple(policy: dict[str, Any], *objects: dict[str, Any]) -> Verdict:
    state = memory_state(policy_under_test(policy), *objects)
    settings = Settings()
    http = HttpClient(None)
    verifier = SimpleVerifier(VerifierContext(settings, state, http))
    parsed = state.cluster_image_policies()[0].repositories[0].policy
    check = ImageCheck(
        parse_image(IMAGE), parsed, NAMESPACE, (), asyncio.get_running_loop().time() + 5
    )
    try:
        return await verifier.verify(check)
    finally:
        await verifier.close()
        await http.close()


async def test_insecure_accept_anything_accepts_without_a_digest() -> None:
    verdict = await run_simple({"simple": {"requirements": [{"type": "insecureAcceptAnything"}]}})
    assert verdict == Verdict("simple", None, "insecureAcceptAnything")


async def test_reject_denies_whatever_else_is_required() -> None:
    reqs = [{"type": "insecureAcceptAnything"}, {"type": "reject"}]
    with pytest.raises(VerificationError, match="requirement 2 is 'reject'"):
        await run_simple({"simple": {"requirements": reqs}})


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ((), f"key secret {NAMESPACE}/keys): the secret does not exist"),
        ((secret("keys", {"other": "x"}),), "the secret has no `key` field"),
    ],
)
async def test_a_key_secret_that_is_missing_or_empty_denies_clearly(
    objects: tuple[dict[str, Any], ...], message: str
) -> None:
    with pytest.raises(SecretError, match=re.escape(message)):
        await run_simple({"simple": {"requirements": [signed_by("keys")]}}, *objects)


async def test_the_key_secret_namespace_is_where_the_key_is_looked_up() -> None:
    req = signed_by("keys", keySecretNamespace="vault")
    with pytest.raises(
        SecretError, match=re.escape("key secret vault/keys): the secret does not exist")
    ):
        await run_simple({"simple": {"requirements": [req]}}, secret("keys", {"key": "x"}))


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ((), f"store secret {NAMESPACE}/store does not exist"),
        ((secret("store", {"username": "u"}),), "must hold `username` and `password`"),
    ],
)
async def test_a_store_secret_that_is_missing_or_incomplete_denies_clearly(
    objects: tuple[dict[str, Any], ...], message: str
) -> None:
    policy = {
        "simple": {
            "requirements": [{"type": "insecureAcceptAnything"}, signed_by("keys")],
            "storeURL": "https://store.invalid",
            "storeSecret": "store",
        }
    }
    with pytest.raises(SecretError, match=message):
        await run_simple(policy, secret("keys", {"key": "x"}), *objects)


class FixedVerifier(Verifier):
    """A verifier that vouches for a fixed digest (stands in for trust or simple)."""

    def __init__(self, name: str, digest: str | None) -> None:
        self.name = name  # type: ignore[misc]
        self.digest = digest

    async def verify(self, check: ImageCheck) -> Verdict:
        return Verdict(self.name, self.digest)


async def decide(image: str, trust: str | None, simple: str | None, mutate: bool = True):
    policy = {
        "trust": {"enabled": True},
        "simple": {"requirements": [signed_by("keys")]},
        "mutateImage": mutate,
    }
    state = memory_state(policy_under_test(policy))
    verifiers = {"trust": FixedVerifier("trust", trust), "simple": FixedVerifier("simple", simple)}
    return await decide_image(Enforcer(state, verifiers, Settings()), image)


async def test_trust_and_simple_agreeing_on_the_digest_allow_and_pin_it() -> None:
    decision = await decide(IMAGE, D1, D1)
    assert decision.allowed
    assert decision.patched_image == f"registry.invalid/team/app@{D1}"


async def test_trust_and_simple_naming_different_digests_deny_naming_both() -> None:
    decision = await decide(IMAGE, D1, D2)
    assert not decision.allowed
    assert decision.reason_kind == "digest-disagreement"
    assert f"trust verified {D1}" in decision.reasons[0]
    assert f"simple verified {D2}" in decision.reasons[0]


async def test_mutate_image_false_allows_without_a_patch() -> None:
    decision = await decide(IMAGE, D1, D1, mutate=False)
    assert decision.allowed and decision.patched_image is None and decision.digest == D1


async def test_a_digest_reference_must_be_the_digest_that_was_verified() -> None:
    decision = await decide(f"registry.invalid/team/app@{D2}", D1, D1)
    assert not decision.allowed and decision.reason_kind == "digest-mismatch"
