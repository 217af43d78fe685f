"""find_policy decides in one place: a match, no policy, or invalid policies in scope."""

from __future__ import annotations

import pytest

from portieris_webhook.policy.matching import InvalidPolicies, NoPolicy, PolicyMatch, find_policy
from portieris_webhook.policy.model import InvalidPolicyRecord, parse_policy_object

from tests.builders import ACCEPT, cluster_policy, image_policy

TEAM_POLICY = parse_policy_object(image_policy("p", "team", ("*", ACCEPT)))
CLUSTER_POLICY = parse_policy_object(cluster_policy("c", ("*", ACCEPT)))
BROKEN_IN_TEAM = InvalidPolicyRecord("ImagePolicy", "team", "bad", "ImagePolicy team/bad: oops")
BROKEN_ELSEWHERE = InvalidPolicyRecord("ImagePolicy", "other", "bad", "ImagePolicy other/bad: x")
BROKEN_CLUSTER = InvalidPolicyRecord("ClusterImagePolicy", None, "bad", "ClusterImagePolicy bad: y")


def select(image_policies=(), invalid=(), namespace="team"):
    return find_policy("reg.io/app:1", namespace, image_policies, [CLUSTER_POLICY], invalid)


@pytest.mark.parametrize(
    ("image_policies", "invalid", "denied_for"),
    [
        # An invalid ImagePolicy of the namespace denies even where a valid one matches ...
        ([TEAM_POLICY], [BROKEN_IN_TEAM], [BROKEN_IN_TEAM]),
        # ... and, being an ImagePolicy, takes the namespace out of the ClusterImagePolicies'
        # reach: their own invalid objects are not what denies here.
        ([], [BROKEN_IN_TEAM, BROKEN_CLUSTER], [BROKEN_IN_TEAM]),
        # An invalid ClusterImagePolicy denies where the namespace has no ImagePolicy.
        ([], [BROKEN_CLUSTER], [BROKEN_CLUSTER]),
        # Every invalid object in scope is named, in the order given.
        ([], [BROKEN_CLUSTER, BROKEN_ELSEWHERE, BROKEN_CLUSTER], [BROKEN_CLUSTER, BROKEN_CLUSTER]),
    ],
)
def test_an_invalid_policy_in_scope_denies_naming_every_one(image_policies, invalid, denied_for):
    found = select(image_policies, invalid)
    assert found == InvalidPolicies(tuple(denied_for))
    assert found.describe() == (
        "a policy that applies here is invalid, so nothing is admitted until it is fixed: "
        + "; ".join(r.error for r in denied_for)
    )


@pytest.mark.parametrize(
    ("image_policies", "invalid", "chosen"),
    [
        # The ClusterImagePolicies do not apply while the namespace has a valid ImagePolicy.
        ([TEAM_POLICY], [BROKEN_CLUSTER], "ImagePolicy team/p"),
        # Another namespace's objects, valid or not, never count here.
        ([], [BROKEN_ELSEWHERE], "ClusterImagePolicy c"),
        (
            [parse_policy_object(image_policy("p", "other", ("*", ACCEPT)))],
            [],
            "ClusterImagePolicy c",
        ),
    ],
)
def test_an_invalid_policy_out_of_scope_changes_nothing(image_policies, invalid, chosen):
    found = select(image_policies, invalid)
    assert isinstance(found, PolicyMatch) and found.source.display_name == chosen


def test_no_invalid_policy_and_no_match_is_no_policy():
    found = find_policy("reg.io/app:1", "team", [], [], [BROKEN_ELSEWHERE])
    assert found == NoPolicy("ClusterImagePolicy", "team")
