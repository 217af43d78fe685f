"""Whether the evidence found for an image satisfies one authority of a policy.

Each rule is shown passing and failing on evidence made here: keyed cosign signatures,
keyless ones (a Fulcio-shaped leaf and a SET from a test log), and in-toto attestations.
The authorities are parsed from policy text and loaded as the webhook loads them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re

import pytest

from portieris_webhook.errors import VerificationError
from portieris_webhook.images import parse_image
from portieris_webhook.sigstore.authority import (
    MAX_REASONS,
    Outcome,
    Subject,
    check_evidence,
    evaluate,
)
from portieris_webhook.sigstore.evidence import InclusionProof

from tests.unit.sigstore.material import (
    DIGEST,
    IMAGE,
    ISSUER,
    MINUTE,
    NOW,
    OTHER_DIGEST,
    REPOSITORY,
    SIGNER,
    SLSA,
    SUBJECT,
    VULN,
    FulcioCA,
    Log,
    TimestampAuthority,
    attestation_evidence,
    cosign_payload,
    dsse_body,
    ec_key,
    envelope_json,
    hashedrekord_body,
    keyed,
    keyless,
    public_pem,
    sign,
    signature_evidence,
    signed_note,
    statement,
    trust,
)

PAYLOAD = cosign_payload()


@pytest.fixture(scope="module")
def key():
    return ec_key()


@pytest.fixture(scope="module")
def log() -> Log:
    return Log.create()


@pytest.fixture(scope="module")
def ca() -> FulcioCA:
    return FulcioCA.create()


def logged_signature(log, key, payload=PAYLOAD, *, leaf=None, logged_payload=None, **entry):
    """A signature of `payload` with its log entry (a hashedrekord naming the key, or the
    leaf, and `logged_payload`) and the SET `log` made."""
    evidence = signature_evidence(payload, key, leaf=leaf)
    verifier = leaf.pem if leaf else public_pem(key).encode()
    body = hashedrekord_body(evidence.signature, verifier, logged_payload or payload)
    return dataclasses.replace(evidence, log_entry=log.entry(body, **entry))


def keyless_signature(ca, log, payload=PAYLOAD, *, leaf=None, **entry):
    leaf = leaf or ca.leaf()
    return logged_signature(log, leaf.key, payload, leaf=leaf, **entry)


def logged_attestation(log, key, payload, *, leaf=None):
    envelope = envelope_json(payload, key)
    verifier = leaf.pem if leaf else public_pem(key).encode()
    entry = log.entry(dsse_body(envelope, verifier))
    return attestation_evidence(envelope, leaf=leaf, log_entry=entry)


def refused(authority_trust, evidence, subject=SUBJECT) -> str:
    with pytest.raises(VerificationError) as raised:
        check_evidence(authority_trust, evidence, subject)
    return str(raised.value)


# -- keyed signatures ------------------------------------------------------------------------


def test_a_signature_by_the_authority_s_key_over_this_image_passes(key):
    authority = trust(keyed(key))
    evidence = signature_evidence(PAYLOAD, key)
    assert check_evidence(authority, evidence, SUBJECT) is None
    assert evaluate(authority, [evidence], SUBJECT) == Outcome("keyed", True)


def test_a_signature_logged_by_the_configured_log_passes(key, log):
    authority = trust(keyed(key, log=log))
    assert check_evidence(authority, logged_signature(log, key), SUBJECT) is None


def test_a_signature_by_another_key_is_refused(key):
    evidence = signature_evidence(PAYLOAD, ec_key())
    assert "does not verify with the authority's key" in refused(trust(keyed(key)), evidence)


def test_a_tampered_payload_is_refused(key):
    signed = signature_evidence(PAYLOAD, key)
    tampered_payload = cosign_payload(digest=OTHER_DIGEST)
    tampered = dataclasses.replace(signed, statement=tampered_payload, signed=tampered_payload)
    assert "does not verify with the authority's key" in refused(trust(keyed(key)), tampered)


@pytest.mark.parametrize(
    ("algorithm", "signed_with"),
    [("sha384", "sha256"), ("sha256", "sha384"), ("sha512", "sha256")],
)
def test_a_signature_made_with_another_hash_than_the_authority_names_is_refused(
    key, algorithm, signed_with
):
    authority = trust(keyed(key) | {"key": {"data": public_pem(key), "hashAlgorithm": algorithm}})
    evidence = signature_evidence(PAYLOAD, key, signature=sign(key, PAYLOAD, signed_with))
    assert "does not verify with the authority's key" in refused(authority, evidence)


def test_a_signature_made_with_the_hash_the_authority_names_passes(key):
    authority = trust(keyed(key) | {"key": {"data": public_pem(key), "hashAlgorithm": "sha384"}})
    evidence = signature_evidence(PAYLOAD, key, signature=sign(key, PAYLOAD, "sha384"))
    assert check_evidence(authority, evidence, SUBJECT) is None


def test_a_payload_naming_another_digest_is_refused(key):
    evidence = signature_evidence(cosign_payload(digest=OTHER_DIGEST), key)
    assert refused(trust(keyed(key)), evidence) == f"signs {OTHER_DIGEST}, not {DIGEST}"


def test_a_signature_copied_from_another_repository_is_refused(key):
    """Same key, same digest (an image pushed to two repositories): the payload names the
    repository it was signed for."""
    evidence = signature_evidence(cosign_payload(reference="registry.local/other/app"), key)
    assert refused(trust(keyed(key)), evidence) == (
        f"signs repository registry.local/other/app, not {REPOSITORY}"
    )


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        (IMAGE, REPOSITORY),
        (IMAGE, f"{REPOSITORY}:1.0"),
        (IMAGE, f"{REPOSITORY}@{DIGEST}"),
        (parse_image("nginx:1.27"), "docker.io/library/nginx"),
        (parse_image("docker.io/library/nginx:1.27"), "nginx"),
    ],
    ids=["as-written", "with-tag", "with-digest", "docker-hub-short", "docker-hub-long"],
)
def test_the_payload_may_name_the_repository_in_any_equivalent_form(key, image, reference):
    evidence = signature_evidence(cosign_payload(reference=reference), key)
    assert check_evidence(trust(keyed(key)), evidence, Subject(image, DIGEST)) is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (cosign_payload(kind="cosign container image signature v2"), "critical.type is 'cosign container image signature v2'"),
        (cosign_payload(kind="atomic container signature"), "critical.type is 'atomic container signature'"),
        (cosign_payload(critical_extra={"extra": {}}), "critical has unknown fields: extra"),
        (json.dumps({"critical": {"image": {"docker-manifest-digest": DIGEST}, "type": "cosign container image signature"}}).encode(), "critical lacks identity"),
        (json.dumps({"critical": {"identity": {"docker-reference": REPOSITORY, "tag": "1"}, "image": {"docker-manifest-digest": DIGEST}, "type": "cosign container image signature"}}).encode(), "critical.identity has unknown fields: tag"),
        (json.dumps({"critical": {"identity": {"docker-reference": REPOSITORY}, "image": {"docker-manifest-digest": [DIGEST]}, "type": "cosign container image signature"}}).encode(), "must be strings"),
        (json.dumps({"optional": {}}).encode(), "has no critical section"),
        (b"not json", "is not JSON"),
    ],
    ids=["type-v2", "type-atomic", "unknown-critical-field", "no-identity", "unknown-identity-field", "digest-not-a-string", "no-critical", "not-json"],
)  # fmt: skip
def test_a_payload_that_is_not_a_cosign_container_signature_is_refused(key, payload, message):
    assert message in refused(trust(keyed(key)), signature_evidence(payload, key))


def test_with_a_log_configured_a_signature_without_entry_is_refused(key, log):
    evidence = signature_evidence(PAYLOAD, key)
    assert refused(trust(keyed(key, log=log)), evidence) == "carries no transparency log entry"


def test_a_log_entry_for_another_artifact_is_refused(key, log):
    evidence = logged_signature(log, key, logged_payload=cosign_payload(digest=OTHER_DIGEST))
    assert "the log entry is for another payload" in refused(trust(keyed(key, log=log)), evidence)


def test_a_log_entry_whose_set_another_key_signed_is_refused(key, log):
    evidence = logged_signature(log, key, set_key=ec_key())
    assert "signed entry timestamp does not verify" in refused(trust(keyed(key, log=log)), evidence)


def test_a_log_entry_of_another_log_is_refused(key, log):
    evidence = logged_signature(Log.create(), key)
    assert "not the configured log" in refused(trust(keyed(key, log=log)), evidence)


# -- keyless signatures ------------------------------------------------------------------------


def test_a_keyless_signature_of_an_accepted_identity_logged_while_valid_passes(ca, log):
    authority = trust(keyless(ca, log))
    assert check_evidence(authority, keyless_signature(ca, log), SUBJECT) is None


@pytest.mark.parametrize(
    "identity",
    [
        {"issuer": ISSUER, "subjectRegExp": r".*@example\.com"},
        {"issuerRegExp": r"https://oidc\.example\.(test|com)", "subject": SIGNER},
    ],
    ids=["subject-regexp", "issuer-regexp"],
)
def test_a_keyless_identity_may_be_a_regular_expression(ca, log, identity):
    authority = trust(keyless(ca, log, [identity]))
    assert check_evidence(authority, keyless_signature(ca, log), SUBJECT) is None


def test_a_keyless_signature_from_an_untrusted_root_is_refused(ca, log):
    stranger = FulcioCA.create("another-sigstore")
    evidence = keyless_signature(stranger, log)
    message = refused(trust(keyless(ca, log)), evidence)
    assert "does not chain to the configured roots" in message


def test_a_keyless_signature_of_another_identity_is_refused_naming_the_identity_seen(ca, log):
    evidence = keyless_signature(ca, log, leaf=ca.leaf(email="mallory@example.com"))
    assert refused(trust(keyless(ca, log)), evidence) == (
        f"signed by mallory@example.com from issuer {ISSUER}, which is not an accepted "
        f"identity (subject {SIGNER} from issuer {ISSUER})"
    )


def test_a_keyless_signature_from_another_issuer_is_refused_naming_the_issuer_seen(ca, log):
    evidence = keyless_signature(ca, log, leaf=ca.leaf(issuer="https://evil.example.test"))
    message = refused(trust(keyless(ca, log)), evidence)
    assert message.startswith(f"signed by {SIGNER} from issuer https://evil.example.test, ")


def test_an_identity_that_only_an_unanchored_match_would_accept_is_refused(ca, log):
    authority = trust(keyless(ca, log, [{"issuer": ISSUER, "subjectRegExp": ".*@example.com"}]))
    evidence = keyless_signature(ca, log, leaf=ca.leaf(email="evil@example.com.attacker.net"))
    message = refused(authority, evidence)
    assert "signed by evil@example.com.attacker.net" in message
    assert "subject ~/.*@example.com/ from issuer" in message


def test_a_keyless_certificate_without_subject_is_refused_saying_so(ca, log):
    evidence = keyless_signature(ca, log, leaf=ca.leaf(email=None))
    assert refused(trust(keyless(ca, log)), evidence).startswith("signed by no subject from")


@pytest.mark.parametrize(
    ("not_before", "integrated"),
    [(NOW - 20 * MINUTE, NOW), (NOW + MINUTE, NOW)],
    ids=["expired-before-logged", "not-yet-valid-when-logged"],
)
def test_a_certificate_not_valid_at_the_log_s_integrated_time_is_refused(
    ca, log, not_before, integrated
):
    leaf = ca.leaf(not_before=not_before, not_after=not_before + 10 * MINUTE)
    evidence = keyless_signature(ca, log, leaf=leaf, integrated_time=integrated)
    message = refused(trust(keyless(ca, log)), evidence)
    assert re.search(r"does not chain to the configured roots at 2025-01-15T12:00:00Z", message)


def test_the_certificate_is_checked_at_the_logged_time_not_at_the_current_clock(ca, log):
    """The leaf expired years before the tests run; what counts is that the log saw the
    signature while it was valid."""
    leaf = ca.leaf()
    assert leaf.certificate.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    evidence = keyless_signature(ca, log, leaf=leaf, integrated_time=NOW + 5 * MINUTE)
    assert check_evidence(trust(keyless(ca, log)), evidence, SUBJECT) is None


def test_a_keyless_signature_without_log_entry_is_refused(ca, log):
    leaf = ca.leaf()
    evidence = signature_evidence(PAYLOAD, leaf.key, leaf=leaf)
    assert refused(trust(keyless(ca, log)), evidence) == "carries no transparency log entry"


def test_a_keyless_signature_without_certificate_is_refused(ca, log):
    evidence = dataclasses.replace(keyless_signature(ca, log), certificate=None)
    assert (
        refused(trust(keyless(ca, log)), evidence) == "carries no certificate (keyless authority)"
    )


def test_a_keyless_signature_not_made_with_the_certificate_s_key_is_refused(ca, log):
    leaf = ca.leaf()
    evidence = signature_evidence(PAYLOAD, ec_key(), leaf=leaf)
    message = refused(trust(keyless(ca, log)), evidence)
    assert message == "the signature does not verify with its certificate's key"


def test_a_log_entry_naming_another_certificate_is_refused(ca, log):
    leaf = ca.leaf()
    evidence = signature_evidence(PAYLOAD, leaf.key, leaf=leaf)
    body = hashedrekord_body(evidence.signature, ca.leaf().pem, PAYLOAD)
    evidence = dataclasses.replace(evidence, log_entry=log.entry(body))
    assert "another signature or signer" in refused(trust(keyless(ca, log)), evidence)


def test_a_keyless_certificate_may_carry_its_intermediate(ca, log):
    part = keyless(ca, log)
    part["keyless"]["ca-cert"] = {"data": ca.pem(intermediate=False)}
    evidence = dataclasses.replace(keyless_signature(ca, log), chain=(ca.intermediate_der,))
    assert check_evidence(trust(part), evidence, SUBJECT) is None


def _proof_only(log, evidence):
    """`evidence`'s entry proven by an inclusion proof in a one-leaf tree and a checkpoint
    the log signed, without a SET: nothing signs its integratedTime."""
    entry = evidence.log_entry
    root = hashlib.sha256(b"\x00" + entry.body).digest()
    note = signed_note(log.key, "rekor.test - 1", 1, root)
    proof = InclusionProof(0, 1, root, (), note)
    return dataclasses.replace(
        evidence,
        log_entry=dataclasses.replace(entry, signed_entry_timestamp=None, proof=proof),
    )


def test_a_keyed_signature_proven_by_an_inclusion_proof_alone_passes(key, log):
    evidence = _proof_only(log, logged_signature(log, key))
    assert check_evidence(trust(keyed(key, log=log)), evidence, SUBJECT) is None


def test_an_inclusion_proof_alone_does_not_prove_when_a_keyless_signature_was_made(ca, log):
    """integratedTime is signed by the SET only; with just a proof it is the signer's word."""
    evidence = _proof_only(log, keyless_signature(ca, log))
    assert refused(trust(keyless(ca, log)), evidence).startswith(
        "nothing proves when it was signed"
    )


