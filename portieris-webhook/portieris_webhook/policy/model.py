"""Policy objects of group portieris.cloud.ibm.com/v1 turned into typed, validated policies.

Parsing is strict at every level: an unknown field (a typo such as `enable`
or `requirement`), a field IBM Portieris defines but this webhook does not
implement (`vulnerability`), an unknown requirement or identity type, a field
of the wrong type or a missing required field is an InvalidPolicy that names
the object and the field. A policy we only half understand must not be
enforced as if we understood it: dropping `requirement:` would turn a rule
into allow-everything. The images an invalid policy could govern are denied.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.patterns import Pattern, split_pattern
from portieris_webhook.policy.reader import Fields, Reader
from portieris_webhook.policy.sigstore_part import FIELDS as SIGSTORE_FIELDS
from portieris_webhook.policy.sigstore_part import SigstorePolicy, parse_sigstore

GROUP = "portieris.cloud.ibm.com"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
IMAGE_POLICY = "ImagePolicy"
CLUSTER_IMAGE_POLICY = "ClusterImagePolicy"
POLICY_KINDS = (IMAGE_POLICY, CLUSTER_IMAGE_POLICY)

SIGNED_BY = "signedBy"
INSECURE_ACCEPT_ANYTHING = "insecureAcceptAnything"
REJECT = "reject"
REQUIREMENT_TYPES = (SIGNED_BY, INSECURE_ACCEPT_ANYTHING, REJECT)

MATCH_REPO_DIGEST_OR_EXACT = "matchRepoDigestOrExact"
IDENTITY_TYPES = (
    "matchExact",
    MATCH_REPO_DIGEST_OR_EXACT,
    "matchRepository",
    "matchExactReference",
    "matchExactRepository",
    "remapIdentity",
)


VULNERABILITY_UNSUPPORTED = (
    "not implemented by this webhook (IBM Portieris' Vulnerability Advisor check for "
    "IBM Cloud Container Registry); remove it to enforce the rest of the policy"
)

# Every level of the IBM Portieris portieris.cloud.ibm.com/v1 schema, by where it sits.
FIELDS: Mapping[str, Fields] = {
    "object": Fields(frozenset({"apiVersion", "kind", "metadata", "spec"})),
    "spec": Fields(frozenset({"repositories"})),
    "repositories[]": Fields(frozenset({"name", "policy"})),
    "policy": Fields(
        frozenset({"trust", "simple", "sigstore", "mutateImage"}),
        {"vulnerability": VULNERABILITY_UNSUPPORTED},
    ),
    "trust": Fields(frozenset({"enabled", "trustServer", "signerSecrets"})),
    "signerSecrets[]": Fields(frozenset({"name"})),
    "simple": Fields(frozenset({"requirements", "storeURL", "storeSecret"})),
    "requirements[]": Fields(
        frozenset({"type", "keySecret", "keySecretNamespace", "signedIdentity"})
    ),
    "signedIdentity": Fields(
        frozenset({"type", "dockerReference", "dockerRepository", "prefix", "signedPrefix"})
    ),
    **SIGSTORE_FIELDS,
}


@dataclass(frozen=True)
class TrustPolicy:
    """Notary v1 (Docker Content Trust) settings of one policy."""

    enabled: bool = False
    trust_server: str | None = None
    signer_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignedIdentity:
    """Which identity a simple signature must claim (containers-policy.json semantics)."""

    type: str = MATCH_REPO_DIGEST_OR_EXACT
    docker_reference: str | None = None
    docker_repository: str | None = None
    prefix: str | None = None
    signed_prefix: str | None = None


@dataclass(frozen=True)
class Requirement:
    """One simple-signing requirement; all of a policy's requirements must hold."""

    type: str
    key_secret: str | None = None
    key_secret_namespace: str | None = None
    signed_identity: SignedIdentity = field(default_factory=SignedIdentity)


@dataclass(frozen=True)
class SimplePolicy:
    requirements: tuple[Requirement, ...] = ()
    store_url: str | None = None
    store_secret: str | None = None


@dataclass(frozen=True)
class Policy:
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    simple: SimplePolicy = field(default_factory=SimplePolicy)
    sigstore: SigstorePolicy = field(default_factory=SigstorePolicy)
    mutate_image: bool = True

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the policy's content: equal for equal policies, whatever the
        object or rule holding them is called. Computed once per parsed policy (policies are
        immutable), since every admission's decision-cache key names it."""
        document = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True)
class RepositoryRule:
    parts: Pattern
    policy: Policy

    @property
    def pattern(self) -> str:
        """The pattern as written in `spec.repositories[].name`."""
        return self.parts.text


