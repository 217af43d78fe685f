"""Checks of the operator's user overrides before an apply (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from k8sapp_portieris.common import checks
from k8sapp_portieris.common.errors import OverridesError

from tests.fixtures.pki import TestCA


@pytest.mark.parametrize(
    "url", [None, "", "https://notary.example", "https://10.0.0.5:4443", "https://n.example/v"]
)
def test_https_trust_servers_are_accepted(url: str | None) -> None:
    assert checks.trust_server_problems(url) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://notary.example", "is not an https URL"),
        ("notary.example:4443", "is not an https URL"),
        ("https://", "is not an https URL"),
        ("ftp://notary.example", "is not an https URL"),
        ("https://notary.example:99999", "is not a URL"),
        ("https://user:secret@notary.example", "must not carry credentials"),
        ("https://notary.example/?x=1", "must not carry credentials, a query"),
        (["https://notary.example"], "must be an https URL, not list"),
    ],
)
def test_a_trust_server_that_is_not_an_https_url_is_refused(url: object, message: str) -> None:
    (problem,) = checks.trust_server_problems(url)
    assert message in problem


@pytest.mark.parametrize("value", [None, "platform", "application"])
def test_component_label_values(value: str | None) -> None:
    assert checks.component_problems(value) == []


def test_an_unknown_component_label_is_refused() -> None:
    (problem,) = checks.component_problems("cheap")
    assert "use platform" in problem and "'cheap'" in problem


def test_every_problem_of_the_user_overrides_is_reported() -> None:
    user = {
        "TrustedCACert": "%%%",
        "defaultTrustServer": "http://notary",
        "app.starlingx.io/component": "x",
        "platform": {"failurePolicy": "Ignore"},
    }
    problems = checks.user_override_problems(user)
    assert len(problems) == 4
    assert "TrustedCACert" in problems[0]
    assert "defaultTrustServer" in problems[1]
    assert "app.starlingx.io/component" in problems[2]
    assert "platform.* values are written by the application" in problems[3]


def test_sigstore_trust_roots_of_the_user_are_checked() -> None:
    user = {
        "sigstore": {
            "trustRoots": {
                "rekor": None,  # removes the platform's entry
                "release-key": "not a key",
                "image": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
            },
            "roots": {},
        }
    }
    problems = checks.user_override_problems(user)
    assert problems == [
        "sigstore.roots is not a value of the chart: the chart takes sigstore.trustRoots",
        "sigstore.trustRoots entry name 'image' is one sysinv reads as an image to download: "
        "choose another name (e.g. rekor, fulcio, release-key)",
    ]
    del user["sigstore"]["trustRoots"]["image"]
    (problem,) = checks.user_override_problems(user)[1:]
    assert problem.startswith("sigstore.trustRoots entry 'release-key' holds no PEM block")
    assert checks.user_override_problems({"sigstore": []}) == [
        "sigstore must be a map (with trustRoots), not list"
    ]


def test_good_user_overrides_have_no_problem() -> None:
    user = {"defaultTrustServer": "https://notary.example", "replicaCount": 2}
    assert checks.user_override_problems(user) == []


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"replicaCount": 1, "podDisruptionBudget": {"enabled": True, "minAvailable": 1}}, True),
        ({"replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": 1}}, False),
        (
            {"replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}},
            False,
        ),
        (
            {"replicaCount": 1, "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}},
            True,
        ),
        ({"replicaCount": 1, "podDisruptionBudget": {"enabled": True, "maxUnavailable": 0}}, True),
        (
            {"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "maxUnavailable": "0%"}},
            True,
        ),
        (
            {"replicaCount": 1, "podDisruptionBudget": {"enabled": True, "maxUnavailable": "10%"}},
            False,
        ),
        ({"replicaCount": 1, "podDisruptionBudget": {"enabled": False, "minAvailable": 1}}, False),
        ({"replicaCount": 1, "podDisruptionBudget": {"enabled": True, "minAvailable": ""}}, False),
    ],
)
def test_the_disruption_budget_must_let_a_replica_be_evicted(
    values: dict[str, Any], problem: bool
) -> None:
    assert bool(checks.disruption_problems(values)) is problem


def test_user_overrides_are_merged_over_system_overrides_as_helm_merges() -> None:
    system = {"replicaCount": 2, "webHooks": {"failurePolicy": "Fail", "timeoutSeconds": 10}}
    user = {"replicaCount": 1, "webHooks": {"failurePolicy": None, "excludedNamespaces": ["a"]}}
    assert checks.merge_values(system, user) == {
        "replicaCount": 1,
        "webHooks": {"timeoutSeconds": 10, "excludedNamespaces": ["a"]},
    }


@pytest.mark.parametrize(("text", "values"), [(None, {}), ("", {}), ("~", {}), ("a: 1", {"a": 1})])
def test_user_overrides_text_is_parsed(text: str | None, values: dict[str, Any]) -> None:
    assert checks.parse_user_overrides(text) == values


@pytest.mark.parametrize(
    ("text", "message"), [("a: [", "not valid YAML"), ("- a\n- b", "must be a mapping")]
)
def test_unusable_user_overrides_text_is_an_error(text: str, message: str) -> None:
    with pytest.raises(OverridesError, match=message):
        checks.parse_user_overrides(text)


# --- pinned notary roots (pinnedTrustRoots)

KEY_ID = "a80c7451a0746cef8557046aff2c5e81136fa94f6f419b65ca8bb8930e5f0944"


def root_certificate() -> str:
    return TestCA.create("registry.example.com/app").cert_pem.decode()


def test_good_pins_have_no_problem() -> None:
    pins = [
        {"server": "https://notary.example.com:4443", "keyID": KEY_ID},
        {"server": "https://notary.example.com:4443", "keyID": KEY_ID.upper()},
        {"server": "https://[fd00::5]:4443", "certificate": root_certificate()},
    ]
    assert checks.pinned_trust_root_problems(pins) == []
    assert checks.pinned_trust_root_problems(None) == []
    assert checks.user_override_problems({"pinnedTrustRoots": pins}) == []


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ({"server": "https://n.example", "keyID": "ab"}, "is not a notary key ID (64 hex"),
        ({"server": "https://n.example", "keyID": 5}, "trust-state show` (root_keyids)"),
        ({"server": "http://n.example", "keyID": KEY_ID}, "[0].server 'http://n.example' is not"),
        ({"server": "https://n.example=x", "keyID": KEY_ID}, "[0].server must not hold '='"),
        ({"keyID": KEY_ID}, "[0] needs a server"),
        ({"server": "https://n.example"}, "[0] needs a keyID or a certificate"),
        (
            {"server": "https://n.example", "keyID": KEY_ID, "certificate": "x"},
            "gives both keyID and certificate",
        ),
        ({"server": "https://n.example", "keyId": KEY_ID}, "[0].keyId is not a field of a pin"),
        ({"server": "https://n.example", "certificate": "MIIB"}, "holds no PEM certificate"),
        (
            {
                "server": "https://n.example",
                "certificate": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            },
            "holds a PRIVATE KEY block",
        ),
        (
            {
                "server": "https://n.example",
                "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            },
            "is not a valid X.509 certificate",
        ),
        ("https://n.example=" + KEY_ID, "must be {server, keyID} or {server, certificate}"),
    ],
)
def test_a_malformed_pin_is_refused_saying_what_to_give(pin: object, message: str) -> None:
    problems = checks.pinned_trust_root_problems([pin])
    assert any(message in problem for problem in problems), problems


def test_pins_must_be_a_list() -> None:
    assert checks.user_override_problems({"pinnedTrustRoots": {"server": "x"}}) == [
        "pinnedTrustRoots must be a list of {server, keyID} or {server, certificate}, not dict"
    ]
