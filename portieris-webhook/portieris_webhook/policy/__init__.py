"""ImagePolicy / ClusterImagePolicy: typed model, parsing and matching."""

from portieris_webhook.policy.matching import PolicyMatch, find_policy
from portieris_webhook.policy.model import (
    GROUP,
    Policy,
    PolicyObject,
    Requirement,
    SignedIdentity,
    SimplePolicy,
    TrustPolicy,
    parse_policy_object,
)

__all__ = [
    "GROUP",
    "Policy",
    "PolicyMatch",
    "PolicyObject",
    "Requirement",
    "SignedIdentity",
    "SimplePolicy",
    "TrustPolicy",
    "find_policy",
    "parse_policy_object",
]