@dataclass(frozen=True)
class PolicyObject:
    """One ImagePolicy (namespaced) or ClusterImagePolicy, validated."""

    kind: str
    name: str
    namespace: str | None
    repositories: tuple[RepositoryRule, ...]

    @property
    def display_name(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class InvalidPolicyRecord:
    """A policy object that could not be parsed: it denies every image it could govern."""

    kind: str
    namespace: str | None
    name: str
    error: str


def parse_policy_object(obj: Mapping[str, Any]) -> PolicyObject:
    """Turn one ImagePolicy/ClusterImagePolicy object into a PolicyObject."""
    if not isinstance(obj, Mapping):
        raise InvalidPolicy("policy object must be a mapping")
    kind = obj.get("kind")
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    where = f"{kind} {namespace + '/' if namespace else ''}{name or '<unnamed>'}"
    if kind not in POLICY_KINDS:
        raise InvalidPolicy(f"{where}: kind must be one of {', '.join(POLICY_KINDS)}")
    if obj.get("apiVersion") != API_VERSION:
        raise InvalidPolicy(
            f"{where}: apiVersion must be {API_VERSION}, not {obj.get('apiVersion')!r}"
        )
    if not isinstance(name, str) or not name:
        raise InvalidPolicy(f"{where}: metadata.name is required")
    if kind == IMAGE_POLICY and not namespace:
        raise InvalidPolicy(f"{where}: metadata.namespace is required for an ImagePolicy")
    spec = Reader(where, "", "object", obj, FIELDS).child("spec")
    rules = tuple(_parse_rule(item) for item in spec.items("repositories"))
    return PolicyObject(
        kind=kind,
        name=name,
        namespace=namespace if kind == IMAGE_POLICY else None,
        repositories=rules,
    )


def _parse_rule(item: Reader) -> RepositoryRule:
    pattern = item.string("name", required=True)
    assert pattern is not None
    try:
        parts = split_pattern(pattern)
    except ValueError as exc:
        raise item.fail("name", f"{exc}: {pattern!r}") from None
    return RepositoryRule(parts=parts, policy=parse_policy(item.child("policy")))


def parse_policy(policy: Reader) -> Policy:
    trust = policy.child("trust")
    signers = tuple(
        s
        for s in (entry.string("name", required=True) for entry in trust.items("signerSecrets"))
        if s
    )
    simple = policy.child("simple")
    requirements = tuple(_parse_requirement(r) for r in simple.items("requirements"))
    return Policy(
        trust=TrustPolicy(
            enabled=trust.boolean("enabled", False),
            trust_server=trust.string("trustServer"),
            signer_secrets=signers,
        ),
        simple=SimplePolicy(
            requirements=requirements,
            store_url=simple.string("storeURL"),
            store_secret=simple.string("storeSecret"),
        ),
        sigstore=parse_sigstore(policy.child("sigstore")),
        mutate_image=policy.boolean("mutateImage", True),
    )


def _parse_requirement(item: Reader) -> Requirement:
    kind = item.string("type", required=True)
    if kind not in REQUIREMENT_TYPES:
        raise item.fail("type", f"must be one of {', '.join(REQUIREMENT_TYPES)}, not {kind!r}")
    key_secret = item.string("keySecret")
    if kind == SIGNED_BY and not key_secret:
        raise item.fail("keySecret", "is required for a signedBy requirement")
    return Requirement(
        type=kind,
        key_secret=key_secret,
        key_secret_namespace=item.string("keySecretNamespace"),
        signed_identity=_parse_identity(item.child("signedIdentity")),
    )


def _parse_identity(item: Reader) -> SignedIdentity:
    kind = item.string("type") or MATCH_REPO_DIGEST_OR_EXACT
    if kind not in IDENTITY_TYPES:
        raise item.fail("type", f"must be one of {', '.join(IDENTITY_TYPES)}, not {kind!r}")
    identity = SignedIdentity(
        type=kind,
        docker_reference=item.string("dockerReference"),
        docker_repository=item.string("dockerRepository"),
        prefix=item.string("prefix"),
        signed_prefix=item.string("signedPrefix"),
    )
    if kind == "matchExactReference" and not identity.docker_reference:
        raise item.fail("dockerReference", "is required for matchExactReference")
    if kind == "matchExactRepository" and not identity.docker_repository:
        raise item.fail("dockerRepository", "is required for matchExactRepository")
    if kind == "remapIdentity" and not (identity.prefix and identity.signed_prefix):
        raise item.fail("prefix", "and signedPrefix are required for remapIdentity")
    return identity
