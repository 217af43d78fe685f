"""Policy objects: strict parsing, and matching exactly as Portieris does (but safer)."""

import pytest

from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.matching import NoPolicy, best_match, find_policy, pattern_matches
from portieris_webhook.policy.model import FIELDS, Policy, parse_policy_object

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


def test_defaults_and_empty_policy():
    policy = parse_policy_object(cluster_policy("c", ("*", {}))).repositories[0].policy
    assert policy == Policy()
    assert policy.mutate_image and not policy.trust.enabled and not policy.simple.requirements
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
        # An image without tag or digest is what the runtime pulls: `:latest`.
        ("reg.io/app:*", "reg.io/app", True),
        ("reg.io/app:latest", "reg.io/app", True),
        ("reg.io/app:1.*", "reg.io/app", False),
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
        # ...but only hosts: `allowed/` is a Docker Hub namespace, `Allowed/` a registry host
        # (found by the fuzz test: `allowed/*` admitted `Allowed/x` from a host of that name).
        ("allowed/*", "Allowed/x", False),
        ("myorg/*", "Myorg/evil:1", False),
        ("team*/*", "Teamx/app", False),
        ("Myhost/*", "myhost/app", False),
        ("Myhost/*", "MYHOST/app", True),
        ("*/app", "Evil/app", True),
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


def test_only_a_pattern_naming_the_image_exactly_wins_outright():
    objects = _objects(("reg.io/app:1.0-*", REJECT), ("reg.io/app:1.0-rc1", ACCEPT))
    assert best_match(objects, "reg.io/app:1.0-rc1").pattern == "reg.io/app:1.0-rc1"


def test_a_tag_pattern_beats_the_bare_repository_pattern():
    # As in IBM Portieris: `reg.io/app` ranks as `reg.io/app:*`, below `reg.io/app:1.0-*`.
    objects = _objects(("reg.io/app:1.0-*", REJECT), ("reg.io/app", ACCEPT))
    assert best_match(objects, "reg.io/app:1.0-rc1").pattern == "reg.io/app:1.0-*"
    assert best_match(objects, "reg.io/app:2.0").pattern == "reg.io/app"


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


# --- strict parsing: a policy we cannot fully honour is invalid, never half-enforced

DIGEST = "sha256:" + "d" * 64


def _rule(policy_fragment):
    return cluster_policy("strict", ("reg.io/*", policy_fragment))


SIGNED_BY = {"type": "signedBy", "keySecret": "k"}


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({**_rule({}), "sepc": {}}, "sepc"),
        ({**_rule({}), "spec": {"repositories": [], "repository": []}}, "spec.repository"),
        (
            {**_rule({}), "spec": {"repositories": [{"name": "x", "polcy": {}}]}},
            r"spec.repositories\[0\].polcy",
        ),
        (_rule({"mutateimage": False}), r"spec.repositories\[0\].policy.mutateimage"),
        (_rule({"trust": {"enable": True}}), r"spec.repositories\[0\].policy.trust.enable"),
        (
            _rule({"trust": {"enabled": True, "trustserver": "x"}}),
            r"spec.repositories\[0\].policy.trust.trustserver",
        ),
        (
            _rule({"trust": {"enabled": True, "signerSecrets": [{"name": "a", "key": "b"}]}}),
            r"spec.repositories\[0\].policy.trust.signerSecrets\[0\].key",
        ),
        (
            _rule({"simple": {"requirement": [{"type": "reject"}]}}),
            r"spec.repositories\[0\].policy.simple.requirement",
        ),
        (
            _rule({"simple": {"requirements": [{**SIGNED_BY, "keysecret": "k2"}]}}),
            r"spec.repositories\[0\].policy.simple.requirements\[0\].keysecret",
        ),
        (
            _rule(
                {
                    "simple": {
                        "requirements": [
                            {**SIGNED_BY, "signedIdentity": {"type": "matchExact", "prefx": "a"}}
                        ]
                    }
                }
            ),
            r"spec.repositories\[0\].policy.simple.requirements\[0\].signedIdentity.prefx",
        ),
    ],
)
def test_an_unknown_field_at_any_level_makes_the_policy_invalid(obj, field):
    with pytest.raises(InvalidPolicy, match=rf"ClusterImagePolicy strict: {field}: unknown field"):
        parse_policy_object(obj)