@pytest.fixture(scope="module")
def tsa() -> TimestampAuthority:
    return TimestampAuthority.create()


def stamped(ca, log, tsa, *, at=NOW, over=None, leaf=None, logged=False):
    """A keyless signature with a timestamp (by `tsa`, at `at`, over the raw signature or
    `over`), and a log entry when `logged`."""
    leaf = leaf or ca.leaf()
    evidence = (
        logged_signature(log, leaf.key, leaf=leaf)
        if logged
        else signature_evidence(PAYLOAD, leaf.key, leaf=leaf)
    )
    message = over if over is not None else evidence.signature
    return dataclasses.replace(evidence, timestamp=tsa.stamp(message, at))


def with_timestamps(part, tsa, *, log_on=False):
    """`part` trusting `tsa` for timestamps, the log off unless `log_on`."""
    stamps = {"rfc3161timestamp": {"certChain": {"data": tsa.pem()}}}
    return part | stamps if log_on else part | stamps | {"ctlog": {"enabled": False}}


def test_a_keyless_signature_timestamped_while_its_certificate_was_valid_passes(ca, log, tsa):
    authority = trust(with_timestamps(keyless(ca, log), tsa))
    assert check_evidence(authority, stamped(ca, log, tsa), SUBJECT) is None


def test_with_a_timestamp_authority_configured_a_signature_without_timestamp_is_refused(
    ca, log, tsa
):
    leaf = ca.leaf()
    evidence = signature_evidence(PAYLOAD, leaf.key, leaf=leaf)
    authority = trust(with_timestamps(keyless(ca, log), tsa))
    assert refused(authority, evidence) == "carries no RFC 3161 timestamp"


