"""The plugin contract: which verifier checks which part of a policy, and how plugins load."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from portieris_webhook.cluster.state import MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.images import parse_image
from portieris_webhook.policy.model import Policy, Requirement, SimplePolicy, TrustPolicy
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.trust.verifier import TrustVerifier
from portieris_webhook.verify.contract import (
    ABSENT,
    CONTRACT,
    ImageCheck,
    Verdict,
    Verifier,
    VerifierContext,
    pull_credentials_input,
    required_verifiers,
    secret_input,
)
from portieris_webhook.verify.plugins import load_verifiers

from tests.builders import memory_state
from tests.fixtures.simple_helpers import pull_secret, secret

SIGNED = SimplePolicy((Requirement("signedBy", "keys"),))


@pytest.mark.parametrize(
    ("policy", "required"),
    [
        (Policy(), ()),
        (Policy(TrustPolicy(enabled=False, trust_server="https://notary.example")), ()),
        (Policy(mutate_image=False), ()),
        (Policy(TrustPolicy(enabled=True)), ("trust",)),
        (Policy(simple=SIGNED), ("simple",)),
        (Policy(TrustPolicy(enabled=True), SIGNED), ("trust", "simple")),
    ],
    ids=["empty", "trust-disabled", "mutate-only", "trust", "simple", "both"],
)
def test_a_policy_needs_the_verifiers_of_the_parts_it_sets(policy, required):
    assert required_verifiers(policy) == required


async def test_the_installed_plugins_are_the_verifiers_the_contract_names():
    http = HttpClient(None)
    verifiers = load_verifiers(VerifierContext(Settings(), MemoryState(), http))
    try:
        assert set(verifiers) == set(CONTRACT)
        assert isinstance(verifiers["trust"], TrustVerifier)
        assert isinstance(verifiers["simple"], SimpleVerifier)
        assert all(verifier.name == name for name, verifier in verifiers.items())
    finally:
        for verifier in verifiers.values():
            await verifier.close()
        await http.close()


@pytest.mark.parametrize(
    "module", ["portieris_webhook.decide.enforcer", "portieris_webhook.verify.contract"]
)
def test_deciding_imports_no_http_library_and_no_plugin_machinery(module):
    code = (
        f"import sys, {module}; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'stevedore'})))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == ""


# --- what each verifier reads (the decision cache's keys) ------------------------------


def _check(policy: Policy, pull_secrets: tuple[str, ...] = ("regcred",)) -> ImageCheck:
    return ImageCheck(parse_image("reg.io/team/app:1"), policy, "apps", pull_secrets, 0.0)


def _verifiers(state: MemoryState) -> tuple[TrustVerifier, SimpleVerifier]:
    context = VerifierContext(Settings(trust_refresh_interval=42.0), state, HttpClient(None))
    return TrustVerifier(context), SimpleVerifier(context)


def test_a_verifier_that_says_nothing_of_what_it_reads_is_never_reused():
    class Opaque(Verifier):
        name = "opaque"

        async def verify(self, check: ImageCheck) -> Verdict:
            return Verdict(self.name, None)

    verifier = Opaque(VerifierContext(Settings(), MemoryState(), HttpClient(None)))
    assert verifier.inputs(_check(Policy())) is None
    assert verifier.max_age() == 0.0


async def test_trust_reads_its_signer_secrets_and_the_registry_pull_credentials():
    state = memory_state(
        secret("alice", {"name": "alice"}), pull_secret("regcred", "reg.io", "u", "p")
    )
    trust, _ = _verifiers(state)
    check = _check(Policy(TrustPolicy(enabled=True, signer_secrets=("alice", "bob"))))

    inputs = trust.inputs(check)

    assert inputs == (
        secret_input(state, "apps", "alice"),
        secret_input(state, "apps", "bob"),
        pull_credentials_input(state, check),
    )
    assert inputs[1].fingerprint == ABSENT
    assert trust.max_age() == 42.0


async def test_simple_reads_key_secrets_in_their_namespaces_the_store_secret_and_credentials():
    state = memory_state(secret("keys", {"key": "k"}, namespace="signing"))
    _, simple = _verifiers(state)
    policy = Policy(
        simple=SimplePolicy(
            (
                Requirement("insecureAcceptAnything"),
                Requirement("signedBy", "keys", "signing"),
                Requirement("signedBy", "team-keys"),
            ),
            store_url="https://store.example",
            store_secret="store",
        )
    )
    check = _check(policy)

    assert simple.inputs(check) == (
        secret_input(state, "signing", "keys"),
        secret_input(state, "apps", "team-keys"),
        secret_input(state, "apps", "store"),
        pull_credentials_input(state, check),
    )
    assert simple.max_age() == 42.0
    await simple.close()


def test_simple_without_signed_by_reads_nothing():
    _, simple = _verifiers(MemoryState())
    accept = Policy(simple=SimplePolicy((Requirement("insecureAcceptAnything"),)))
    assert simple.inputs(_check(accept)) == ()


def test_a_trust_verdict_holds_until_its_data_expires_by_the_trust_clock():
    trust, _ = _verifiers(MemoryState())
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    trust.clock = lambda: now
    verdict = Verdict("trust", None, valid_until=now + datetime.timedelta(seconds=1))
    assert trust.holds(verdict) and trust.holds(Verdict("trust", None))
    now += datetime.timedelta(seconds=1)
    assert not trust.holds(verdict)
