"""The `sigstore` part of a policy: what it may say, and every refusal naming its field.

Parsed through parse_policy_object, as the webhook reads ImagePolicy and ClusterImagePolicy
objects. A part it half understands is refused, never enforced as if understood.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.model import Policy, parse_policy_object
from portieris_webhook.policy.sigstore_part import (
    MAX_AUTHORITIES,
    MAX_IDENTITIES,
    AttestationRule,
    Identity,
    KeyAuthority,
    KeylessAuthority,
    Material,
    SignatureSource,
    SigstorePolicy,
    TimestampAuthority,
    TransparencyLog,
)

from tests.builders import cluster_policy
from tests.unit.sigstore.material import FulcioCA, Log, ec_key, public_pem

KEY = public_pem(ec_key())
LOG = public_pem(Log.create().key)
CA = FulcioCA.create().pem()
TSA = FulcioCA.create("tsa").pem()
OTHER_TSA = FulcioCA.create("other-tsa").pem()
AT = "spec.repositories[0].policy.sigstore"
"""Where the sigstore part sits in a ClusterImagePolicy, as messages name it."""

LOG_ON = {"publicKey": {"data": LOG}}
LOG_OFF = {"enabled": False}
KEYED = {"key": {"data": KEY}, "ctlog": LOG_OFF}
IDENTITY = {"issuer": "https://oidc.example.test", "subject": "alice@example.com"}
KEYLESS = {"keyless": {"ca-cert": {"data": CA}, "identities": [IDENTITY]}, "ctlog": LOG_ON}


def parse(part: Any) -> SigstorePolicy:
    return policy_of(part).sigstore


def policy_of(part: Any) -> Policy:
    obj = cluster_policy("p", ("registry.local/*", {"sigstore": part}))
    return parse_policy_object(obj).repositories[0].policy


def one(authority: dict[str, Any], **part: Any):
    (only,) = parse({"authorities": [authority], **part}).authorities
    return only


# -- what is accepted ---------------------------------------------------------------------


def test_no_sigstore_part_asks_for_nothing():
    assert parse(None) == SigstorePolicy()
    assert parse({}) == SigstorePolicy()


def test_a_keyed_authority_reads_its_key_hash_and_log():
    authority = one(
        {
            "name": "release",
            "key": {"data": KEY, "hashAlgorithm": "sha384"},
            "ctlog": {"url": "https://rekor.local", **LOG_ON},
        }
    )
    assert authority.name == "release"
    assert authority.key == KeyAuthority(Material(data=KEY), "sha384")
    assert authority.keyless is None
    assert authority.ctlog == TransparencyLog(True, Material(data=LOG), "https://rekor.local")
    assert (authority.timestamp, authority.source, authority.attestations) == (None, None, ())


def test_the_hash_algorithm_defaults_to_sha256_and_the_name_to_the_position():
    authority = one(KEYED)
    assert authority.key.hash_algorithm == "sha256"
    assert authority.name == "authority[0]"


@pytest.mark.parametrize(
    ("ref", "material"),
    [
        ({"name": "cosign-pub"}, Material(secret_name="cosign-pub")),
        (
            {"name": "cosign-pub", "key": "cosign.pub", "namespace": "keys"},
            Material(secret_name="cosign-pub", secret_key="cosign.pub", secret_namespace="keys"),
        ),
    ],
)
def test_a_key_may_be_kept_in_a_secret(ref, material):
    assert one({"key": {"secretRef": ref}, "ctlog": LOG_OFF}).key.key == material


def test_a_keyless_authority_reads_its_roots_and_identities():
    authority = one(
        {
            "keyless": {
                "url": "https://fulcio.local",
                "ca-cert": {"secretRef": {"name": "fulcio-roots"}},
                "identities": [
                    IDENTITY,
                    {
                        "issuerRegExp": r"https://token\.actions\.githubusercontent\.com",
                        "subjectRegExp": r"https://github\.com/acme/.*",
                    },
                ],
            },
            "ctlog": LOG_ON,
        }
    )
    assert authority.key is None
    assert authority.keyless == KeylessAuthority(
        ca_cert=Material(secret_name="fulcio-roots"),
        identities=(
            Identity(issuer="https://oidc.example.test", subject="alice@example.com"),
            Identity(
                issuer_regexp=r"https://token\.actions\.githubusercontent\.com",
                subject_regexp=r"https://github\.com/acme/.*",
            ),
        ),
        url="https://fulcio.local",
    )


def test_the_log_may_be_turned_off_in_so_many_words():
    assert one(KEYED).ctlog == TransparencyLog(enabled=False)


def test_a_log_given_for_the_whole_part_applies_to_every_authority():
    part = {"ctlog": LOG_ON, "authorities": [{"key": {"data": KEY}}, {"key": {"data": KEY}}]}
    logs = {a.ctlog for a in parse(part).authorities}
    assert logs == {TransparencyLog(True, Material(data=LOG))}


def test_an_authority_s_own_log_overrides_the_part_s():
    part = {"ctlog": LOG_ON, "authorities": [{"key": {"data": KEY}, "ctlog": LOG_OFF}]}
    assert parse(part).authorities[0].ctlog == TransparencyLog(enabled=False)


@pytest.mark.parametrize(
    ("part_stamp", "authority_stamp", "expected"),
    [
        (None, None, None),
        (TSA, None, TSA),
        (None, OTHER_TSA, OTHER_TSA),
        (TSA, OTHER_TSA, OTHER_TSA),
    ],
    ids=["none", "policy-level", "authority-level", "authority-overrides-policy"],
)
def test_a_timestamp_authority_applies_from_the_part_unless_the_authority_names_its_own(
    part_stamp, authority_stamp, expected
):
    authority: dict[str, Any] = dict(KEYED)
    part: dict[str, Any] = {"authorities": [authority]}
    if part_stamp:
        part["rfc3161timestamp"] = {"certChain": {"data": part_stamp}}
    if authority_stamp:
        authority["rfc3161timestamp"] = {"certChain": {"data": authority_stamp}}
    found = parse(part).authorities[0].timestamp
    assert found == (TimestampAuthority(Material(data=expected)) if expected else None)


def test_keyless_with_the_log_off_is_accepted_when_a_timestamp_authority_proves_the_time():
    authority = one({**KEYLESS, "ctlog": LOG_OFF, "rfc3161timestamp": {"certChain": {"data": TSA}}})
    assert not authority.ctlog.enabled
    assert authority.timestamp == TimestampAuthority(Material(data=TSA))


def test_a_source_names_the_repository_holding_the_signatures_and_its_pull_secrets():
    source = [
        {
            "oci": "registry.local/signatures",
            "signaturePullSecrets": [{"name": "sig-pull"}, {"name": "other"}],
        }
    ]
    assert one({**KEYED, "source": source}).source == SignatureSource(
        "registry.local/signatures", ("sig-pull", "other")
    )


def test_attestations_name_predicate_types_and_default_their_name_to_the_type():
    attestations = [
        {"name": "provenance", "predicateType": "https://slsa.dev/provenance/v1"},
        {"predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1"},
    ]
    assert one({**KEYED, "attestations": attestations}).attestations == (
        AttestationRule("provenance", "https://slsa.dev/provenance/v1"),
        AttestationRule(
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            "https://cosign.sigstore.dev/attestation/vuln/v1",
        ),
    )


def test_several_authorities_are_kept_in_order():
    part = {"authorities": [{"name": "a", **KEYED}, {"name": "b", **KEYLESS}]}
    assert [a.name for a in parse(part).authorities] == ["a", "b"]


# -- what is refused, naming the field ------------------------------------------------------

A0 = f"{AT}.authorities[0]"
NOT_IMPLEMENTED = "not implemented by this webhook"

REFUSALS = [
    # unknown fields, at each level (a typo must not silently drop a requirement)
    ("unknown-part-field", {"authorities": [KEYED], "rekor": {}}, f"{AT}.rekor: unknown field"),
    ("unknown-authority-field", {"authorities": [{**KEYED, "keyles": {}}]}, f"{A0}.keyles: unknown field"),
    ("unknown-key-field", {"authorities": [{**KEYED, "key": {"data": KEY, "hash": "sha256"}}]}, f"{A0}.key.hash: unknown field"),
    (
        "unknown-identity-field",
        {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{**IDENTITY, "subjectRegex": ".*"}]}}]},
        f"{A0}.keyless.identities[0].subjectRegex: unknown field",
    ),
    ("unknown-ctlog-field", {"authorities": [{**KEYED, "ctlog": {"enabled": False, "enable": True}}]}, f"{A0}.ctlog.enable: unknown field"),
    # policy-controller fields this webhook does not implement
    ("static", {"authorities": [{"static": {"action": "pass"}, "ctlog": LOG_OFF}]}, f"{A0}.static: {NOT_IMPLEMENTED}"),
    ("signatureFormat", {"authorities": [{**KEYED, "signatureFormat": "bundle"}]}, f"{A0}.signatureFormat: {NOT_IMPLEMENTED}"),
    ("kms", {"authorities": [{**KEYED, "key": {"kms": "awskms:///alias/cosign"}}]}, f"{A0}.key.kms: {NOT_IMPLEMENTED}"),
    ("keyless-trustRootRef", {"authorities": [{**KEYLESS, "keyless": {"trustRootRef": "sigstore", "identities": [IDENTITY]}}]}, f"{A0}.keyless.trustRootRef: {NOT_IMPLEMENTED}"),
    ("insecureIgnoreSCT", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [IDENTITY], "insecureIgnoreSCT": True}}]}, f"{A0}.keyless.insecureIgnoreSCT: {NOT_IMPLEMENTED}"),
    ("ctlog-trustRootRef", {"authorities": [{**KEYED, "ctlog": {"trustRootRef": "sigstore"}}]}, f"{A0}.ctlog.trustRootRef: {NOT_IMPLEMENTED}"),
    ("timestamp-trustRootRef", {"authorities": [{**KEYED, "rfc3161timestamp": {"trustRootRef": "tsa"}}]}, f"{A0}.rfc3161timestamp.trustRootRef: {NOT_IMPLEMENTED}"),
    ("attestation-policy", {"authorities": [{**KEYED, "attestations": [{"predicateType": "https://slsa.dev/provenance/v1", "policy": {"type": "cue", "data": "{}"}}]}]}, f"{A0}.attestations[0].policy: {NOT_IMPLEMENTED}"),
    ("tagPrefix", {"authorities": [{**KEYED, "source": [{"oci": "registry.local/sigs", "tagPrefix": "v"}]}]}, f"{A0}.source[0].tagPrefix: {NOT_IMPLEMENTED}"),
    # exactly one of key and keyless
    ("key-and-keyless", {"authorities": [{**KEYED, "keyless": KEYLESS["keyless"]}]}, f"{A0}.key or keyless: give exactly one"),
    ("neither-key-nor-keyless", {"authorities": [{"name": "empty", "ctlog": LOG_OFF}]}, f"{A0}.key or keyless: give exactly one"),
    # exactly one of data and secretRef, and data is PEM
    ("data-and-secretRef", {"authorities": [{**KEYED, "key": {"data": KEY, "secretRef": {"name": "k"}}}]}, f"{A0}.key.data or secretRef: give exactly one"),
    ("neither-data-nor-secretRef", {"authorities": [{**KEYED, "key": {"hashAlgorithm": "sha256"}}]}, f"{A0}.key.data or secretRef: give exactly one"),
    ("key-not-pem", {"authorities": [{**KEYED, "key": {"data": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}}]}, f"{A0}.key.data must be PEM text"),
    ("ca-cert-not-pem", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": "a root"}, "identities": [IDENTITY]}}]}, f"{A0}.keyless.ca-cert.data must be PEM text"),
    ("log-key-not-pem", {"authorities": [{**KEYED, "ctlog": {"publicKey": {"data": "rekor.pub"}}}]}, f"{A0}.ctlog.publicKey.data must be PEM text"),
    ("secretRef-without-name", {"authorities": [{**KEYED, "key": {"secretRef": {"key": "cosign.pub"}}}]}, f"{A0}.key.secretRef.name is required"),
    ("bad-hashAlgorithm", {"authorities": [{**KEYED, "key": {"data": KEY, "hashAlgorithm": "md5"}}]}, f"{A0}.key.hashAlgorithm must be one of sha256, sha384, sha512, not 'md5'"),
    # the transparency log: given, or off in so many words
    ("missing-ctlog", {"authorities": [{"key": {"data": KEY}}]}, f"{A0}.ctlog is required"),
    ("ctlog-off-with-publicKey", {"authorities": [{**KEYED, "ctlog": {"enabled": False, **LOG_ON}}]}, f"{A0}.ctlog.publicKey is given but the log is turned off"),
    ("ctlog-on-without-publicKey", {"authorities": [{**KEYED, "ctlog": {"url": "https://rekor.local"}}]}, f"{A0}.ctlog.publicKey is required"),
    ("ctlog-enabled-not-boolean", {"authorities": [{**KEYED, "ctlog": {"enabled": "false"}}]}, f"{A0}.ctlog.enabled must be true or false"),
    ("part-ctlog-without-publicKey", {"ctlog": {}, "authorities": [KEYED]}, f"{AT}.ctlog.publicKey is required"),
    # keyless needs a proof of when it signed
    ("keyless-without-log-or-timestamp", {"authorities": [{**KEYLESS, "ctlog": LOG_OFF}]}, f"{A0}.keyless needs a transparency log (ctlog) or a timestamp authority"),
    ("keyless-without-ca-cert", {"authorities": [{**KEYLESS, "keyless": {"identities": [IDENTITY]}}]}, f"{A0}.keyless.ca-cert is required"),
    ("keyless-without-identities", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}}}]}, f"{A0}.keyless.identities must list at least one accepted identity"),
    ("timestamp-without-certChain", {"authorities": [{**KEYED, "rfc3161timestamp": {}}]}, f"{A0}.rfc3161timestamp.certChain is required"),
    # identities: exact or regular expression, one of each, and compiling
    ("issuer-and-issuerRegExp", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{**IDENTITY, "issuerRegExp": ".*"}]}}]}, f"{A0}.keyless.identities[0].issuer or issuerRegExp: give exactly one"),
    ("no-issuer", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{"subject": "alice@example.com"}]}}]}, f"{A0}.keyless.identities[0].issuer or issuerRegExp: give exactly one"),
    ("subject-and-subjectRegExp", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{**IDENTITY, "subjectRegExp": ".*"}]}}]}, f"{A0}.keyless.identities[0].subject or subjectRegExp: give exactly one"),
    ("no-subject", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{"issuer": "https://oidc.example.test"}]}}]}, f"{A0}.keyless.identities[0].subject or subjectRegExp: give exactly one"),
    ("regexp-does-not-compile", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{"issuer": "https://oidc.example.test", "subjectRegExp": "alice@(example\\.com"}]}}]}, f"{A0}.keyless.identities[0].subjectRegExp is not a regular expression"),
    ("issuer-regexp-does-not-compile", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{"issuerRegExp": "*", "subject": "alice@example.com"}]}}]}, f"{A0}.keyless.identities[0].issuerRegExp is not a regular expression"),
    ("too-many-identities", {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [IDENTITY] * (MAX_IDENTITIES + 1)}}]}, f"{A0}.keyless.identities lists {MAX_IDENTITIES + 1}; at most {MAX_IDENTITIES}"),
    # how many
    ("no-authorities", {"authorities": []}, f"{AT}.authorities must list at least one authority"),
    ("only-a-part-log", {"ctlog": LOG_ON}, f"{AT}.authorities must list at least one authority"),
    ("authorities-not-a-list", {"authorities": KEYED}, f"{AT}.authorities must be a list"),
    ("too-many-authorities", {"authorities": [KEYED] * (MAX_AUTHORITIES + 1)}, f"{AT}.authorities lists {MAX_AUTHORITIES + 1}; at most {MAX_AUTHORITIES}"),
    ("two-sources", {"authorities": [{**KEYED, "source": [{"oci": "registry.local/a"}, {"oci": "registry.local/b"}]}]}, f"{A0}.source may name one repository"),
    ("source-without-oci", {"authorities": [{**KEYED, "source": [{"signaturePullSecrets": [{"name": "s"}]}]}]}, f"{A0}.source[0].oci is required"),
    ("attestation-without-predicateType", {"authorities": [{**KEYED, "attestations": [{"name": "provenance"}]}]}, f"{A0}.attestations[0].predicateType is required"),
    ("sigstore-not-an-object", ["authorities"], f"{AT} must be an object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("part", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_a_part_it_does_not_fully_understand_is_refused_naming_the_field(part, message):
    with pytest.raises(InvalidPolicy, match=re.escape(message)):
        parse(part)


def test_a_refusal_names_the_policy_object():
    with pytest.raises(InvalidPolicy, match=r"^ClusterImagePolicy p: "):
        parse({"authorities": [{"key": {"data": KEY}}]})


def test_every_unknown_field_of_a_level_is_named_at_once():
    with pytest.raises(InvalidPolicy) as raised:
        parse({"authorities": [{**KEYED, "keyles": {}, "kms": "x"}]})
    assert f"{A0}.keyles: unknown field" in str(raised.value)
    assert f"{A0}.kms: unknown field" in str(raised.value)


# -- identities match the whole string --------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "issuer", "subject"),
    [
        (Identity(issuer="https://oidc.example.test", subject="alice@example.com"), "https://oidc.example.test", "alice@example.com"),
        (Identity(issuer="https://oidc.example.test", subject_regexp=r".*@example\.com"), "https://oidc.example.test", "bob@example.com"),
        (Identity(issuer_regexp=r"https://token\.actions\.githubusercontent\.com", subject_regexp=r"https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*"), "https://token.actions.githubusercontent.com", "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"),
        (Identity(issuer_regexp=r"https://(a|b)\.example\.test", subject="alice@example.com"), "https://b.example.test", "alice@example.com"),
    ],
    ids=["exact", "subject-regexp", "github-workflow", "issuer-alternation"],
)  # fmt: skip
def test_an_identity_accepts_what_it_names(identity, issuer, subject):
    assert identity.accepts(issuer, subject)


@pytest.mark.parametrize(
    ("identity", "issuer", "subject"),
    [
        # an unanchored-looking pattern is matched against the whole string
        (Identity(issuer="https://oidc.example.test", subject_regexp=".*@example.com"), "https://oidc.example.test", "evil@example.com.attacker.net"),
        (Identity(issuer="https://oidc.example.test", subject_regexp=r"alice@example\.com"), "https://oidc.example.test", "xalice@example.com"),
        (Identity(issuer="https://oidc.example.test", subject_regexp=r"alice@example\.com"), "https://oidc.example.test", "alice@example.com\n"),
        (Identity(issuer="https://oidc.example.test", subject_regexp=r"alice@example\.com|bob@example\.com"), "https://oidc.example.test", "alice@example.com.attacker.net"),
        (Identity(issuer_regexp=r"https://token\.actions\.githubusercontent\.com", subject="alice@example.com"), "https://token.actions.githubusercontent.com.attacker.net", "alice@example.com"),
        (Identity(issuer_regexp=r"https://token\.actions\.githubusercontent\.com", subject="alice@example.com"), "http://x/?https://token.actions.githubusercontent.com", "alice@example.com"),
        # exact values are exact
        (Identity(issuer="https://oidc.example.test", subject="alice@example.com"), "https://oidc.example.test", "Alice@example.com"),
        (Identity(issuer="https://oidc.example.test", subject="alice@example.com"), "https://oidc.example.test/", "alice@example.com"),
        # both issuer and subject must match
        (Identity(issuer="https://oidc.example.test", subject="alice@example.com"), "https://other.example.test", "alice@example.com"),
        (Identity(issuer_regexp=".*", subject="alice@example.com"), "https://oidc.example.test", "bob@example.com"),
    ],
    ids=[
        "dot-star-suffix", "prefix", "trailing-newline", "alternation-suffix", "issuer-suffix",
        "issuer-prefix", "exact-case", "exact-trailing-slash", "issuer-differs", "subject-differs",
    ],
)  # fmt: skip
def test_an_identity_refuses_what_only_a_part_of_the_string_matches(identity, issuer, subject):
    assert not identity.accepts(issuer, subject)


def test_identities_parsed_from_a_policy_match_the_whole_string():
    pattern = {"issuer": "https://oidc.example.test", "subjectRegExp": ".*@example.com"}
    authority = one({**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [pattern]}})
    (identity,) = authority.keyless.identities
    assert identity.accepts("https://oidc.example.test", "alice@example.com")
    assert not identity.accepts("https://oidc.example.test", "evil@example.com.attacker.net")


def test_an_identity_describes_itself_for_deny_messages():
    assert (
        Identity(issuer="https://i.test", subject_regexp=r".*@example\.com").describe()
        == r"subject ~/.*@example\.com/ from issuer https://i.test"
    )


# -- the policy's fingerprint ----------------------------------------------------------------


def test_the_fingerprint_is_equal_for_equal_sigstore_parts():
    part = {"authorities": [KEYLESS]}
    assert policy_of(part).fingerprint == policy_of(part).fingerprint


@pytest.mark.parametrize(
    "changed",
    [
        {"authorities": [{**KEYLESS, "keyless": {"ca-cert": {"data": CA}, "identities": [{**IDENTITY, "subject": "bob@example.com"}]}}]},
        {"authorities": [{**KEYLESS, "name": "renamed"}]},
        {"authorities": [{**KEYLESS, "ctlog": LOG_OFF, "rfc3161timestamp": {"certChain": {"data": TSA}}}]},
        {"authorities": [{**KEYLESS, "attestations": [{"predicateType": "https://slsa.dev/provenance/v1"}]}]},
        {"authorities": [{**KEYLESS, "source": [{"oci": "registry.local/sigs"}]}]},
        {"authorities": [KEYLESS, KEYED]},
        None,
    ],
    ids=["subject", "name", "timestamp", "attestations", "source", "another-authority", "no-part"],
)  # fmt: skip
def test_the_fingerprint_changes_when_the_sigstore_part_changes(changed):
    assert policy_of({"authorities": [KEYLESS]}).fingerprint != policy_of(changed).fingerprint