@pytest.mark.parametrize(
    "vulnerability",
    [{"ICCRVA": {"enabled": True, "account": "123"}}, {"ICCRVA": {"enabled": False}}, {}],
)
def test_ibm_vulnerability_policy_is_named_as_not_implemented(vulnerability):
    # IBM Portieris' Vulnerability Advisor check: known, but this webhook cannot honour it.
    obj = _rule({"trust": {"enabled": True}, "vulnerability": vulnerability})
    with pytest.raises(InvalidPolicy) as info:
        parse_policy_object(obj)
    message = str(info.value)
    assert "spec.repositories[0].policy.vulnerability" in message
    assert "not implemented by this webhook" in message
    assert "unknown field" not in message


def test_the_error_names_the_fields_that_are_known():
    with pytest.raises(InvalidPolicy, match="known fields: enabled, signerSecrets, trustServer"):
        parse_policy_object(_rule({"trust": {"enable": True}}))


def test_every_field_of_ibm_portieris_is_implemented_or_named_unsupported():
    # The field list of IBM Portieris' portieris.cloud.ibm.com/v1 types (pkg/apis/.../types.go).
    ibm = {
        "repositories[]": {"name", "policy"},
        "policy": {"trust", "simple", "vulnerability", "mutateImage"},
        "trust": {"enabled", "signerSecrets", "trustServer"},
        "signerSecrets[]": {"name"},
        "simple": {"requirements", "storeURL", "storeSecret"},
        "requirements[]": {"type", "keySecret", "keySecretNamespace", "signedIdentity"},
        "signedIdentity": {"type", "dockerReference", "dockerRepository", "prefix", "signedPrefix"},
    }
    for level, fields in ibm.items():
        known = FIELDS[level].known | set(FIELDS[level].unsupported)
        assert fields <= known, f"{level}: {fields - known} neither implemented nor refused"
    assert set(FIELDS["policy"].unsupported) == {"vulnerability"}


@pytest.mark.parametrize(
    "pattern", ["reg.io/app:", "reg.io/app@", "reg.io/app@sha256:a@sha256:b", "reg.io/:x"]
)
def test_a_pattern_with_an_empty_or_doubled_part_is_invalid(pattern):
    with pytest.raises(InvalidPolicy, match=r"repositories\[0\].name"):
        parse_policy_object(cluster_policy("bad", (pattern, {})))


def test_null_means_unset_as_in_kubernetes():
    policy = parse_policy_object(
        _rule({"trust": None, "simple": {"requirements": None}, "mutateImage": None})
    )
    assert policy.repositories[0].policy == Policy()


# --- selection: no image falls through to a weaker rule


def test_untagged_and_digest_references_do_not_escape_a_tag_rule_of_their_repository():
    objects = _objects(("lab/*", {}), ("lab/app:*", ACCEPT))
    for image in ("lab/app", f"lab/app@{DIGEST}", "lab/app:1", f"lab/app:1@{DIGEST}"):
        assert best_match(objects, image).pattern == "lab/app:*", image


@pytest.mark.parametrize(
    ("rules", "governs_digest"),
    [
        # The rule for the whole repository, never a rule for some of its tags ...
        ((("lab/app", ACCEPT), ("lab/app:v1", {})), "lab/app"),
        ((("lab/*", {}), ("lab/app:v*", ACCEPT)), "lab/*"),
        # ... so a pinned digest is not caught by a rule about tag names.
        ((("*", ACCEPT), ("*:latest", REJECT)), "*"),
        ((("lab/app:*", ACCEPT), ("lab/app:v1", {})), "lab/app:*"),
    ],
)
def test_a_digest_reference_is_governed_by_the_most_specific_rule_for_every_tag(
    rules, governs_digest
):
    objects = _objects(*rules)
    assert best_match(objects, f"lab/app@{DIGEST}").pattern == governs_digest


