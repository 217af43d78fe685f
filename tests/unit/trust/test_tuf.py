"""The pure TUF state machine, on repositories built with our own keys."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re

import pytest

from portieris_webhook.errors import VerificationError
from portieris_webhook.trust.errors import (
    ExpiredMetadataError,
    HashMismatchError,
    MetadataError,
    RollbackError,
    SignatureError,
    StateMachineMisuse,
    TrustError,
)
from portieris_webhook.trust.lookup import find_tag
from portieris_webhook.trust.metadata import RELEASES
from portieris_webhook.trust.trusted_set import RootPin, TrustedMetadataSet
from portieris_webhook.trust.updater import GunState

from tests.unit.trust.simulator import (
    GUN,
    NOW,
    RepositorySimulator,
    TestKey,
    envelope,
    make_key,
    resign,
)

DAY = datetime.timedelta(days=1)


def assert_left_out(data, role, pattern):
    """A delegated role that fails verification is left out: its tag v1 does not resolve."""
    assert role not in data.roles and re.search(pattern, data.skipped[role])
    assert find_tag(data, "v1") is None


KEY_TYPES = ["ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"]


def test_a_signed_repository_verifies_and_names_the_signed_digest(repo, load):
    data = load(repo.publish())

    target = find_tag(data, "v1")
    assert target is not None and target.role == "targets/releases"
    assert target.digest == "sha256:" + hashlib.sha256(b"manifest v1").hexdigest()


@pytest.mark.parametrize("keytype", KEY_TYPES)
def test_every_key_type_can_sign_every_role_below_root(keytype, load):
    """Root keys must be certificates for the GUN (test_root_binding.py); any type signs the rest."""
    sim = RepositorySimulator(
        root_keytype="rsa-x509" if keytype.startswith("rsa") else "ecdsa-x509"
    )
    for role in (sim.timestamp, sim.snapshot, sim.targets):
        role.keys = [make_key(keytype)]
    sim.rebuild_root()
    sim.delegate("targets/releases", [make_key(keytype)])
    sim.add_target("targets/releases", "v1", b"m")

    assert find_tag(load(sim.publish()), "v1") is not None


# --- thresholds and who may sign ------------------------------------------------


def test_delegation_threshold_of_two_with_one_signature_is_denied(load):
    sim = RepositorySimulator()
    alice, bob = make_key("ecdsa-x509"), make_key("ecdsa-x509")
    role = sim.delegate("targets/releases", [alice, bob], threshold=2)
    sim.add_target("targets/releases", "v1", b"m")
    role.signers = [alice]

    assert_left_out(load(sim.publish()), "targets/releases", r"1 valid signature.*2 required")


def test_delegation_threshold_of_two_with_both_signatures_verifies(load):
    sim = RepositorySimulator()
    sim.delegate("targets/releases", [make_key("ecdsa-x509"), make_key("ed25519")], threshold=2)
    sim.add_target("targets/releases", "v1", b"m")

    assert find_tag(load(sim.publish()), "v1") is not None


def test_one_signature_repeated_counts_once_toward_a_threshold(load):
    sim = RepositorySimulator()
    alice, bob = make_key("ecdsa"), make_key("ecdsa")
    role = sim.delegate("targets/releases", [alice, bob], threshold=2)
    sim.add_target("targets/releases", "v1", b"m")
    role.signers = [alice, alice]

    assert_left_out(load(sim.publish()), "targets/releases", "1 valid signature")


def test_one_key_listed_under_two_ids_counts_once(load):
    """The same public key as `ecdsa` and as `ecdsa-x509` is still one signer."""
    sim = RepositorySimulator()
    x509_key = make_key("ecdsa-x509")
    bare = make_key("ecdsa")
    bare.private = x509_key.private
    from cryptography.hazmat.primitives import serialization

    der = x509_key.private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bare.public_b64 = base64.b64encode(der).decode()
    sim.delegate("targets/releases", [x509_key, bare], threshold=2)
    sim.add_target("targets/releases", "v1", b"m")

    assert_left_out(load(sim.publish()), "targets/releases", "1 valid signature")


def test_a_delegated_role_signed_by_a_key_that_is_not_delegated_is_denied(repo, load):
    repo.delegations["targets/releases"].signers = [make_key("ecdsa-x509")]

    assert_left_out(
        load(repo.publish()), "targets/releases", "targets/releases metadata has 0 valid"
    )


def test_targets_signed_by_the_snapshot_key_is_denied(repo, load):
    repo.targets.signers = repo.snapshot.keys

    with pytest.raises(SignatureError, match="targets metadata has 0 valid"):
        load(repo.publish())


@pytest.mark.parametrize("role", ["timestamp", "snapshot"])
def test_top_level_role_signed_by_another_key_is_denied(repo, load, role):
    repo.role(role).signers = [make_key("ed25519")]

    with pytest.raises(SignatureError, match=f"{role} metadata has 0 valid"):
        load(repo.publish())


def test_a_signature_over_other_content_does_not_count(repo, load):
    files = repo.publish()
    document = json.loads(files["root"])
    document["signed"]["version"] = 1
    document["signed"]["expires"] = "2099-01-01T00:00:00Z"
    files["root"] = json.dumps(document).encode()

    with pytest.raises(SignatureError, match="root metadata has 0 valid"):
        load(files)


def test_wrong_signature_method_for_the_key_type_does_not_count(repo, load):
    files = repo.publish()
    document = json.loads(files["root"])
    document["signatures"][0]["method"] = "rsapss"
    files["root"] = json.dumps(document).encode()

    with pytest.raises(SignatureError):
        load(files)


def test_an_expired_root_certificate_does_not_count(load):
    sim = RepositorySimulator()
    sim.root.keys = [make_key("ecdsa-x509", not_after=NOW - DAY)]
    sim.rebuild_root()
    sim.delegate("targets/releases")

    with pytest.raises(SignatureError, match="root metadata has 0 valid"):
        load(sim.publish())


# --- hashes and lengths -----------------------------------------------------------


@pytest.mark.parametrize("role", ["snapshot", "targets", "targets/releases"])
def test_bytes_that_differ_from_the_recorded_hash_are_denied(repo, load, role):
    files = repo.publish()
    files[role] = files[role].replace(b'"version":', b'"version": ', 1)

    with pytest.raises(HashMismatchError, match=f"{role}"):
        load(files)


def test_a_target_hash_rewritten_with_signatures_kept_is_denied(repo, load):
    files = repo.publish()
    raw = files["targets/releases"]
    signed_hash = json.loads(raw)["signed"]["targets"]["v1"]["hashes"]["sha256"]
    evil_hash = base64.b64encode(hashlib.sha256(b"evil manifest").digest()).decode()
    files["targets/releases"] = raw.replace(signed_hash.encode(), evil_hash.encode())

    with pytest.raises(HashMismatchError, match=r"targets/releases of .*: sha256 hash differs"):
        load(files)


def test_a_snapshot_without_any_known_hash_is_denied(repo, load):
    files = repo.publish()
    timestamp = json.loads(files["timestamp"])["signed"]
    timestamp["meta"]["snapshot"]["hashes"] = {"md5": "AAAA"}
    files["timestamp"] = envelope(timestamp, repo.timestamp.keys)

    with pytest.raises(HashMismatchError, match="no sha256 or sha512"):
        load(files)


# --- expiry ------------------------------------------------------------------------


def test_an_expired_delegation_is_left_out_and_its_tags_do_not_resolve(repo, load):
    repo.role("targets/releases").expires = NOW - DAY

    assert_left_out(load(repo.publish()), "targets/releases", "^targets/releases metadata expired")


def test_a_failing_delegation_does_not_take_the_other_roles_down(repo, load):
    # notary's client skips an expired or under-signed delegation; tags signed elsewhere stand.
    repo.delegate("targets/bob")
    repo.add_target("targets/bob", "v2", b"manifest v2")
    repo.role("targets/bob").expires = NOW - DAY

    data = load(repo.publish())
    assert find_tag(data, "v1") is not None and find_tag(data, "v2") is None
    assert "targets/bob" in data.skipped


@pytest.mark.parametrize("role", ["root", "timestamp", "snapshot", "targets"])
def test_expired_metadata_is_denied(repo, load, role):
    repo.role(role).expires = NOW - DAY
    if role == "root":
        repo.rebuild_root()

    with pytest.raises(ExpiredMetadataError, match=f"^{role} metadata expired"):
        load(repo.publish())


def test_metadata_is_denied_once_the_clock_passes_its_expiry(repo, load):
    files = repo.publish()
    load(files, now=NOW)

    with pytest.raises(ExpiredMetadataError, match="timestamp metadata expired"):
        load(files, now=NOW + datetime.timedelta(days=15))


# --- rollback ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets", "targets/releases"])
def test_a_version_lower_than_one_already_trusted_is_denied(repo, load, role):
    old = repo.publish()
    repo.role(role).version += 1
    state = GunState()
    load(repo.publish(), state=state)

    with pytest.raises(RollbackError, match=f"{role} of {GUN} is version 1, older than version 2"):
        load(old, state=GunState(seen=state.seen))


def test_an_older_root_than_the_trusted_one_is_denied(repo, load):
    files = repo.publish()

    with pytest.raises(RollbackError, match=r"root of .* version 1, older than version 3"):
        load(files, seen={"root": 3})


def test_the_same_versions_again_are_accepted(repo, load):
    files = repo.publish()
    state = GunState()
    load(files, state=state)

    assert find_tag(load(files, state=GunState(seen=state.seen)), "v1") is not None


# --- root rotation -----------------------------------------------------------------


def test_root_rotation_signed_by_old_and_new_keys_is_followed(repo, load):
    state = GunState()
    load(repo.publish(), state=state)
    repo.rotate_root([make_key("ecdsa-x509")])
    repo.rotate_root([make_key("rsa-x509")])

    data = load(repo.publish(bump=True), state=state)

    assert data.root.version == 3 and state.seen["root"] == 3


def test_root_rotation_not_signed_by_the_old_root_is_denied(repo, load):
    state = GunState()
    load(repo.publish(), state=state)
    new = make_key("ecdsa-x509")
    repo.rotate_root([new], signers=[new])

    with pytest.raises(SignatureError, match=r"0 valid signature.*keys of the previous root"):
        load(repo.publish(bump=True), state=state)


def test_root_rotation_not_signed_by_the_new_root_keys_is_denied(repo, load):
    state = GunState()
    load(repo.publish(), state=state)
    old = repo.root.keys
    repo.rotate_root([make_key("ecdsa-x509")], signers=old)

    with pytest.raises(SignatureError, match="keys of the new root"):
        load(repo.publish(bump=True), state=state)


def test_root_rotation_needs_every_intermediate_version(repo, load):
    state = GunState()
    load(repo.publish(), state=state)
    repo.rotate_root([make_key("ecdsa-x509")])
    repo.rotate_root([make_key("ecdsa-x509")])
    files = repo.publish(bump=True)
    del files["2.root"]

    with pytest.raises(TrustError, match=r"root version 2 .* is not served"):
        load(files, state=state)


def test_a_rotated_root_that_skips_a_version_is_denied(repo):
    trusted = TrustedMetadataSet(GUN, repo.root_bytes, now=NOW, seen={})
    repo.rotate_root([make_key("ecdsa-x509")])
    v3 = repo.rotate_root([make_key("ecdsa-x509")])

    with pytest.raises(RollbackError, match="expected version 2, got 3"):
        trusted.update_root(v3)


def test_a_server_root_of_the_trusted_version_with_other_content_is_denied(repo, load):
    state = GunState()
    load(repo.publish(), state=state)
    repo.root.expires += DAY  # same version, different content: not a rotation
    repo.rebuild_root()

    with pytest.raises(TrustError, match=r"serves root version 1 .* version 1 is trusted"):
        load(repo.publish(bump=True), state=state)


def test_a_snapshot_recording_another_root_than_the_trusted_one_is_denied(repo):
    trusted_root = repo.root_bytes
    repo.root.expires += DAY
    repo.rebuild_root()
    files = repo.publish()
    trusted = TrustedMetadataSet(GUN, trusted_root, now=NOW, seen={})
    trusted.update_timestamp(files["timestamp"])

    with pytest.raises(HashMismatchError, match=r"trusted root of .* \(per snapshot\)"):
        trusted.update_snapshot(files["snapshot"])


# --- pinned roots ------------------------------------------------------------------


def test_a_root_signed_by_the_pinned_key_id_is_trusted(repo, load):
    pin = RootPin(frozenset({repo.root.keys[0].keyid}))

    assert find_tag(load(repo.publish(), pin=pin), "v1") is not None


def test_a_root_not_signed_by_the_pinned_key_is_denied(repo, load):
    pin = RootPin(frozenset({"0" * 64}), description="0000")

    with pytest.raises(SignatureError, match="not signed by the pinned root 0000"):
        load(repo.publish(), pin=pin)


def test_a_pinned_certificate_authority_anchors_roots_it_issued(load):
    from cryptography import x509

    sim = RepositorySimulator()
    sim.delegate("targets/releases")
    root_cert = x509.load_pem_x509_certificate(base64.b64decode(sim.root.keys[0].public_b64))
    pin = RootPin(certificates=(root_cert,))

    assert load(sim.publish(), pin=pin).root.version == 1


def _ca_and_root_key(common_name: str, *, ca: bool = True):
    """A CA certificate, and a root key whose certificate that CA issued for `common_name`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    day = datetime.timedelta(days=1)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("signing CA"))
        .issuer_name(name("signing CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - day)
        .not_valid_after(NOW + 365 * day)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - day)
        .not_valid_after(NOW + 365 * day)
        .sign(ca_key, hashes.SHA256())
    )
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    return ca_cert, TestKey("ecdsa-x509", leaf_key, base64.b64encode(pem).decode())