def test_a_timestamp_by_another_authority_is_refused(ca, log, tsa):
    evidence = stamped(ca, log, TimestampAuthority.create("other-tsa"))
    authority = trust(with_timestamps(keyless(ca, log), tsa))
    assert "the RFC 3161 timestamp does not verify" in refused(authority, evidence)


def test_a_timestamp_over_something_else_than_the_signature_is_refused(ca, log, tsa):
    evidence = stamped(ca, log, tsa, over=PAYLOAD)
    authority = trust(with_timestamps(keyless(ca, log), tsa))
    assert "Mismatch between messages" in refused(authority, evidence)


def test_a_timestamp_that_is_not_an_rfc3161_response_is_refused(ca, log, tsa):
    evidence = dataclasses.replace(stamped(ca, log, tsa), timestamp=b"\x30\x03\x02\x01\x00")
    authority = trust(with_timestamps(keyless(ca, log), tsa))
    assert "the RFC 3161 timestamp cannot be read" in refused(authority, evidence)


def test_a_certificate_expired_when_timestamped_is_refused(ca, log, tsa):
    evidence = stamped(ca, log, tsa, at=NOW + 30 * MINUTE)
    authority = trust(with_timestamps(keyless(ca, log), tsa))
    assert "does not chain to the configured roots at 2025-01-15T12:30:00Z" in refused(
        authority, evidence
    )


