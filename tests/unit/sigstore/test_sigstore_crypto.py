"""Keys and keyless certificates: the signatures cosign makes verify with the keys it signs
with, and a Fulcio-shaped certificate vouches for a signer only when it chains to the
configured roots, at the time signing is proven, for code signing."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from portieris_webhook.errors import VerificationError
from portieris_webhook.sigstore.certificates import (
    SignerIdentity,
    certificate_authority,
    leaf_key,
    load_der,
    signer_identity,
    verify_chain,
)
from portieris_webhook.sigstore.keys import (
    MAX_KEYS,
    key_id,
    load_public_keys,
    verify_signature,
)
from portieris_webhook.sigstore.timestamps import timestamp_chain, verified_time

from tests.unit.sigstore.material import (
    ISSUER,
    MINUTE,
    NOW,
    SIGNER,
    FulcioCA,
    TimestampAuthority,
    ec_key,
    public_der,
    public_pem,
    sign,
)

DATA = b'{"critical":{"type":"cosign container image signature"}}'

# -- keys ---------------------------------------------------------------------------------

KINDS = {
    "ecdsa-p256-sha256": (lambda: ec_key(ec.SECP256R1()), "sha256"),
    "ecdsa-p384-sha384": (lambda: ec_key(ec.SECP384R1()), "sha384"),
    "ecdsa-p384-sha256": (lambda: ec_key(ec.SECP384R1()), "sha256"),
    "rsa-2048-pkcs1v15-sha256": (lambda: rsa.generate_private_key(65537, 2048), "sha256"),
    "rsa-3072-pkcs1v15-sha512": (lambda: rsa.generate_private_key(65537, 3072), "sha512"),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, "sha256"),
}
HASHED = [k for k in KINDS if not k.startswith("ed25519")]


@pytest.fixture(scope="module", params=list(KINDS), ids=list(KINDS))
def signer(request):
    make, algorithm = KINDS[request.param]
    return make(), algorithm


def test_a_pem_public_key_loads(signer):
    key, _ = signer
    (loaded,) = load_public_keys(public_pem(key), "key")
    assert public_der(loaded) == public_der(key)


def test_a_signature_verifies_with_the_key_that_made_it(signer):
    key, algorithm = signer
    (loaded,) = load_public_keys(public_pem(key), "key")
    assert verify_signature(loaded, sign(key, DATA, algorithm), DATA, algorithm)


def test_a_signature_does_not_verify_over_other_bytes(signer):
    key, algorithm = signer
    (loaded,) = load_public_keys(public_pem(key), "key")
    assert not verify_signature(loaded, sign(key, DATA, algorithm), DATA + b" ", algorithm)


def another(key):
    """Another key of the same kind and size as `key`."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ec_key(key.curve)
    if isinstance(key, rsa.RSAPrivateKey):
        return rsa.generate_private_key(65537, key.key_size)
    return ed25519.Ed25519PrivateKey.generate()


def test_a_signature_does_not_verify_with_another_key(signer):
    key, algorithm = signer
    (other,) = load_public_keys(public_pem(another(key)), "key")
    assert not verify_signature(other, sign(key, DATA, algorithm), DATA, algorithm)


@pytest.mark.parametrize("kind", HASHED)
def test_a_signature_does_not_verify_with_another_hash_algorithm(kind):
    make, algorithm = KINDS[kind]
    key = make()
    other = "sha512" if algorithm != "sha512" else "sha256"
    (loaded,) = load_public_keys(public_pem(key), "key")
    assert not verify_signature(loaded, sign(key, DATA, algorithm), DATA, other)


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 64, b"\x30\x06\x02\x01\x01\x02\x01\x01"])
def test_a_malformed_signature_does_not_verify(garbage):
    (loaded,) = load_public_keys(public_pem(ec_key()), "key")
    assert not verify_signature(loaded, garbage, DATA, "sha256")


def test_every_public_key_of_a_pem_bundle_loads():
    keys = [ec_key(), ed25519.Ed25519PrivateKey.generate()]
    loaded = load_public_keys("".join(public_pem(k) for k in keys), "keys")
    assert [public_der(k) for k in loaded] == [public_der(k) for k in keys]


def test_a_key_id_is_the_sha256_of_the_key_s_der():
    key = ec_key()
    (loaded,) = load_public_keys(public_pem(key), "key")
    assert key_id(loaded) == hashlib.sha256(public_der(key)).digest()


def _corrupt_key_pem() -> str:
    lines = public_pem(ec_key()).splitlines()
    lines[1] = "A" * len(lines[1])
    return "\n".join(lines) + "\n"


