"""The plugin contract: which verifier checks which part of a policy, and how plugins load."""

from __future__ import annotations

import subprocess
import sys

import pytest

from portieris_webhook.http_client import HttpClient
from portieris_webhook.plugins import load_verifiers
from portieris_webhook.policy.model import Policy, Requirement, SimplePolicy, TrustPolicy
from portieris_webhook.settings import Settings
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.state import MemoryState
from portieris_webhook.trust.verifier import TrustVerifier
from portieris_webhook.verifiers import CONTRACT, VerifierContext, required_verifiers

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


@pytest.mark.parametrize("module", ["portieris_webhook.enforce", "portieris_webhook.verifiers"])
def test_deciding_imports_no_http_library_and_no_plugin_machinery(module):
    code = (
        f"import sys, {module}; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'stevedore'})))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == ""
