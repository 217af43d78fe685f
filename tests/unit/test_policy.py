"""Policy objects: strict parsing, and matching exactly as Portieris does (but safer)."""

import pytest

from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.matching import NoPolicy, best_match, find_policy, pattern_matches
from portieris_webhook.policy.model import parse_policy_object

from tests.builders import ACCEPT, REJECT, cluster_policy, image_policy

FULL = {
    "trust": {
        "enabled": True,
        "trustServer": "https://notary.example:4443",
        "signerSecrets": [{"name": "alice"}, {"name": "bob"}],
    },
    "simple": {
        "requirements": [
            {
                "type": "signedBy",
                "keySecret": "k1",
                "keySecretNamespace": "keys",
                "signedIdentity": {
                    "type": "remapIdentity",
                    "prefix": "a.io",
                    "signedPrefix": "b.io",
                },
            },
            {"type": "insecureAcceptAnything"},
        ],
        "storeURL": "https://sigstore.example/sigs",
        "storeSecret": "store-creds",
    },
    "mutateImage": False,
}


def test_every_field_is_parsed():
    obj = parse_policy_object(image_policy("p", "team", ("reg.io/*", FULL)))
    assert (obj.kind, obj.namespace, obj.name) == ("ImagePolicy", "team", "p")
    rule = obj.repositories[0]
    assert rule.pattern == "reg.io/*"
    policy = rule.policy
    assert policy.trust.enabled and policy.trust.trust_server == "https://notary.example:4443"
    assert policy.trust.signer_secrets == ("alice", "bob")
    first, second = policy.simple.requirements
    assert (first.type, first.key_secret, first.key_secret_namespace) == ("signedBy", "k1", "keys")
    assert (
        first.signed_identity.type,
        first.signed_identity.prefix,
        first.signed_identity.signed_prefix,
    ) == ("remapIdentity", "a.io", "b.io")
    assert second.type == "insecureAcceptAnything"
    assert second.signed_identity.type == "matchRepoDigestOrExact"
    assert policy.simple.store_url == "https://sigstore.example/sigs"
    assert policy.simple.store_secret == "store-creds"
    assert policy.mutate_image is False
    assert not policy.is_empty


def test_defaults_and_empty_policy():
    policy = parse_policy_object(cluster_policy("c", ("*", {}))).repositories[0].policy
    assert policy.is_empty and policy.mutate_image and not policy.trust.enabled
    assert parse_policy_object(cluster_policy("c", ("*", {}))).namespace is None


def _with(policy_fragment):
    return cluster_policy("bad", ("reg.io/*", policy_fragment))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({**_with({}), "apiVersion": "portieris.cloud.ibm.com/v2"}, "apiVersion must be"),
        ({**_with({}), "kind": "Policy"}, "kind must be one of"),
        ({**_with({}), "metadata": {}}, "metadata.name is required"),
        (
            {**image_policy("p", "ns", ("a", {})), "metadata": {"name": "p"}},
            "namespace is required",
        ),
        (
            _with({"trust": {"enabled": "yes"}}),
            r"spec.repositories\[0\].policy.trust.enabled must be true or false",
        ),
        (_with({"trust": {"trustServer": 5}}), "trustServer must be a string"),
        (_with({"trust": {"signerSecrets": [{}]}}), r"signerSecrets\[0\].name is required"),
        (_with({"simple": {"requirements": [{"type": "signedBy"}]}}), "keySecret is required"),
        (_with({"simple": {"requirements": [{"type": "trustMe"}]}}), "type must be one of"),
        (_with({"simple": {"requirements": {"type": "reject"}}}), "requirements must be a list"),
        (
            _with(
                {
                    "simple": {
                        "requirements": [
                            {
                                "type": "signedBy",
                                "keySecret": "k",
                                "signedIdentity": {"type": "matchAnything"},
                            }
                        ]
                    }
                }
            ),
            "signedIdentity.type must be one of",
        ),
        (
            _with(
                {
                    "simple": {
                        "requirements": [
                            {
                                "type": "signedBy",
                                "keySecret": "k",
                                "signedIdentity": {"type": "remapIdentity"},
                            }
                        ]
                    }
                }
            ),
            "signedPrefix are required",
        ),
        (
            _with(
                {
                    "simple": {
                        "requirements": [
                            {
                                "type": "signedBy",
                                "keySecret": "k",
                                "signedIdentity": {"type": "matchExactReference"},
                            }
                        ]
                    }
                }
            ),
            "dockerReference is required",
        ),
        (
            _with(
                {
                    "simple": {
                        "requirements": [
                            {
                                "type": "signedBy",
                                "keySecret": "k",
                                "signedIdentity": {"type": "matchExactRepository"},
                            }
                        ]
                    }
                }
            ),
            "dockerRepository is required",
        ),
        (_with({"mutateImage": "false"}), "mutateImage must be true or false"),
        (cluster_policy("bad", ("", {})), r"repositories\[0\].name is required"),
        (cluster_policy("bad", ("reg.io/a b", {})), "must not contain whitespace"),
        ({**_with({}), "spec": {"repositories": "x"}}, "repositories must be a list"),
        (
            {**_with({}), "spec": {"repositories": [{"name": "x", "policy": []}]}},
            "policy must be an object",
        ),
    ],
)
def test_invalid_policies_name_object_and_field(obj, message):
    with pytest.raises(InvalidPolicy, match=message) as info:
        parse_policy_object(obj)
    assert str(info.value).startswith(obj.get("kind", ""))


