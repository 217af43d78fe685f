"""The private Sigstore of the tests makes material the real cosign accepts, and refuses when bad.

Each case signs a pushed image with the real cosign (Fulcio-shaped leaves from ``fulcio_ca``,
entries from the Rekor stand-in ``transparency_log``, tokens from the real timestamp-server)
and asks ``cosign verify`` / ``verify-attestation`` for its verdict, offline.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.cosign import Cosign
from tests.fixtures.registry import PushedImage
from tests.fixtures.sigstore_pki import (
    OIDC_ISSUER_V1,
    OIDC_ISSUER_V2,
    EntryOptions,
    FulcioCA,
    FulcioLeaf,
    TimestampAuthority,
    TransparencyLog,
    attest_keyless,
    keyed_signer,
    keyless_flags,
    sign,
    sign_keyless,
    with_rekor_key,
)

pytestmark = pytest.mark.integration

ALICE = "alice@example.com"
ISSUER = "https://oidc.portieris.test"
WORKLOAD = "https://github.com/portieris/app/.github/workflows/release.yml@refs/heads/main"
PREDICATE_TYPE = "https://portieris.test/predicate/scan/v1"
MINUTES = datetime.timedelta(minutes=1)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture
def image(image_factory) -> PushedImage:
    return image_factory("v1")


@pytest.fixture
def alice_leaf(fulcio_ca: FulcioCA) -> FulcioLeaf:
    return fulcio_ca.issue(ALICE, ISSUER)


@pytest.fixture
def expired_leaf(fulcio_ca: FulcioCA) -> FulcioLeaf:
    """Valid from 20 to 10 minutes ago: expired now."""
    return fulcio_ca.issue(
        ALICE, ISSUER, not_before=now() - 20 * MINUTES, not_after=now() - 10 * MINUTES
    )


@pytest.fixture
def rekor_cosign(cosign: Cosign, transparency_log: TransparencyLog) -> Cosign:
    """cosign trusting the Rekor stand-in's key."""
    return with_rekor_key(cosign, transparency_log)


def logged(chain: Path, identity: str = ALICE, issuer: str = ISSUER, **kwargs):
    """Keyless verify flags, checking the SET offline."""
    return keyless_flags(chain, identity, issuer, tlog=True, **kwargs)


# -- the pure parts mirror Rekor and Fulcio -------------------------------------------------------


def test_log_id_is_the_sha256_of_the_log_keys_der(transparency_log):
    der = transparency_log.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    assert transparency_log.log_id == hashlib.sha256(der).hexdigest()


def test_hashedrekord_entry_binds_signature_verifier_and_payload_hash(transparency_log, alice_leaf):
    entry = transparency_log.enter_signature(
        base64.b64encode(b"sig").decode(), b"{}", alice_leaf.cert_pem
    )
    body = json.loads(entry.body)

    assert (body["apiVersion"], body["kind"]) == ("0.0.1", "hashedrekord")
    assert body["spec"]["signature"]["content"] == base64.b64encode(b"sig").decode()
    assert (
        base64.b64decode(body["spec"]["signature"]["publicKey"]["content"]) == alice_leaf.cert_pem
    )
    assert body["spec"]["data"]["hash"] == {
        "algorithm": "sha256",
        "value": hashlib.sha256(b"{}").hexdigest(),
    }
    assert transparency_log.verify_set(entry)
    assert entry.bundle()["Payload"]["body"] == base64.b64encode(entry.body).decode()


def test_set_by_another_key_does_not_verify(transparency_log, alice_leaf):
    other = ec.generate_private_key(ec.SECP256R1())
    entry = transparency_log.enter_signature("c2ln", b"{}", alice_leaf.cert_pem, set_key=other)

    assert not transparency_log.verify_set(entry)


def test_fulcio_leaf_carries_the_issuer_in_both_extensions_and_an_email_or_uri_san(fulcio_ca):
    leaf = fulcio_ca.issue(WORKLOAD, "https://token.actions.githubusercontent.com")
    extensions = leaf.cert.extensions

    assert extensions.get_extension_for_oid(OIDC_ISSUER_V1).value.value == (
        b"https://token.actions.githubusercontent.com"
    )
    assert extensions.get_extension_for_oid(OIDC_ISSUER_V2).value.value == (
        b"\x0c\x2bhttps://token.actions.githubusercontent.com"
    )
    san = extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [WORKLOAD]
    assert leaf.not_after - leaf.not_before == 10 * MINUTES