def _unknown_algorithm_pem() -> str:
    # SubjectPublicKeyInfo { AlgorithmIdentifier { 1.2.3.4 }, BIT STRING 00 01 02 03 }
    der = bytes.fromhex("300d300506032a0304030400010203")
    body = base64.b64encode(der).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (public_pem(rsa.generate_private_key(65537, 1024)), "an RSA key of 1024 bits is too weak"),
        ("ecdsa-p256 MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", "holds no PEM public key"),
        ("", "holds no PEM public key"),
        (FulcioCA.create().pem(), "holds no PEM public key"),
        (_corrupt_key_pem(), "is not a usable public key"),
        (_unknown_algorithm_pem(), "is not a usable public key"),
        (public_pem(ec_key()) * (MAX_KEYS + 1), f"holds {MAX_KEYS + 1} public keys; at most {MAX_KEYS}"),
    ],
    ids=["rsa-1024", "not-pem", "empty", "certificates", "corrupt", "unknown-algorithm", "too-many"],
)  # fmt: skip
def test_a_key_that_cannot_be_trusted_is_refused(pem, message):
    with pytest.raises(VerificationError, match=message):
        load_public_keys(pem, "the key")


# -- keyless certificates -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> FulcioCA:
    return FulcioCA.create()


@pytest.fixture(scope="module")
def trusted(ca):
    return certificate_authority(ca.pem(), "ca-cert")


def test_a_fulcio_leaf_chains_to_the_configured_root_while_it_is_valid(ca, trusted):
    leaf = ca.leaf()
    verify_chain(leaf.certificate, (), trusted, NOW)


@pytest.mark.parametrize(
    "at",
    [NOW - MINUTE, NOW, NOW + 9 * MINUTE - datetime.timedelta(seconds=1)],
    ids=["first-second", "middle", "last-second"],
)
def test_a_leaf_chains_at_any_time_inside_its_validity(ca, trusted, at):
    verify_chain(
        ca.leaf(not_before=NOW - MINUTE, not_after=NOW + 9 * MINUTE).certificate, (), trusted, at
    )


@pytest.mark.parametrize(
    "at",
    [NOW - 2 * MINUTE, NOW + 10 * MINUTE, NOW + datetime.timedelta(days=1)],
    ids=["before", "just-after", "a-day-later"],
)
def test_a_leaf_does_not_chain_outside_its_validity(ca, trusted, at):
    leaf = ca.leaf(not_before=NOW - MINUTE, not_after=NOW + 9 * MINUTE)
    with pytest.raises(VerificationError, match="does not chain to the configured roots at"):
        verify_chain(leaf.certificate, (), trusted, at)


def test_the_refusal_names_the_time_it_checked(ca, trusted):
    at = NOW + datetime.timedelta(hours=3)
    with pytest.raises(VerificationError, match="at 2025-01-15T15:00:00Z"):
        verify_chain(ca.leaf().certificate, (), trusted, at)


def test_a_leaf_of_another_root_does_not_chain(ca, trusted):
    stranger = FulcioCA.create("another-sigstore")
    with pytest.raises(VerificationError, match="does not chain"):
        verify_chain(stranger.leaf().certificate, (), trusted, NOW)


def test_a_leaf_of_another_root_does_not_chain_even_carrying_its_intermediate(trusted):
    stranger = FulcioCA.create("another-sigstore")
    carried = (stranger.intermediate,)
    with pytest.raises(VerificationError, match="does not chain"):
        verify_chain(stranger.leaf().certificate, carried, trusted, NOW)


def test_the_signature_may_carry_the_intermediate_when_only_the_root_is_configured(ca):
    only_root = certificate_authority(ca.pem(intermediate=False), "ca-cert")
    verify_chain(ca.leaf().certificate, (ca.intermediate,), only_root, NOW)


def test_without_its_intermediate_a_leaf_does_not_chain_to_the_root_alone(ca):
    only_root = certificate_authority(ca.pem(intermediate=False), "ca-cert")
    with pytest.raises(VerificationError, match="does not chain"):
        verify_chain(ca.leaf().certificate, (), only_root, NOW)


@pytest.mark.parametrize(
    ("leaf_options", "message"),
    [
        ({"usages": [ExtendedKeyUsageOID.SERVER_AUTH]}, "not for code signing"),
        ({"usages": [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]}, "not for code signing"),
        ({"usages": []}, "lacks 2.5.29.37"),
        ({"digital_signature": False}, "not for code signing"),
    ],
    ids=["server-auth", "client-and-email", "no-eku", "no-digital-signature"],
)  # fmt: skip
def test_a_leaf_that_is_not_for_code_signing_is_refused(ca, trusted, leaf_options, message):
    with pytest.raises(VerificationError, match=message):
        verify_chain(ca.leaf(**leaf_options).certificate, (), trusted, NOW)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("not a certificate", "is not PEM certificates"),
        (
            FulcioCA.create().intermediate.public_bytes(serialization.Encoding.PEM).decode(),
            "holds no root",
        ),
    ],
    ids=["not-pem", "no-root"],
)
def test_a_certificate_authority_without_a_root_is_refused(pem, message):
    with pytest.raises(VerificationError, match=message):
        certificate_authority(pem, "ca-cert")


