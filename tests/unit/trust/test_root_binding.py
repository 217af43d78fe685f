"""A root is trusted for a repository only through certificates issued for that repository.

Notary's rule (trustpinning ValidateRoot): root keys are x509 certificate
bundles whose single non-CA leaf comes first, names the GUN as its common name
and is valid now (not-before may lie up to a day ahead, for clock skew), and
is not signed with SHA-1. Only such keys count toward the root threshold, on
first use, under a pin, and on rotation. Without it, a server can answer a
request for one repository with another repository's genuine signed data.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portieris_webhook.trust.errors import MetadataError, SignatureError
from portieris_webhook.trust.keys import parse_key
from portieris_webhook.trust.lookup import find_tag
from portieris_webhook.trust.trusted_set import RootPin, TrustData
from portieris_webhook.trust.updater import GunState, refresh

from tests.unit.trust.simulator import (
    GUN,
    NOW,
    RepositorySimulator,
    TestKey,
    envelope,
    file_meta,
    make_key,
)

DAY = datetime.timedelta(days=1)
OTHER_GUN = "registry.example.com/team/other"


def _name(common_name: str | None) -> x509.Name:
    if common_name is None:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no common name")])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str | None,
    *,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None = None,
    ca: bool | None = None,
    not_before: datetime.datetime = NOW - 30 * DAY,
    not_after: datetime.datetime = NOW + 365 * DAY,
) -> x509.Certificate:
    signer, issuer_name = issuer or (key, _name(common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    return builder.sign(signer, hashes.SHA256())


def certificate_key(*certificates: x509.Certificate, private: Any) -> TestKey:
    """An `ecdsa-x509` root key whose public part is the PEM bundle of `certificates`."""
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    return TestKey("ecdsa-x509", private, base64.b64encode(pem).decode())


def root_key(common_name: str | None = GUN, **kwargs: Any) -> TestKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return certificate_key(_certificate(private, common_name, **kwargs), private=private)


def repository(*root_keys: TestKey, threshold: int = 1, gun: str = GUN) -> RepositorySimulator:
    sim = RepositorySimulator(gun)
    if root_keys:
        sim.root.keys = list(root_keys)
        sim.root.threshold = threshold
        sim.rebuild_root()
    sim.delegate("targets/releases")
    sim.add_target("targets/releases", "v1", b"manifest v1")
    return sim


def load_as(
    gun: str,
    files: dict[str, bytes],
    *,
    pin: RootPin | None = None,
    state: GunState | None = None,
    now: datetime.datetime = NOW,
) -> TrustData:
    """Verify `files` as the trust data a server answered for `gun`."""

    async def fetch(role: str, max_bytes: int) -> bytes | None:
        return files.get(role)

    return asyncio.run(refresh(gun, state or GunState(), fetch, now, pin))


def _sha1_signed_root_key() -> TestKey:
    """cryptography refuses to sign with SHA-1, so openssl makes this (valid for ~14 years)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a SHA-1 signed certificate")
    private = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key.pem"
        key_file.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        command = [
            *("openssl", "req", "-x509", "-new", "-sha1", "-days", "5000"),
            *("-key", str(key_file), "-subj", "/CN=" + GUN.replace("/", "\\/")),
            *("-addext", "basicConstraints=critical,CA:FALSE"),
        ]
        pem = subprocess.run(
            command,
            check=True,
            capture_output=True,
        ).stdout
    certificate = x509.load_pem_x509_certificate(pem)
    assert certificate.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA1
    assert certificate.not_valid_before_utc < NOW < certificate.not_valid_after_utc
    return certificate_key(certificate, private=private)


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, _certificate(private, "intermediate CA", ca=True)


def _bundle_leaf_then_ca() -> TestKey:
    ca_private, ca_cert = _ca()
    private = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(private, GUN, issuer=(ca_private, ca_cert.subject), ca=False)
    return certificate_key(leaf, ca_cert, private=private)


def _bundle_ca_then_leaf() -> TestKey:
    ca_private, ca_cert = _ca()
    private = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(private, GUN, issuer=(ca_private, ca_cert.subject))
    return certificate_key(ca_cert, leaf, private=private)


def _bundle_of_two_leaves() -> TestKey:
    private = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    return certificate_key(_certificate(private, GUN), _certificate(other, GUN), private=private)


# --- the rule --------------------------------------------------------------------------