# -- cosign accepts ------------------------------------------------------------------------------------


def test_keyless_with_a_set_verifies_offline(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, alice_leaf
):
    signed = sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log)

    assert signed.entry is not None and transparency_log.verify_set(signed.entry)
    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert verdict, verdict.output
    assert "verified offline" in verdict.output


def test_keyless_with_a_tsa_timestamp_verifies(
    cosign, fulcio_chain, timestamp_authority, image, alice_leaf
):
    sign_keyless(cosign, image.digest_ref, alice_leaf, tsa=timestamp_authority)

    flags = keyless_flags(fulcio_chain, ALICE, ISSUER, tsa=timestamp_authority)
    verdict = cosign.verify(image.digest_ref, **flags)
    assert verdict, verdict.output


def test_keyless_with_a_set_and_a_tsa_timestamp_verifies(
    cosign, rekor_cosign, transparency_log, fulcio_chain, timestamp_authority, image, alice_leaf
):
    sign_keyless(
        cosign, image.digest_ref, alice_leaf, tsa=timestamp_authority, rekor=transparency_log
    )

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain, tsa=timestamp_authority))
    assert verdict, verdict.output


def test_keyed_with_a_set_verifies_offline(cosign, rekor_cosign, transparency_log, image, tmp_path):
    pair = cosign.generate_key_pair(tmp_path / "key")
    sign(cosign, image.digest_ref, keyed_signer(pair), rekor=transparency_log)

    verdict = rekor_cosign.verify(
        image.digest_ref, key=pair.public_path, insecure_ignore_tlog=False, offline=True
    )
    assert verdict, verdict.output


def test_expired_leaf_verifies_when_the_log_saw_it_while_valid(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, expired_leaf
):
    entry = EntryOptions(integrated_time=now() - 15 * MINUTES)
    sign_keyless(cosign, image.digest_ref, expired_leaf, rekor=transparency_log, entry=entry)

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert verdict, verdict.output


def test_workload_identity_verifies_as_a_uri_san(
    cosign, rekor_cosign, transparency_log, fulcio_ca, fulcio_chain, image
):
    leaf = fulcio_ca.issue(WORKLOAD, "https://token.actions.githubusercontent.com")
    sign_keyless(cosign, image.digest_ref, leaf, rekor=transparency_log)

    flags = logged(fulcio_chain, WORKLOAD, "https://token.actions.githubusercontent.com")
    verdict = rekor_cosign.verify(image.digest_ref, **flags)
    assert verdict, verdict.output


def test_keyless_with_a_set_in_another_repository_verifies(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image_factory, alice_leaf
):
    image, signatures = image_factory("v1"), image_factory.new_repo("signatures")
    repository = f"{image.host}/{signatures}"
    sign_keyless(
        cosign, image.digest_ref, alice_leaf, rekor=transparency_log, repository=repository
    )

    flags = logged(fulcio_chain)
    assert rekor_cosign.verify(image.digest_ref, repository=repository, **flags)
    verdict = rekor_cosign.verify(image.digest_ref, **flags)
    assert not verdict, verdict.output


@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_keyless_attestation_with_a_set_verifies_offline(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, alice_leaf, tmp_path, kind
):
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"scanner": "portieris-tests", "findings": 0}))
    signed = attest_keyless(
        cosign,
        image.digest_ref,
        alice_leaf,
        predicate,
        PREDICATE_TYPE,
        rekor=transparency_log,
        kind=kind,
    )

    assert signed.entry is not None and json.loads(signed.entry.body)["kind"] == kind
    verdict = rekor_cosign.verify_attestation(
        image.digest_ref, predicate_type=PREDICATE_TYPE, **logged(fulcio_chain)
    )
    assert verdict, verdict.output


def test_keyless_attestation_with_a_tsa_timestamp_verifies(
    cosign, fulcio_chain, timestamp_authority, image, alice_leaf, tmp_path
):
    predicate = tmp_path / "predicate.json"
    predicate.write_text("{}")
    attest_keyless(
        cosign, image.digest_ref, alice_leaf, predicate, PREDICATE_TYPE, tsa=timestamp_authority
    )

    flags = keyless_flags(fulcio_chain, ALICE, ISSUER, tsa=timestamp_authority)
    verdict = cosign.verify_attestation(image.digest_ref, predicate_type=PREDICATE_TYPE, **flags)
    assert verdict, verdict.output