def test_a_certificate_authority_splits_roots_from_intermediates(ca):
    loaded = certificate_authority(ca.pem(), "ca-cert")
    assert (loaded.roots, loaded.intermediates) == ((ca.root,), (ca.intermediate,))


def test_a_leaf_s_key_is_the_key_it_signs_with(ca):
    leaf = ca.leaf()
    key = leaf_key(load_der(leaf.der, "leaf"))
    assert verify_signature(key, sign(leaf.key, DATA), DATA, "sha256")


def test_a_leaf_with_a_key_of_unknown_algorithm_is_refused(ca):
    der = ca.leaf().der
    ec_public_key = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
    strange = der.replace(ec_public_key, bytes.fromhex("2a8648ce3d0209"))
    with pytest.raises(VerificationError, match="key is not usable"):
        leaf_key(load_der(strange, "leaf"))


def test_bytes_that_are_not_a_certificate_are_refused():
    with pytest.raises(VerificationError, match="the signing certificate is not a certificate"):
        load_der(b"\x30\x03\x02\x01\x01", "the signing certificate")


# -- the identity a Fulcio certificate names ------------------------------------------------


@pytest.mark.parametrize(
    ("leaf_options", "identity"),
    [
        ({}, SignerIdentity(ISSUER, (SIGNER,))),
        ({"issuer": "https://v2.example.test", "issuer_v1": "https://v1.example.test"}, SignerIdentity("https://v2.example.test", (SIGNER,))),
        ({"issuer": None, "issuer_v1": "https://v1.example.test"}, SignerIdentity("https://v1.example.test", (SIGNER,))),
        ({"issuer": None, "issuer_v1": ""}, SignerIdentity("", (SIGNER,))),
        ({"issuer": "https://" + "long." * 40 + "example.test"}, SignerIdentity("https://" + "long." * 40 + "example.test", (SIGNER,))),
        ({"email": None, "uri": "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"}, SignerIdentity(ISSUER, ("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1",))),
        ({"email": "bob@example.com", "uri": "spiffe://cluster.local/ns/ci/sa/builder"}, SignerIdentity(ISSUER, ("bob@example.com", "spiffe://cluster.local/ns/ci/sa/builder"))),
        ({"email": None}, SignerIdentity(ISSUER, ())),
    ],
    ids=[
        "both-extensions", "v2-preferred", "v1-fallback", "no-issuer", "long-utf8-length",
        "uri-subject", "email-and-uri", "no-subject",
    ],
)  # fmt: skip
def test_the_signer_identity_is_the_issuer_extension_and_the_alternative_names(
    ca, leaf_options, identity
):
    assert signer_identity(ca.leaf(**leaf_options).certificate) == identity


def test_a_certificate_without_alternative_names_has_no_subject():
    key = ec_key()
    name = x509.Name([])
    bare = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name.from_rfc4514_string("CN=x"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + MINUTE)
        .sign(key, hashes.SHA256())
    )
    assert signer_identity(bare) == SignerIdentity("", ())


# -- RFC 3161 timestamps -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tsa() -> TimestampAuthority:
    return TimestampAuthority.create()


def test_a_timestamp_over_the_message_by_the_configured_authority_gives_its_time(tsa):
    at = NOW + 3 * MINUTE
    chain = timestamp_chain(tsa.pem(), "certChain")
    assert verified_time(tsa.stamp(DATA, at), DATA, chain) == at


def test_a_timestamp_over_another_message_is_refused(tsa):
    chain = timestamp_chain(tsa.pem(), "certChain")
    with pytest.raises(VerificationError, match="does not verify: Mismatch between messages"):
        verified_time(tsa.stamp(DATA + b" "), DATA, chain)


def test_a_timestamp_by_another_authority_is_refused(tsa):
    chain = timestamp_chain(TimestampAuthority.create("other").pem(), "certChain")
    with pytest.raises(VerificationError, match="the RFC 3161 timestamp does not verify"):
        verified_time(tsa.stamp(DATA), DATA, chain)


@pytest.mark.parametrize("response", [b"", b"\x30\x03\x02\x01\x00", b"not der"])
def test_bytes_that_are_not_a_timestamp_response_are_refused(tsa, response):
    chain = timestamp_chain(tsa.pem(), "certChain")
    with pytest.raises(VerificationError, match="the RFC 3161 timestamp cannot be read"):
        verified_time(response, DATA, chain)


def test_a_timestamp_chain_without_a_root_is_refused(tsa):
    leaf_only = tsa.leaf.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(VerificationError, match="holds no root"):
        timestamp_chain(leaf_only, "certChain")