def test_a_pinned_ca_anchors_a_root_whose_certificate_it_issued_for_this_repository(load):
    ca_cert, root_key = _ca_and_root_key(GUN)
    sim = RepositorySimulator()
    sim.root.keys = [root_key]
    sim.rebuild_root()

    assert load(sim.publish(), pin=RootPin(certificates=(ca_cert,))).root.version == 1


@pytest.mark.parametrize(
    ("common_name", "ca"),
    [("registry.example.com/attacker/own", True), (GUN, False)],
    ids=["issued-for-another-repository", "anchor-is-not-a-ca"],
)
def test_a_pinned_ca_does_not_anchor_roots_for_other_repositories(load, common_name, ca):
    # Anyone holding a certificate the CA issued for their own repository could
    # otherwise sign a root for every repository on the server.
    ca_cert, root_key = _ca_and_root_key(common_name, ca=ca)
    sim = RepositorySimulator()
    sim.root.keys = [root_key]
    sim.rebuild_root()

    with pytest.raises(SignatureError, match="not signed by the pinned root"):
        load(sim.publish(), pin=RootPin(certificates=(ca_cert,)))


# --- order --------------------------------------------------------------------------


IN_ORDER = ("timestamp", "snapshot", "targets")


@pytest.mark.parametrize(
    ("loaded", "misuse", "message"),
    [
        (0, lambda t, f: t.update_snapshot(f["snapshot"]), "after timestamp"),
        (1, lambda t, f: t.update_targets(f["targets"]), "after snapshot"),
        (2, lambda t, f: t.update_delegated_targets(RELEASES, f[RELEASES]), "after its parent"),
        (1, lambda t, f: t.update_root(f["root"]), "before timestamp is loaded"),
        (1, lambda t, f: t.update_timestamp(f["timestamp"]), "timestamp is already loaded"),
        (2, lambda t, f: t.update_snapshot(f["snapshot"]), "loaded once"),
        (3, lambda t, f: t.update_targets(f["targets"]), "targets is already loaded"),
        (3, lambda t, f: t.skip("targets", "expired"), "cannot be skipped"),
        (2, lambda t, f: t.result(), "incomplete"),
    ],
    ids=[
        "snapshot-before-timestamp",
        "targets-before-snapshot",
        "delegation-before-its-parent",
        "root-rotation-after-timestamp",
        "timestamp-twice",
        "snapshot-twice",
        "targets-twice",
        "skipping-targets",
        "result-before-targets",
    ],
)
def test_a_step_out_of_order_is_a_programming_error_not_a_deny_reason(
    repo, loaded, misuse, message
):
    files = repo.publish()
    trusted = TrustedMetadataSet(GUN, files["root"], now=NOW, seen={})
    for role in IN_ORDER[:loaded]:
        getattr(trusted, f"update_{role}")(files[role])

    with pytest.raises(StateMachineMisuse, match=message) as raised:
        misuse(trusted, files)
    assert not isinstance(raised.value, VerificationError)


def test_a_role_the_parent_does_not_delegate_is_refused(repo):
    files = repo.publish()
    trusted = TrustedMetadataSet(GUN, files["root"], now=NOW, seen={})
    trusted.update_timestamp(files["timestamp"])
    trusted.update_snapshot(files["snapshot"])
    trusted.update_targets(files["targets"])

    with pytest.raises(TrustError, match="does not delegate to targets/evil"):
        trusted.update_delegated_targets("targets/evil", resign(files["targets/releases"], []))


def test_a_document_of_the_wrong_type_is_refused(repo, load):
    files = repo.publish()
    files["root"] = files["timestamp"]

    with pytest.raises(MetadataError, match="_type 'Timestamp', expected 'Root'"):
        load(files)


def test_a_key_whose_id_does_not_match_is_refused(repo, load):
    files = repo.publish()
    document = json.loads(files["root"])
    keys = document["signed"]["keys"]
    _keyid, key = next(iter(keys.items()))
    keys["f" * 64] = key
    files["root"] = json.dumps(document).encode()

    with pytest.raises(MetadataError, match="is not the ID of the key"):
        load(files)