def test_a_digest_reference_with_only_tag_rules_for_its_repository_has_no_policy():
    found = find_policy(f"lab/app@{DIGEST}", "ns", [], _objects(("lab/app:v*", ACCEPT)))
    assert isinstance(found, NoPolicy)
    assert "lab/app:*" in found.describe() and "names no tag" in found.describe()
    assert "names no tag" not in find_policy("lab/x:1", "ns", [], _objects()).describe()


@pytest.mark.parametrize(
    "rules",
    [
        (("lab/*", {}), ("lab/app:v*", ACCEPT)),
        (("lab/*", {}), ("lab/app:*", ACCEPT)),
        (("lab/app", {}), ("lab/app:l*", ACCEPT)),
        (("lab/app", {}), ("lab/app:latest", ACCEPT)),
    ],
)
def test_an_untagged_image_is_governed_exactly_as_latest_which_the_runtime_pulls(rules):
    objects = _objects(*rules)
    assert best_match(objects, "lab/app").pattern == best_match(objects, "lab/app:latest").pattern


def test_a_digest_pattern_does_not_govern_other_digests():
    objects = _objects(("lab/app", ACCEPT), (f"lab/app@sha256:{'a' * 64}", {}))
    assert best_match(objects, f"lab/app@sha256:{'a' * 64}").pattern.startswith("lab/app@")
    assert best_match(objects, f"lab/app@{DIGEST}").pattern == "lab/app"
    assert best_match(objects, "lab/app").pattern == "lab/app"


@pytest.mark.parametrize(
    ("pattern", "image", "matches"),
    [
        # A pattern without `/` names Docker Hub images as written; `*` stays on its side
        # of the host boundary.
        ("busybox*", "busybox.attacker.com/evil", False),
        ("busybox*", "busybox.attacker.com/evil:1", False),
        ("busybox*", "busybox", True),
        ("busybox*", "busybox:1.36", True),
        ("busybox*", "busybox-extra", True),
        ("nginx*", "nginx.evil.io:5000/nginx", False),
        ("*x", "evil.io/x", False),
        # Only a repository part that is just `*` spans every repository.
        ("*", "busybox.attacker.com/evil", True),
        ("*:latest", "reg.io/team/app:latest", True),
        ("*:latest", "reg.io/team/app:1", False),
        # The repository part never reaches into the tag.
        ("reg.io/a*st", "reg.io/app:latest", False),
        ("reg.io/app*", "reg.io/app:latest", True),
        ("reg.io/app*", "reg.io/app-two", True),
        ("reg.io/*-prod", "reg.io/app-prod:1", True),
        ("reg.io/*-prod", "reg.io/app:x-prod", False),
        ("reg.io/*:v1", "reg.io/team/app:v1", True),
        ("reg.io/app:v*", f"reg.io/app:v1@{DIGEST}", True),
        ("reg.io/app:v*", f"reg.io/app@{DIGEST}", False),
        ("reg.io/app:*", f"reg.io/app@{DIGEST}", True),
        ("reg.io/app:**", f"reg.io/app@{DIGEST}", True),
        ("reg.io/*", f"reg.io/app@{DIGEST}", True),
        (f"reg.io/app@{DIGEST}", "reg.io/app:v1", False),
        (f"reg.io/app@{DIGEST}", f"reg.io/app:v1@{DIGEST}", True),
        ("reg.io/app", "not a reference", False),
    ],
)
def test_pattern_matching_by_part(pattern, image, matches):
    assert pattern_matches(pattern, image) is matches