def test_with_both_log_and_timestamps_the_certificate_must_be_valid_at_both_times(ca, log, tsa):
    authority = trust(with_timestamps(keyless(ca, log), tsa, log_on=True))
    both_valid = stamped(ca, log, tsa, at=NOW + MINUTE, logged=True)
    assert check_evidence(authority, both_valid, SUBJECT) is None
    stamped_late = stamped(ca, log, tsa, at=NOW + 30 * MINUTE, logged=True)
    assert "does not chain" in refused(authority, stamped_late)


def test_a_legacy_attestation_s_timestamp_covers_its_whole_envelope(ca, log, tsa):
    leaf = ca.leaf()
    envelope = envelope_json(statement(SLSA), leaf.key)
    evidence = dataclasses.replace(
        attestation_evidence(envelope, leaf=leaf), timestamp=tsa.stamp(envelope)
    )
    authority = trust(with_timestamps(keyless(ca, log, **wants(SLSA)), tsa))
    assert check_evidence(authority, evidence, SUBJECT) == SLSA


# -- attestations ------------------------------------------------------------------------------


def wants(*predicate_types):
    return {"attestations": [{"predicateType": p} for p in predicate_types]}


def test_an_attestation_of_the_required_type_about_this_image_passes(key):
    authority = trust(keyed(key, **wants(SLSA)))
    evidence = attestation_evidence(envelope_json(statement(SLSA), key))
    assert check_evidence(authority, evidence, SUBJECT) == SLSA
    assert evaluate(authority, [evidence], SUBJECT).passed


