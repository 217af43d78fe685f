"""The chart's cluster-wide Sigstore trust roots (`sigstore.trustRoots`) and the policies the
documentation shows.

The trust roots become one Secret in the release namespace, which policies name with
`secretRef: {namespace: <release namespace>, name: portieris-sigstore-trust-roots, key: <entry>}`.
The webhook's own loader (sigstore/trust_material.py) reads the rendered Secret here, so the
chart and the verifier cannot drift apart on its name, namespace or encoding.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from portieris_webhook.cluster.state import MemoryState
from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.model import parse_policy_object
from portieris_webhook.sigstore.trust_material import TrustLoader

from .test_chart import (
    CHART,
    GROUP,
    NS,
    REPO_ROOT,
    crd_validator,
    kinds,
    one,
    render,
    render_error,
    run_helm,
)
from tests.fixtures.pki import TestCA

SECRET = "portieris-sigstore-trust-roots"


def public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def roots() -> dict[str, str]:
    fulcio = TestCA.create("Example Fulcio root")
    tsa = TestCA.create("Example timestamp authority")
    return {
        "rekor": public_key_pem(),
        "release.pub": public_key_pem(),
        "fulcio": fulcio.cert_pem.decode(),
        "tsa": tsa.cert_pem.decode(),
    }


def trust_roots_secret(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Secret", SECRET)


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_no_trust_roots_no_secret() -> None:
    assert not [s for s in kinds(render(), "Secret") if s["metadata"]["name"] == SECRET]
    assert not [
        s
        for s in kinds(render({"sigstore": {"trustRoots": {}}}), "Secret")
        if s["metadata"]["name"] == SECRET
    ]


def test_trust_roots_become_one_secret_in_the_release_namespace(roots: dict[str, str]) -> None:
    docs = render({"sigstore": {"trustRoots": roots}}, namespace="ibm-system")
    secret = trust_roots_secret(docs)
    assert secret["metadata"]["namespace"] == "ibm-system"
    assert secret["type"] == "Opaque"
    assert decoded(secret) == roots  # byte for byte, final newlines included
    assert secret["metadata"]["labels"]["app.kubernetes.io/name"] == "portieris"


def test_the_webhook_reads_the_rendered_roots_as_a_policy_names_them(
    roots: dict[str, str],
) -> None:
    """A ClusterImagePolicy naming the entries, and the webhook's loader reading them from the
    Secret the chart rendered, for a pod in another namespace."""
    docs = render({"sigstore": {"trustRoots": roots}})

    def ref(entry: str) -> dict[str, Any]:
        return {"secretRef": {"namespace": NS, "name": SECRET, "key": entry}}

    policy = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "cosign"},
        "spec": {
            "repositories": [
                {
                    "name": "registry.example.com/team-a/*",
                    "policy": {
                        "sigstore": {
                            "ctlog": {"publicKey": ref("rekor")},
                            "rfc3161timestamp": {"certChain": ref("tsa")},
                            "authorities": [
                                {"name": "release key", "key": ref("release.pub")},
                                {
                                    "name": "pipeline",
                                    "keyless": {
                                        "ca-cert": ref("fulcio"),
                                        "identities": [
                                            {
                                                "issuer": "https://dex.example.com",
                                                "subject": "release@example.com",
                                            }
                                        ],
                                    },
                                },
                            ],
                        }
                    },
                }
            ]
        },
    }
    crd_validator("ClusterImagePolicy").validate(policy)
    parsed = parse_policy_object(policy)
    state = MemoryState()
    state.apply("ADDED", trust_roots_secret(docs))
    loader = TrustLoader(state)
    keyed, keyless = parsed.repositories[0].policy.sigstore.authorities
    keyed_trust = loader.load(keyed, "team-a")
    keyless_trust = loader.load(keyless, "team-a")
    assert len(keyed_trust.keys) == 1 and len(keyed_trust.log_keys) == 1
    assert keyless_trust.ca is not None and keyless_trust.timestamps is not None
    assert loader.text(keyed.key.key, "team-a", "key") == roots["release.pub"]  # type: ignore[union-attr]


PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize(
    ("trust_roots", "complaint"),
    [
        ({"rekor": "not PEM"}, "trustRoots"),
        (
            {"signer": "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"},
            "trustRoots",
        ),
        (
            {
                "mixed": PUBLIC_KEY
                + "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"
            },
            "trustRoots",
        ),
        ({"has space": PUBLIC_KEY}, "has space"),  # not a Secret key
        ({"rekor": 42}, "trustRoots"),
        ([PUBLIC_KEY], "trustRoots"),
    ],
)
def test_values_schema_refuses_what_is_not_a_public_trust_root(
    trust_roots: object, complaint: str
) -> None:
    assert complaint in render_error({"sigstore": {"trustRoots": trust_roots}})


def test_values_schema_refuses_unknown_sigstore_values() -> None:
    assert "trustRoot" in render_error({"sigstore": {"trustRoot": {}}})


def test_helm_lint_strict_passes_with_trust_roots(roots: dict[str, str]) -> None:
    proc = run_helm("lint", "--strict", str(CHART), values={"sigstore": {"trustRoots": roots}})
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the policies the documentation shows

DOCUMENTS = [
    REPO_ROOT / "README.md",
    CHART / "README.md",
    REPO_ROOT / "docs" / "policies.md",
    REPO_ROOT / "docs" / "starlingx.md",
]
"""The pages that must show policies; every other page of docs/ is checked for those it shows."""
OTHER_PAGES = sorted(set((REPO_ROOT / "docs").glob("*.md")) - set(DOCUMENTS))

INVALID = re.compile(r"<!-- doc-test: file \S+ invalid -->\n$")
"""The marker of a policy a page shows in order to show it refused (tests/integration/test_docs.py)."""


def documented_policies(path: Path, invalid: bool = False) -> list[dict[str, Any]]:
    """The policy objects of the page's yaml blocks; with `invalid`, those shown refused."""
    found = []
    text = path.read_text()
    for block in re.finditer(r"```yaml\n(.*?)```", text, re.S):
        if bool(INVALID.search(text[: block.start()])) != invalid:
            continue
        for doc in yaml.safe_load_all(block.group(1)):
            if isinstance(doc, dict) and doc.get("apiVersion") == f"{GROUP}/v1":
                found.append(doc)
    return found


@pytest.mark.parametrize(
    "path", DOCUMENTS + OTHER_PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_documented_policies_fit_the_crd_schema_and_the_webhook_parser(path: Path) -> None:
    policies = documented_policies(path)
    assert policies or path in OTHER_PAGES, f"{path} shows no policy"
    for policy in policies:
        crd_validator(policy["kind"]).validate(policy)
        parse_policy_object(policy)
    for policy in documented_policies(path, invalid=True):
        with pytest.raises(InvalidPolicy):
            parse_policy_object(policy)


def test_the_documentation_shows_keyed_and_keyless_sigstore_policies() -> None:
    for path in (
        REPO_ROOT / "docs" / "policies.md",
        CHART / "README.md",
        REPO_ROOT / "docs" / "starlingx.md",
    ):
        authorities = [
            authority
            for policy in documented_policies(path)
            for rule in policy["spec"]["repositories"]
            for authority in rule["policy"].get("sigstore", {}).get("authorities", [])
        ]
        assert any("key" in a for a in authorities), path
        assert any("keyless" in a for a in authorities), path
