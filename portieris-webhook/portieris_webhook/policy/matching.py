"""Which policy applies to an image (pure logic, Portieris-compatible).

Rules:
- If the namespace has any ImagePolicy, only ImagePolicies apply; otherwise ClusterImagePolicies.
- Patterns match the image as written; `*` matches any run of characters.
- A pattern with no tag or digest also matches the image with any tag or digest.
- The host part of a pattern (before its first `/`) must match the image's host
  part on its own, so `*.trusted.com/org/*` never matches `evil.com/x.trusted.com/org/a`;
  host parts compare case-insensitively, so `PROD.trusted.com/app` is `prod.trusted.com/app`.
- An exact (wildcard-free) pattern wins outright; otherwise the most specific
  pattern wins (length minus wildcards); ties go to the first object by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from portieris_webhook.policy.model import (
    CLUSTER_IMAGE_POLICY,
    IMAGE_POLICY,
    Policy,
    PolicyObject,
)


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

    def describe(self) -> str:
        if self.searched == IMAGE_POLICY:
            return (
                f"no ImagePolicy in namespace {self.namespace!r} matches the image "
                "(ClusterImagePolicies are ignored while the namespace has ImagePolicies)"
            )
        return (
            f"no ClusterImagePolicy matches the image and namespace {self.namespace!r} "
            "has no ImagePolicy"
        )


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    )


def _split_host(text: str) -> tuple[str, str | None]:
    host, slash, rest = text.partition("/")
    return (host, rest) if slash else (text, None)


def _glob_match(pattern: str, text: str) -> bool:
    p_host, p_rest = _split_host(pattern)
    if p_rest is None:
        return _glob(pattern).fullmatch(text) is not None
    t_host, t_rest = _split_host(text)
    if t_rest is None:
        return False
    # Host names are case-insensitive (the registry and the kubelet treat them so); paths are not.
    host_matches = _glob(p_host.lower()).fullmatch(t_host.lower()) is not None
    return host_matches and _glob(p_rest).fullmatch(t_rest) is not None


def _has_tag_or_digest(pattern: str) -> bool:
    last = pattern.rsplit("/", 1)[-1]
    return ":" in last or "@" in last


def _strip_tag_and_digest(image: str) -> str:
    name = image.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}{slash}{last}"


def pattern_matches(pattern: str, image: str) -> bool:
    """True if `pattern` (as written in a policy) matches `image` (as written in the pod)."""
    if _glob_match(pattern, image):
        return True
    return not _has_tag_or_digest(pattern) and _glob_match(pattern, _strip_tag_and_digest(image))


def _rank(pattern: str) -> tuple[bool, int]:
    wildcards = pattern.count("*")
    return (wildcards == 0, len(pattern) - wildcards)


def best_match(objects: Iterable[PolicyObject], image: str) -> PolicyMatch | None:
    best: PolicyMatch | None = None
    best_rank: tuple[bool, int] | None = None
    for obj in sorted(objects, key=lambda o: (o.namespace or "", o.name)):
        for rule in obj.repositories:
            if not pattern_matches(rule.pattern, image):
                continue
            rank = _rank(rule.pattern)
            if best_rank is None or rank > best_rank:
                best, best_rank = PolicyMatch(obj, rule.pattern, rule.policy), rank
    return best


def find_policy(
    image: str,
    namespace: str,
    image_policies: Iterable[PolicyObject],
    cluster_policies: Iterable[PolicyObject],
) -> PolicyMatch | NoPolicy:
    """Apply the namespace-then-cluster precedence and pick the best pattern for `image`."""
    namespaced = [p for p in image_policies if p.namespace == namespace]
    if namespaced:
        return best_match(namespaced, image) or NoPolicy(IMAGE_POLICY, namespace)
    return best_match(cluster_policies, image) or NoPolicy(CLUSTER_IMAGE_POLICY, namespace)