def test_a_keyless_attestation_logged_as_dsse_passes(ca, log):
    leaf = ca.leaf()
    authority = trust(keyless(ca, log, **wants(SLSA)))
    evidence = logged_attestation(log, leaf.key, statement(SLSA), leaf=leaf)
    assert evaluate(authority, [evidence], SUBJECT).passed


def test_every_required_attestation_type_must_be_present(key):
    authority = trust(keyed(key, **wants(SLSA, VULN)))
    provenance = attestation_evidence(envelope_json(statement(SLSA), key))
    vulnerabilities = attestation_evidence(envelope_json(statement(VULN), key))
    assert evaluate(authority, [provenance, vulnerabilities], SUBJECT).passed
    outcome = evaluate(authority, [provenance], SUBJECT)
    assert outcome == Outcome("keyed", False, (f"no verified attestation of type {VULN}",))


def test_an_attestation_about_another_subject_is_refused(key):
    evidence = attestation_evidence(envelope_json(statement(SLSA, (OTHER_DIGEST,)), key))
    message = refused(trust(keyed(key, **wants(SLSA))), evidence)
    assert message == f"attests to other subjects than {DIGEST}"


def test_an_attestation_listing_this_image_among_its_subjects_passes(key):
    evidence = attestation_evidence(envelope_json(statement(SLSA, (OTHER_DIGEST, DIGEST)), key))
    assert check_evidence(trust(keyed(key, **wants(SLSA))), evidence, SUBJECT) == SLSA


def test_an_attestation_of_another_predicate_type_does_not_satisfy(key):
    authority = trust(keyed(key, **wants(SLSA)))
    evidence = attestation_evidence(envelope_json(statement(VULN), key))
    outcome = evaluate(authority, [evidence], SUBJECT)
    assert not outcome.passed
    assert outcome.reasons == (f"no verified attestation of type {SLSA}",)


