"""Differential test: our simple-signing verdict equals skopeo's for the same policy.

Images in the real TLS registry are signed with `skopeo --sign-by` into the
lookaside store (or given hand-made signatures); for each image and each set of
requirements, `skopeo --policy policy.json copy` is the oracle and the Enforcer
(real SimpleVerifier, in-memory cluster state) must say the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.builders import memory_state
from tests.fixtures.gpg import GpgHome, GpgKey, SimpleSigner, policy_for, signed_by_requirement
from tests.fixtures.plugin import ImageFactory
from tests.fixtures.registry import PushedImage, Registry
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    decide_image,
    policy_under_test,
    secret,
    signed_by,
    simple_enforcer,
)

pytestmark = pytest.mark.integration
KEYS_NAMESPACE = "signing-keys"


@dataclass(frozen=True)
class Keys:
    a: GpgKey
    b: GpgKey
    subkeyed: GpgKey
    """A key whose signatures are made by a signing subkey."""


@dataclass(frozen=True)
class Case:
    ref: str
    """The image reference both sides check."""
    image: PushedImage


def _key_with_signing_subkey(home: GpgHome) -> GpgKey:
    key = home.new_key("matrix subkeyed")
    home.gpg(
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-add-key",
        key.fingerprint,
        "rsa2048",
        "sign",
        "never",
    )
    return GpgKey(key.name, key.fingerprint, home.export_public(key.fingerprint))


@pytest.fixture(scope="module")
def keys(gpg_home: GpgHome, gpg_key: Callable[[str], GpgKey]) -> Keys:
    return Keys(gpg_key("matrix-a"), gpg_key("matrix-b"), _key_with_signing_subkey(gpg_home))


@pytest.fixture(scope="module")
def signer(gpg_home, lookaside_store, registry, tmp_path_factory) -> SimpleSigner:
    return SimpleSigner(gpg_home, lookaside_store, registry, tmp_path_factory.mktemp("matrix"))


def other_repository(image: PushedImage) -> str:
    """The identity used for "signed for another repository" (and remapped back by remapIdentity)."""
    return f"{image.host}/other/{image.repo}:{image.tag}"


@pytest.fixture(scope="module")
def cases(registry: Registry, signer: SimpleSigner, keys: Keys) -> dict[str, Case]:
    factory = ImageFactory(registry, "matrix")
    made: dict[str, Case] = {}

    def image(name: str) -> PushedImage:
        return factory("v1", repo=factory.new_repo(name))

    signed = image("signed")
    signer.sign(signed, keys.a.fingerprint)
    made["signed"] = Case(signed.ref, signed)
    made["signed-by-digest"] = Case(signed.digest_ref, signed)

    latest = factory("latest", repo=factory.new_repo("latest"))
    signer.sign(latest, keys.a.fingerprint)
    made["latest-written-without-tag"] = Case(latest.name, latest)

    unsigned = image("unsigned")
    made["unsigned"] = Case(unsigned.ref, unsigned)

    other_key = image("other-key")
    signer.sign(other_key, keys.b.fingerprint)
    made["signed-by-other-key"] = Case(other_key.ref, other_key)

    other_repo = image("other-repo")
    signer.sign_as(other_repo, other_repository(other_repo), keys.a.fingerprint)
    made["signed-for-other-repo"] = Case(other_repo.ref, other_repo)

    retagged = image("retagged")
    signer.sign(retagged, keys.a.fingerprint)
    moved = factory.retag(retagged, "v2")
    made["retagged-after-signing"] = Case(moved.ref, moved)

    twice = image("twice")
    signer.sign(twice, keys.a.fingerprint)
    signer.sign(twice, keys.b.fingerprint)
    made["signed-twice"] = Case(twice.ref, twice)

    by_subkey = image("subkey")
    signer.sign(by_subkey, keys.subkeyed.fingerprint)
    made["signed-by-subkey"] = Case(by_subkey.ref, by_subkey)

    # A good signature of key A, but over another image's digest.
    wrong_digest = image("wrong-digest")
    donor = signer.standalone_sign(signed.manifest, wrong_digest.ref, keys.a.fingerprint)
    signer.store.add(wrong_digest.repo, wrong_digest.digest, donor)
    made["signature-for-other-digest"] = Case(wrong_digest.ref, wrong_digest)
    return made


@dataclass(frozen=True)
class RequirementSet:
    """One requirement set, as our ImagePolicy requirements and as containers-policy.json."""

    ours: Callable[[Case], list[dict[str, Any]]]
    skopeo: Callable[[Case, Keys], list[dict[str, Any]]]


# Portieris spells two identity types differently from containers-policy.json.
CONTAINERS_IDENTITY_TYPES = {
    "matchExactReference": "exactReference",
    "matchExactRepository": "exactRepository",
}


def containers_identity(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    return {**identity, "type": CONTAINERS_IDENTITY_TYPES.get(identity["type"], identity["type"])}


def _one(
    key: str, identity: Callable[[Case], dict[str, Any] | None] = lambda c: None
) -> RequirementSet:
    def ours(case: Case) -> list[dict[str, Any]]:
        extra = {"keySecretNamespace": KEYS_NAMESPACE} if key == "b" else {}
        return [signed_by(f"key-{key}", identity(case), **extra)]

    def skopeo(case: Case, keys: Keys) -> list[dict[str, Any]]:
        armored = {
            "a": keys.a.public_armored,
            "b": keys.b.public_armored,
            "ab": keys.a.public_armored + keys.b.public_armored,
            "subkeyed": keys.subkeyed.public_armored,
        }[key]
        return [signed_by_requirement(armored, containers_identity(identity(case)))]

    return RequirementSet(ours, skopeo)


def _both(first: RequirementSet, second: RequirementSet) -> RequirementSet:
    return RequirementSet(
        lambda c: first.ours(c) + second.ours(c),
        lambda c, k: first.skopeo(c, k) + second.skopeo(c, k),
    )


def _plain(requirement: dict[str, Any]) -> RequirementSet:
    return RequirementSet(lambda c: [dict(requirement)], lambda c, k: [dict(requirement)])


REQUIREMENT_SETS: dict[str, RequirementSet] = {
    "signedBy-a": _one("a"),
    "matchRepoDigestOrExact": _one("a", lambda c: {"type": "matchRepoDigestOrExact"}),
    "matchExact": _one("a", lambda c: {"type": "matchExact"}),
    "matchRepository": _one("a", lambda c: {"type": "matchRepository"}),
    "matchExactReference": _one(
        "a",
        lambda c: {"type": "matchExactReference", "dockerReference": f"{c.image.name}:v1"},
    ),
    "matchExactRepository-own": _one(
        "a", lambda c: {"type": "matchExactRepository", "dockerRepository": c.image.name}
    ),
    "matchExactRepository-other": _one(
        "a",
        lambda c: {
            "type": "matchExactRepository",
            "dockerRepository": f"{c.image.host}/other/{c.image.repo}",
        },
    ),
    "remapIdentity": _one(
        "a",
        lambda c: {
            "type": "remapIdentity",
            "prefix": f"{c.image.host}/tests",
            "signedPrefix": f"{c.image.host}/other/tests",
        },
    ),
    "signedBy-b": _one("b"),
    "signedBy-a-and-b": _both(_one("a"), _one("b")),
    "signedBy-ring-of-a-and-b": _one("ab"),
    "signedBy-subkeyed": _one("subkeyed"),
    "reject": _plain({"type": "reject"}),
    "insecureAcceptAnything": _plain({"type": "insecureAcceptAnything"}),
    "insecureAcceptAnything-and-signedBy-a": _both(
        _plain({"type": "insecureAcceptAnything"}), _one("a")
    ),
}
IMAGE_KINDS = [
    "signed",
    "signed-by-digest",
    "latest-written-without-tag",
    "unsigned",
    "signed-by-other-key",
    "signed-for-other-repo",
    "retagged-after-signing",
    "signed-twice",
    "signed-by-subkey",
    "signature-for-other-digest",
]
MATRIX = [(image, reqs) for image in IMAGE_KINDS for reqs in REQUIREMENT_SETS]


def key_secrets(keys: Keys) -> list[dict[str, Any]]:
    return [
        secret("key-a", {"key": keys.a.public_armored}),
        secret("key-b", {"key": keys.b.public_armored}, namespace=KEYS_NAMESPACE),
        secret("key-ab", {"key": keys.a.public_armored + keys.b.public_armored}),
        secret("key-subkeyed", {"key": keys.subkeyed.public_armored}),
    ]


# Pinned expectations, so that the differential test cannot pass with both sides wrong alike.
EXPECTED_ALLOWED = {
    ("signed", "signedBy-a"),
    ("signed", "matchExact"),
    ("signed", "matchRepository"),
    ("signed-by-digest", "signedBy-a"),
    ("signed-by-digest", "matchRepository"),
    ("signed-for-other-repo", "remapIdentity"),
    ("signed-for-other-repo", "matchExactRepository-other"),
    ("retagged-after-signing", "matchRepository"),
    ("signed-twice", "signedBy-a-and-b"),
    ("unsigned", "insecureAcceptAnything"),
    ("latest-written-without-tag", "signedBy-a"),
}
EXPECTED_DENIED = {
    ("unsigned", "signedBy-a"),
    ("signed", "reject"),
    ("signed", "signedBy-b"),
    ("signed-by-digest", "matchExact"),
    ("signed-for-other-repo", "signedBy-a"),
    ("retagged-after-signing", "signedBy-a"),
    ("signed-by-subkey", "signedBy-subkeyed"),
    ("signature-for-other-digest", "signedBy-a"),
}


@pytest.mark.parametrize(("image_kind", "requirement_set"), MATRIX)
async def test_verdict_matches_skopeo(
    image_kind: str,
    requirement_set: str,
    cases: dict[str, Case],
    keys: Keys,
    signer: SimpleSigner,
    registry: Registry,
    lookaside_store,
) -> None:
    case = cases[image_kind]
    reqs = REQUIREMENT_SETS[requirement_set]
    skopeo_says = signer.verdict(policy_for(registry.host, reqs.skopeo(case, keys)), case.ref)
    policy = {"simple": {"requirements": reqs.ours(case), "storeURL": lookaside_store.url}}
    state = memory_state(policy_under_test(policy), *key_secrets(keys))

    async with simple_enforcer(state, registry.ca_file) as enforcer:
        decision = await decide_image(enforcer, case.ref, NAMESPACE)

    assert decision.allowed == skopeo_says, decision.reasons
    if (image_kind, requirement_set) in EXPECTED_ALLOWED | EXPECTED_DENIED:
        assert skopeo_says == ((image_kind, requirement_set) in EXPECTED_ALLOWED)
    if decision.allowed and any(r["type"] == "signedBy" for r in reqs.ours(case)):
        assert decision.digest == case.image.digest
        assert decision.patched_image == f"{case.image.name}@{case.image.digest}"