@pytest.mark.parametrize(
    ("pattern", "image", "matches"),
    [
        ("*", "nginx", True),
        ("*", "evil.com/anything/at/all:1", True),
        ("reg.io/app", "reg.io/app", True),
        ("reg.io/app", "reg.io/app:1.0", True),
        ("reg.io/app", "reg.io/app@sha256:" + "a" * 64, True),
        ("reg.io/app", "reg.io/app2:1.0", False),
        ("reg.io/app:1.0", "reg.io/app:2.0", False),
        ("reg.io/app:1.*", "reg.io/app:1.5", True),
        ("reg.io/app:*", "reg.io/app", False),
        ("reg.io/team/*", "reg.io/team/app:1", True),
        ("reg.io/team/*", "reg.io/team/sub/app:1", True),
        ("reg.io/team/*", "reg.io/other/app:1", False),
        ("localhost:5000/a", "localhost:5000/a:t", True),
        ("localhost:5000/*", "localhost:5001/a", False),
        ("*.trusted.com/org/*", "a.trusted.com/org/app", True),
        ("*.trusted.com/org/*", "a.b.trusted.com/org/app:2", True),
        # The host wildcard is anchored to the host part: these are bypass attempts.
        ("*.trusted.com/org/*", "attacker.com/x.trusted.com/org/evil", False),
        ("*.trusted.com/org/*", "trusted.com.attacker.com/org/evil", False),
        ("*trusted.com/*", "attacker.com/trusted.com/evil", False),
        ("reg.io*/*", "reg.io.evil.com/app", True),
        ("docker.io/library/*", "nginx", False),
        # Host names are case-insensitive: an upper-case spelling must not dodge a policy.
        ("prod.trusted.com/*", "PROD.trusted.com/app:1", True),
        ("Prod.Trusted.com/app", "prod.trusted.COM/app:1", True),
        ("reg.io/team/*", "reg.io/TEAM/app", False),
        ("nginx", "nginx:latest", True),
    ],
)
def test_pattern_matching(pattern, image, matches):
    assert pattern_matches(pattern, image) is matches


def _objects(*rules):
    return [parse_policy_object(cluster_policy("c", *rules))]


def test_most_specific_pattern_wins():
    objects = _objects(("*", REJECT), ("reg.io/*", ACCEPT), ("reg.io/team/*", {}))
    assert best_match(objects, "reg.io/team/app:1").pattern == "reg.io/team/*"
    assert best_match(objects, "reg.io/other:1").pattern == "reg.io/*"
    assert best_match(objects, "quay.io/x").pattern == "*"


def test_upper_case_host_gets_the_host_specific_policy_not_a_wildcard():
    objects = _objects(("prod.trusted.com/*", REJECT), ("*.trusted.com/*", {}))
    assert best_match(objects, "PROD.trusted.com/app:evil").pattern == "prod.trusted.com/*"


def test_exact_pattern_wins_over_longer_wildcard():
    objects = _objects(("reg.io/app:1.0-*", REJECT), ("reg.io/app", ACCEPT))
    assert best_match(objects, "reg.io/app:1.0-rc1").pattern == "reg.io/app"


def test_specificity_counts_length_minus_wildcards():
    objects = _objects(("reg.io/a*", REJECT), ("reg.io/*b", ACCEPT), ("reg.io/**", {}))
    # "reg.io/a*" and "reg.io/*b" both score 8; the first one listed wins the tie.
    assert best_match(objects, "reg.io/ab").pattern == "reg.io/a*"


def test_best_match_across_objects_is_deterministic():
    first = parse_policy_object(cluster_policy("a-first", ("reg.io/*", ACCEPT)))
    second = parse_policy_object(cluster_policy("b-second", ("reg.io/*", REJECT)))
    assert best_match([second, first], "reg.io/x").source.name == "a-first"


def test_namespace_policies_replace_cluster_policies():
    cluster = [parse_policy_object(cluster_policy("c", ("*", ACCEPT)))]
    namespaced = [parse_policy_object(image_policy("p", "team", ("reg.io/*", ACCEPT)))]
    found = find_policy("quay.io/x", "team", namespaced, cluster)
    assert isinstance(found, NoPolicy) and found.searched == "ImagePolicy"
    assert "no ImagePolicy in namespace 'team'" in found.describe()
    assert find_policy("quay.io/x", "other", namespaced, cluster).source.name == "c"


def test_no_cluster_policy_match_says_so():
    cluster = [parse_policy_object(cluster_policy("c", ("reg.io/*", ACCEPT)))]
    found = find_policy("quay.io/x", "team", [], cluster)
    assert isinstance(found, NoPolicy) and "no ClusterImagePolicy matches" in found.describe()


def test_image_policies_of_other_namespaces_are_ignored():
    namespaced = [parse_policy_object(image_policy("p", "team", ("*", ACCEPT)))]
    found = find_policy("quay.io/x", "other", namespaced, [])
    assert isinstance(found, NoPolicy) and found.searched == "ClusterImagePolicy"