def test_a_signature_does_not_stand_in_for_a_required_attestation(key):
    authority = trust(keyed(key, **wants(SLSA)))
    outcome = evaluate(authority, [signature_evidence(PAYLOAD, key)], SUBJECT)
    assert not outcome.passed
    assert outcome.reasons[0] == f"no verified attestation of type {SLSA}"


def test_an_attestation_does_not_stand_in_for_a_signature(key):
    authority = trust(keyed(key))
    evidence = attestation_evidence(envelope_json(statement(SLSA), key))
    assert evaluate(authority, [evidence], SUBJECT) == Outcome(
        "keyed", False, ("no signature found",)
    )


def test_an_attestation_signed_by_another_key_is_refused(key):
    evidence = attestation_evidence(envelope_json(statement(SLSA), ec_key()))
    message = refused(trust(keyed(key, **wants(SLSA))), evidence)
    assert message == "the signature does not verify with the authority's key"


def test_an_envelope_of_another_payload_type_is_refused(key):
    envelope = envelope_json(statement(SLSA), key, payload_type="application/json")
    message = refused(trust(keyed(key, **wants(SLSA))), attestation_evidence(envelope))
    assert message == "payload type 'application/json' is not in-toto"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (statement(SLSA, statement_type="https://example.test/Statement/v1"), "is not in-toto's"),
        (json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": DIGEST[7:]}}]}).encode(), "has no predicateType"),
        (json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": SLSA, "subject": []}).encode(), "must list 1 to 1024 subjects"),
        (json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": SLSA, "subject": [{"name": "x"}]}).encode(), "a statement subject has no digest"),
        (b"[]", "must be a JSON object"),
    ],
    ids=["unknown-statement-type", "no-predicate-type", "no-subjects", "subject-without-digest", "not-an-object"],
)  # fmt: skip
def test_a_statement_that_is_not_in_toto_is_refused(key, payload, message):
    evidence = attestation_evidence(envelope_json(payload, key))
    assert message in refused(trust(keyed(key, **wants(SLSA))), evidence)


def test_the_statement_v01_type_is_read_too(key):
    payload = statement(SLSA, statement_type="https://in-toto.io/Statement/v0.1")
    evidence = attestation_evidence(envelope_json(payload, key))
    assert check_evidence(trust(keyed(key, **wants(SLSA))), evidence, SUBJECT) == SLSA


def test_a_bundle_s_cosign_sign_statement_counts_as_a_signature(key):
    """cosign signs an image in a Sigstore bundle as a DSSE statement of this type."""
    payload = statement("https://sigstore.dev/cosign/sign/v1")
    evidence = attestation_evidence(envelope_json(payload, key))
    assert check_evidence(trust(keyed(key)), evidence, SUBJECT) is None
    assert evaluate(trust(keyed(key)), [evidence], SUBJECT).passed


# -- evaluate: one passing piece of evidence satisfies; otherwise every reason --------------------


def test_no_evidence_does_not_satisfy(key):
    assert evaluate(trust(keyed(key)), [], SUBJECT) == Outcome(
        "keyed", False, ("no signature found",)
    )


def test_one_good_signature_among_bad_ones_satisfies(key):
    bad = signature_evidence(PAYLOAD, ec_key(), where="bad")
    good = signature_evidence(PAYLOAD, key, where="good")
    assert evaluate(trust(keyed(key)), [bad, good, bad], SUBJECT).passed


def test_every_failure_is_a_reason_naming_where_it_was_found(key):
    wrong_key = signature_evidence(PAYLOAD, ec_key(), where="sig-1")
    wrong_digest = signature_evidence(cosign_payload(digest=OTHER_DIGEST), key, where="sig-2")
    outcome = evaluate(trust(keyed(key)), [wrong_key, wrong_digest], SUBJECT)
    assert outcome.reasons == (
        "sig-1: the signature does not verify with the authority's key",
        f"sig-2: signs {OTHER_DIGEST}, not {DIGEST}",
    )


def test_a_deny_message_quotes_a_few_reasons_and_counts_the_rest():
    reasons = tuple(f"reason {i}" for i in range(MAX_REASONS + 2))
    assert Outcome("a", False, reasons).describe() == (
        "authority a: " + "; ".join(reasons[:MAX_REASONS]) + "; and 2 more"
    )
    assert Outcome("a", True).describe() == "authority a: satisfied"