# -- cosign refuses ----------------------------------------------------------------------------------


def test_set_signed_by_another_key_is_refused(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, alice_leaf
):
    entry = EntryOptions(set_key=ec.generate_private_key(ec.SECP256R1()))
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log, entry=entry)

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert not verdict, verdict.output
    assert "unable to verify SET" in verdict.output


def test_entry_hashing_another_artifact_is_refused(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, alice_leaf
):
    entry = EntryOptions(payload=b'{"another": "artifact"}')
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log, entry=entry)

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert not verdict, verdict.output
    assert "failed to extract signature from bundle" in verdict.output  # Rekor's own body check


def test_genuine_entry_of_another_image_is_refused(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image_factory, alice_leaf
):
    other, image = image_factory("other"), image_factory("v1")
    elsewhere = sign_keyless(cosign, other.digest_ref, alice_leaf, rekor=transparency_log)
    entry = EntryOptions(replay=elsewhere.entry)
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log, entry=entry)

    assert rekor_cosign.verify(other.digest_ref, **logged(fulcio_chain))
    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert not verdict, verdict.output
    assert "signature in bundle does not match" in verdict.output


def test_leaf_expired_before_the_integrated_time_is_refused(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, expired_leaf
):
    sign_keyless(cosign, image.digest_ref, expired_leaf, rekor=transparency_log)

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert not verdict, verdict.output
    assert "expired before signatures were entered in log" in verdict.output


def test_leaf_expired_at_the_timestamp_is_refused(
    cosign, fulcio_chain, timestamp_authority, image, expired_leaf
):
    sign_keyless(cosign, image.digest_ref, expired_leaf, tsa=timestamp_authority)

    flags = keyless_flags(fulcio_chain, ALICE, ISSUER, tsa=timestamp_authority)
    verdict = cosign.verify(image.digest_ref, **flags)
    assert not verdict, verdict.output
    assert "checking expiry on certificate with timestamp" in verdict.output


def test_expired_leaf_without_log_or_timestamp_is_refused(
    cosign, fulcio_chain, image, expired_leaf
):
    sign_keyless(cosign, image.digest_ref, expired_leaf)

    verdict = cosign.verify(image.digest_ref, **keyless_flags(fulcio_chain, ALICE, ISSUER))
    assert not verdict, verdict.output
    assert "expected a signed timestamp to verify an expired certificate" in verdict.output


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [("mallory@example.com", ISSUER), (ALICE, "https://accounts.example.com")],
    ids=["identity", "issuer"],
)
def test_wrong_identity_or_issuer_is_refused(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image, alice_leaf, identity, issuer
):
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log)

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain, identity, issuer))
    assert not verdict, verdict.output
    assert "none of the expected identities matched" in verdict.output


def test_leaf_from_an_untrusted_root_is_refused(
    cosign, rekor_cosign, transparency_log, fulcio_chain, image
):
    stranger = FulcioCA.create("another fulcio").issue(ALICE, ISSUER)
    sign_keyless(cosign, image.digest_ref, stranger, rekor=transparency_log)

    verdict = rekor_cosign.verify(image.digest_ref, **logged(fulcio_chain))
    assert not verdict, verdict.output
    assert "certificate signed by unknown authority" in verdict.output


def test_tsa_timestamp_checked_against_another_chain_is_refused(
    cosign, fulcio_ca, fulcio_chain, timestamp_authority, image, alice_leaf, tmp_path
):
    sign_keyless(cosign, image.digest_ref, alice_leaf, tsa=timestamp_authority)
    stranger = FulcioCA.create("not the TSA").issue("tsa@example.com")
    other_chain = tmp_path / "not-the-tsa.pem"
    other_chain.write_bytes(stranger.cert_pem + stranger.chain_pem)

    flags = keyless_flags(fulcio_chain, ALICE, ISSUER, tsa=timestamp_authority)
    flags["timestamp_certificate_chain"] = other_chain
    verdict = cosign.verify(image.digest_ref, **flags)
    assert not verdict, verdict.output
    assert "unable to verify RFC3161 timestamp" in verdict.output


def test_tsa_serves_its_certificate_chain(timestamp_authority: TimestampAuthority):
    assert timestamp_authority.chain_pem.count(b"BEGIN CERTIFICATE") >= 2