def test_a_root_certified_for_this_repository_is_trusted_on_first_use():
    data = load_as(GUN, repository(root_key(GUN)).publish())

    assert find_tag(data, "v1") is not None


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: root_key(OTHER_GUN), f"issued to '{OTHER_GUN}', not to '{GUN}'"),
        (
            lambda: root_key("registry.example.com/team/*"),
            "issued to 'registry.example.com/team/\\*'",
        ),
        (lambda: root_key(GUN + "/sub"), "not to"),
        (lambda: root_key(None), r"has no \(single\) common name"),
        (lambda: root_key(GUN, ca=True), "CA certificate, not a leaf"),
        (lambda: root_key(GUN, not_after=NOW - DAY), "expired at"),
        (lambda: root_key(GUN, not_before=NOW + 2 * DAY), "not valid before"),
        (lambda: _sha1_signed_root_key(), "SHA-1"),
        (lambda: make_key("ecdsa"), "bare ecdsa key, not a certificate"),
        (lambda: make_key("rsa"), "bare rsa key, not a certificate"),
        (lambda: make_key("ed25519"), "bare ed25519 key, not a certificate"),
        (_bundle_ca_then_leaf, "must start with its one leaf certificate"),
        (_bundle_of_two_leaves, "must start with its one leaf certificate"),
    ],
    ids=[
        "issued-for-another-repository",
        "wildcard-common-name",
        "issued-for-a-sub-repository",
        "no-common-name",
        "ca-certificate",
        "expired",
        "not-yet-valid",
        "sha1-signature",
        "bare-ecdsa-key",
        "bare-rsa-key",
        "ed25519-key",
        "bundle-starting-with-a-ca",
        "bundle-of-two-leaves",
    ],
)
def test_a_root_key_that_is_not_a_valid_certificate_for_this_repository_does_not_count(
    make, problem
):
    files = repository(make()).publish()

    with pytest.raises(SignatureError, match=f"certified for {GUN}") as caught:
        load_as(GUN, files)
    assert caught.match(problem)


def test_a_certificate_valid_from_within_a_day_counts_as_notary_allows_for_clock_skew():
    files = repository(root_key(GUN, not_before=NOW + DAY / 2)).publish()

    assert load_as(GUN, files).root.version == 1


def test_a_bundle_of_the_leaf_followed_by_its_intermediate_ca_counts():
    assert load_as(GUN, repository(_bundle_leaf_then_ca()).publish()).root.version == 1


def test_only_certified_root_keys_count_toward_the_root_threshold():
    files = repository(root_key(GUN), root_key(OTHER_GUN), threshold=2).publish()

    with pytest.raises(SignatureError, match=r"1 valid signature\(s\) .* 2 required"):
        load_as(GUN, files)


# --- replaying another repository's data -----------------------------------------------


def test_another_repositorys_genuine_trust_data_is_refused():
    theirs = repository(gun=OTHER_GUN).publish()
    assert load_as(OTHER_GUN, theirs).root.version == 1

    with pytest.raises(SignatureError, match=f"issued to '{OTHER_GUN}', not to '{GUN}'"):
        load_as(GUN, theirs)


@pytest.mark.parametrize("which_id", ["keyid", "public_id"])
def test_a_pinned_key_counts_only_with_a_certificate_for_this_repository(which_id):
    """One root key signs both repositories (as the notary CLI reuses it): the pin names the
    key, the certificate names the repository, and only together do they anchor a root."""
    private = ec.generate_private_key(ec.SECP256R1())
    ours = certificate_key(_certificate(private, GUN), private=private)
    theirs = certificate_key(_certificate(private, OTHER_GUN), private=private)
    their_files = repository(theirs, gun=OTHER_GUN).publish()
    pinned = theirs.keyid if which_id == "keyid" else _public_id(theirs)
    pin = RootPin(frozenset({pinned, _public_id(ours)}), description="the shared root key")

    assert load_as(OTHER_GUN, their_files, pin=pin).root.version == 1
    assert load_as(GUN, repository(ours).publish(), pin=pin).root.version == 1
    with pytest.raises(SignatureError, match="not signed by the pinned root the shared root key"):
        load_as(GUN, their_files, pin=pin)


def _public_id(key: TestKey) -> str:
    return parse_key(key.keyid, key.document, "test").public_id


def test_a_root_rotated_to_a_key_certified_for_another_repository_is_refused():
    sim = repository()
    state = GunState()
    load_as(GUN, sim.publish(), state=state)
    sim.rotate_root([root_key(OTHER_GUN)])

    with pytest.raises(SignatureError, match="new root") as caught:
        load_as(GUN, sim.publish(bump=True), state=state)
    assert caught.match(f"issued to '{OTHER_GUN}'")


def test_a_snapshot_that_does_not_record_the_root_is_refused():
    """Notary's snapshot always records root: that is what ties every role to the root."""
    sim = repository()
    files = sim.publish()
    snapshot = json.loads(files["snapshot"])["signed"]
    del snapshot["meta"]["root"]
    files["snapshot"] = envelope(snapshot, sim.snapshot.keys)
    timestamp = json.loads(files["timestamp"])["signed"]
    timestamp["meta"]["snapshot"] = file_meta(files["snapshot"])
    files["timestamp"] = envelope(timestamp, sim.timestamp.keys)

    with pytest.raises(MetadataError, match=r"snapshot .* does not record root"):
        load_as(GUN, files)