def test_a_pattern_without_slash_never_governs_another_host():
    objects = _objects(("*", REJECT), ("busybox*", {}))
    assert best_match(objects, "busybox.attacker.com/evil").pattern == "*"
    assert best_match(objects, "busybox:1.36").pattern == "busybox*"


def test_ties_go_to_the_pattern_with_fewer_wildcards():
    # `reg.io/app` and `reg.io/app*` both score 8 (as `reg.io/app:*` and `reg.io/app*:*`).
    objects = _objects(("reg.io/app*", {}), ("reg.io/app", REJECT))
    assert best_match(objects, "reg.io/app:1").pattern == "reg.io/app"


# IBM Portieris' own matcher cases (helpers/wildcard and pkg/apis/.../types_test.go): the
# pattern, the image, and whether IBM Portieris finds a policy. We agree on every one.
IBM_CASES = [
    ("stuvwxyz", "stuvwxyz:latest", True),
    ("stuvwxyz:*", "stuvwxyz:latest", True),
    ("uk.icr.io/*", "uk.icr.io/imagesec-demo/alpinegood:demo", True),
    ("uk.icr.io/imagesec-demo/*", "uk.icr.io/imagesec-demo/alpinegood:demo", True),
    (
        "uk.icr.io/imagesec-demo/alpinegood",
        "uk.icr.io/imagesec-demo/alpinegood:demo",
        True,
    ),
    ("abcdefgh", "stuvwxyz:latest", False),
    ("*.registry.example.com/myorg/*", "us.registry.example.com/myorg/foo:latest", True),
    ("*.registry.example.com/myrepo/*", "eu.registry.example.com/myrepo/node:v1", True),
    ("*.registry.example.com/myrepo/*", "ap.registry.example.com/myrepo/control:v2", True),
    ("registry*.example.com/myorg/*", "registry01.example.com/myorg/worker:v1", True),
    ("registry.example.com/myorg/*", "registry.example.com/myorg/foo:latest", True),
    ("*", "attacker.example.com/anything:latest", True),
    ("trusted.example.com/*", "trusted.example.com/myorg/myimage:demo", True),
    ("*.registry.example.com/myorg/*", "attacker.com/x.registry.example.com/myorg/malware", False),
    (
        "*.registry.example.com/myorg/*",
        "attacker.com/x.registry.example.com/myorg/malware:latest",
        False,
    ),
    ("registry*.example.com/myorg/*", "registry.attacker.com/x.example.com/myorg/evil", False),
    (
        "*.registry.example.com/myrepo/*",
        "evil.io/fake.registry.example.com/myrepo/pwn:latest",
        False,
    ),
    ("*.registry.example.com/myrepo/*", "evil.io/fake.registry.example.com/myrepo/pwn:v1", False),
    ("registry.example.com/myorg/*", "evilreg.io/myorg/foo:latest", False),
    ("trusted.example.com/*", "evil.io/trusted.example.com/myorg/myimage:demo", False),
    ("test.com/*", "test.com/hello", True),
    ("test.com/*", "unknown.com/hello", False),
    ("test.com/namespace/image", "test.com/namespace/image:tag", True),
    ("test.com/namespace/hello:nopolicies", "test.com/namespace/hello:nopolicies", True),
    ("icr.io/*/*", "icr.io/portieris-authn/nginx:unsigned", True),
    ("icr.io/*/nginx", "icr.io/portieris-authn/nginx:unsigned", True),
    ("icr.io/portieris-authn/*", "icr.io/portieris-authn/nginx:unsigned", True),
]


@pytest.mark.parametrize(("pattern", "image", "matches"), IBM_CASES)
def test_agrees_with_ibm_portieris_matcher_cases(pattern, image, matches):
    assert pattern_matches(pattern, image) is matches


def test_picks_the_tag_pattern_ibm_portieris_picks():
    objects = _objects(("icr.io/hello/world", REJECT), ("icr.io/hello/world:v*", ACCEPT))
    assert best_match(objects, "icr.io/hello/world:v1").pattern == "icr.io/hello/world:v*"
