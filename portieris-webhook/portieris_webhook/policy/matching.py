"""Which policy applies to an image (pure logic). The selection rule, in full:

Where to look. If the namespace has any ImagePolicy (valid or not), only its
ImagePolicies apply; otherwise the ClusterImagePolicies. If any policy object
of that kind is invalid, every image there is denied before matching. If no
pattern matches, the image is denied, naming the kind of policy that was
searched.

Patterns. A pattern is written like an image reference,
`repository[:tag][@digest]`, and is cut into those parts the same way (the tag
follows the `:` in the last path component). `*` matches any run of
characters, `/` included, but only within the part it is written in:
- the host part of the repository (up to its first `/`) matches the image's
  host part alone, ignoring case when both are hosts (`allowed/*` is a Docker
  Hub namespace, never the host of `Allowed/x`): `*.trusted.com/org/*` never matches
  `attacker.com/x.trusted.com/org/evil`;
- a repository without `/` (`busybox*`) names images written without `/`
  (Docker Hub images such as `busybox:1.36`), never
  `busybox.attacker.com/evil`; only the repository `*` spans every repository
  (`*`, `*:latest`);
- the repository never reaches into the tag: `reg.io/*-prod` matches
  `reg.io/app-prod:1`, not `reg.io/app:x-prod`.

Images. An image is matched as written, read the way the container runtime
pulls it: with neither tag nor digest, `lab/app` is `lab/app:latest`.

A pattern matches an image when its repository matches the image's
repository, its tag (if it has one) the image's tag, and its digest (if it has
one) the image's digest. A pattern without a tag, or with the tag `*`, covers
every tag of the repositories it matches. An image named by digest alone
(`lab/app@sha256:...`, which is also how this webhook pins images) has no tag
to match: only patterns covering every tag match it, so it is governed by the
rules for its whole repository (`lab/app`, `lab/app:*`, `lab/*`, `*`), never
by a rule about some tag names (`lab/app:v*`, `*:latest`). A rule for the
whole repository is therefore never escaped by naming a digest, and a rule
about tag names cannot catch a pinned digest it was not written for.

Which match wins:
1. a pattern without `*` naming the image's repository, tag and digest exactly;
2. otherwise the most specific pattern: its length minus its `*`s, a pattern
   without a tag counted as if it ended in `:*`, so `icr.io/hello/world:v*`
   beats `icr.io/hello/world` for `icr.io/hello/world:v1`;
3. then the pattern with fewer `*`s; then the first object by namespace and
   name, and its first rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from portieris_webhook.errors import InvalidImageReference
from portieris_webhook.images import names_domain, parse_image
from portieris_webhook.policy.model import (
    CLUSTER_IMAGE_POLICY,
    IMAGE_POLICY,
    InvalidPolicyRecord,
    Policy,
    PolicyObject,
)
from portieris_webhook.policy.patterns import WILDCARD, Pattern, glob_match, split_pattern


@dataclass(frozen=True)
class PolicyMatch:
    """The policy chosen for an image and where it came from."""

    source: PolicyObject
    pattern: str
    policy: Policy

    def describe(self) -> str:
        return f"{self.source.display_name} repository {self.pattern!r}"


@dataclass(frozen=True)
class NoPolicy:
    """No pattern matched; `searched` says which kind of policy was looked at."""

    searched: str
    namespace: str
    hint: str = ""

    def describe(self) -> str:
        if self.searched == IMAGE_POLICY:
            return (
                f"no ImagePolicy in namespace {self.namespace!r} matches the image "
                "(ClusterImagePolicies are ignored while the namespace has ImagePolicies)"
                + self.hint
            )
        return (
            f"no ClusterImagePolicy matches the image and namespace {self.namespace!r} "
            "has no ImagePolicy" + self.hint
        )


@dataclass(frozen=True)
class InvalidPolicies:
    """A policy object of the kind that applies is invalid: nothing is admitted there."""

    records: tuple[InvalidPolicyRecord, ...]

    def describe(self) -> str:
        return (
            "a policy that applies here is invalid, so nothing is admitted until it is fixed: "
            + "; ".join(r.error for r in self.records)
        )


PolicySelection = PolicyMatch | NoPolicy | InvalidPolicies
"""What find_policy decides for one image: the policy, or why there is none."""


@dataclass(frozen=True)
class _Image:
    repository: str
    tag: str | None
    """As written; `latest` if neither tag nor digest is; None for a digest without a tag."""
    digest: str | None


def _read_image(image: str) -> _Image | None:
    try:
        ref = parse_image(image)
    except InvalidImageReference:
        return None
    return _Image(ref.written_name, ref.effective_tag, ref.digest)


def _repository_matches(pattern: str, repository: str) -> bool:
    if pattern == WILDCARD:
        return True
    p_host, p_slash, p_path = pattern.partition("/")
    r_host, r_slash, r_path = repository.partition("/")
    if not p_slash:
        return not r_slash and glob_match(pattern, repository)
    if not r_slash:
        return False
    # Host names are case-insensitive (the registry and the kubelet treat them so), paths are
    # not; and only a host is a host: `allowed/*` names a Docker Hub namespace, while the image
    # `Allowed/x` is pulled from a host called `Allowed`, so they compare case-sensitively.
    if names_domain(p_host) and names_domain(r_host):
        p_host, r_host = p_host.lower(), r_host.lower()
    return glob_match(p_host, r_host) and glob_match(p_path, r_path)


def _tag_matches(pattern: Pattern, tag: str | None) -> bool:
    if pattern.tag is None:
        return True
    if tag is None:
        return pattern.covers_every_tag
    return glob_match(pattern.tag, tag)


def _matches(pattern: Pattern, image: _Image) -> bool:
    return (
        _repository_matches(pattern.repository, image.repository)
        and _tag_matches(pattern, image.tag)
        and (
            pattern.digest is None
            or (image.digest is not None and glob_match(pattern.digest, image.digest))
        )
    )


def _rank(pattern: Pattern, image: _Image) -> tuple[bool, int, int]:
    exact = pattern.wildcards == 0 and pattern.tag == image.tag and pattern.digest == image.digest
    return (exact, pattern.specificity, -pattern.wildcards)


def pattern_matches(pattern: str, image: str) -> bool:
    """True if `pattern` (as written in a policy) matches `image` (as written in the pod)."""
    try:
        parts = split_pattern(pattern)
    except ValueError:
        return False
    read = _read_image(image)
    return read is not None and _matches(parts, read)


def best_match(objects: Iterable[PolicyObject], image: str) -> PolicyMatch | None:
    read = _read_image(image)
    if read is None:
        return None
    best: PolicyMatch | None = None
    best_rank: tuple[bool, int, int] | None = None
    for obj in sorted(objects, key=lambda o: (o.namespace or "", o.name)):
        for rule in obj.repositories:
            if not _matches(rule.parts, read):
                continue
            rank = _rank(rule.parts, read)
            if best_rank is None or rank > best_rank:
                best, best_rank = PolicyMatch(obj, rule.pattern, rule.policy), rank
    return best


def find_policy(
    image: str,
    namespace: str,
    image_policies: Iterable[PolicyObject],
    cluster_policies: Iterable[PolicyObject],
    invalid: Iterable[InvalidPolicyRecord] = (),
) -> PolicySelection:
    """The policy for `image` in `namespace`, or why there is none (the rule in full above).

    `image_policies` and `invalid` may hold objects of every namespace: only those of
    `namespace` (and the invalid ClusterImagePolicies) are ever considered.
    """
    namespaced = [p for p in image_policies if p.namespace == namespace]
    broken = [r for r in invalid if r.kind == IMAGE_POLICY and r.namespace == namespace]
    searched, objects = IMAGE_POLICY, namespaced
    if not (namespaced or broken):
        searched, objects = CLUSTER_IMAGE_POLICY, list(cluster_policies)
        broken = [r for r in invalid if r.kind == CLUSTER_IMAGE_POLICY]
    if broken:
        return InvalidPolicies(tuple(broken))
    found = best_match(objects, image)
    if found:
        return found
    read = _read_image(image)
    hint = ""
    if read is not None and read.tag is None:
        hint = (
            "; the image names no tag, only a digest, so only patterns covering every tag "
            f"of its repository (such as {read.repository!r} or '{read.repository}:*') match it"
        )
    return NoPolicy(searched, namespace, hint)
