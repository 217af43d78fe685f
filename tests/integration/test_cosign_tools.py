"""The sigstore fixtures work: real cosign signs where it is told, and both oracles judge.

Each placement cosign knows (the tag schema on both registries, bundles and legacy signatures
as OCI referrers, another repository) is signed with one key and judged with it and with
another; policy-controller's tester must agree with cosign where it can read the placement.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.cosign import (
    BUNDLE_MEDIA_TYPE,
    SIGNING_DIGEST,
    Cosign,
    KeyAlgorithm,
    KeyPair,
    PolicyTester,
    ReferrersRegistry,
    ToolError,
    keyed_policy,
)
from tests.fixtures.plugin import ImageFactory
from tests.fixtures.procs import free_port

pytestmark = pytest.mark.integration

PREDICATE_TYPE = "https://portieris.example/test-predicate/v1"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


@pytest.fixture(scope="module")
def keys(cosign: Cosign, tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair]:
    """The signer's key pair and someone else's."""
    return (
        cosign.generate_key_pair(tmp_path_factory.mktemp("signer")),
        cosign.generate_key_pair(tmp_path_factory.mktemp("stranger")),
    )


@pytest.fixture
def predicate(tmp_path: Path) -> Path:
    path = tmp_path / "predicate.json"
    path.write_text(json.dumps({"checked-by": "portieris tests"}))
    return path


@pytest.fixture(params=["registry", "referrers_registry"])
def images(request: pytest.FixtureRequest) -> ImageFactory:
    """Images on the Debian docker-registry, then on the referrers registry."""
    return ImageFactory(request.getfixturevalue(request.param), request.node.name)


def test_referrers_registry_takes_skopeo_pushes(
    referrers_registry: ReferrersRegistry, referrers_images: ImageFactory
) -> None:
    image = referrers_images("v1")

    assert referrers_registry.digest_of(image.ref) == image.digest
    assert referrers_registry.referrers(image)["manifests"] == []


def test_tag_schema_signature_verifies_with_its_key_only(
    cosign: Cosign, keys: tuple[KeyPair, KeyPair], images: ImageFactory
) -> None:
    signer, stranger = keys
    image, unsigned = images("v1"), images("v1")

    cosign.sign(image.digest_ref, signer.private_path, annotations={"team": "a"})

    assert cosign.verify(image.digest_ref, key=signer.public_path)
    assert cosign.verify(image.digest_ref, key=signer.public_path, annotations={"team": "a"})
    assert not cosign.verify(image.digest_ref, key=signer.public_path, annotations={"team": "b"})
    assert not cosign.verify(image.digest_ref, key=stranger.public_path)
    assert not cosign.verify(unsigned.digest_ref, key=signer.public_path)
    assert images.registry.digest_of(f"{image.name}:sha256-{image.hex}.sig")


def test_bundle_is_a_referrer_and_verifies_with_its_key_only(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    referrers_registry: ReferrersRegistry,
    referrers_images: ImageFactory,
    policy_tester: PolicyTester,
) -> None:
    signer, stranger = keys
    image = referrers_images("v1")

    cosign.sign(image.digest_ref, signer.private_path, new_bundle_format=True)

    [listed] = referrers_registry.referrers(image)["manifests"]
    assert listed["artifactType"] == OCI_EMPTY  # the registry's deviation: the config's type
    manifest = json.loads(referrers_registry.manifest_bytes(f"{image.name}@{listed['digest']}"))
    assert manifest["artifactType"] == BUNDLE_MEDIA_TYPE
    assert referrers_registry.referrers(image, "application/x-none")["manifests"] == [listed]
    assert cosign.verify(image.digest_ref, key=signer.public_path, new_bundle_format=True)
    assert not cosign.verify(image.digest_ref, key=stranger.public_path, new_bundle_format=True)
    with pytest.raises(ToolError, match="trusted root is required"):  # cosign saw the bundle
        cosign.verify(image.digest_ref, key=signer.public_path)
    assert not policy_tester(keyed_policy(signer.public_pem), image.digest_ref)  # tags only


def test_legacy_signature_as_referrer_verifies_with_its_key_only(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    referrers_registry: ReferrersRegistry,
    referrers_images: ImageFactory,
    policy_tester: PolicyTester,
) -> None:
    signer, stranger = keys
    image = referrers_images("v1")

    cosign.sign(image.digest_ref, signer.private_path, referrers=True)

    [listed] = referrers_registry.referrers(image)["manifests"]
    assert listed["artifactType"] == COSIGN_SIG_ARTIFACT
    assert cosign.verify(image.digest_ref, key=signer.public_path, referrers=True)
    assert not cosign.verify(image.digest_ref, key=stranger.public_path, referrers=True)
    assert not cosign.verify(image.digest_ref, key=signer.public_path)  # not in the tag schema
    assert not policy_tester(keyed_policy(signer.public_pem), image.digest_ref)


def test_signature_in_another_repository(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    image_factory: ImageFactory,
    policy_tester: PolicyTester,
) -> None:
    signer, _ = keys
    image = image_factory("v1")
    elsewhere = f"{image.host}/{image_factory.new_repo('signatures')}"

    cosign.sign(image.digest_ref, signer.private_path, repository=elsewhere)

    assert cosign.verify(image.digest_ref, key=signer.public_path, repository=elsewhere)
    assert not cosign.verify(image.digest_ref, key=signer.public_path)
    policy = keyed_policy(signer.public_pem, repository=elsewhere)
    assert policy_tester(policy, image.digest_ref)
    assert not policy_tester(keyed_policy(signer.public_pem), image.digest_ref)


@pytest.mark.parametrize("algorithm", ["ecdsa-p384", "ecdsa-p521", "rsa-3072"])
def test_imported_keys_sign_and_verify(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    image_factory: ImageFactory,
    policy_tester: PolicyTester,
    algorithm: KeyAlgorithm,
    tmp_path: Path,
) -> None:
    pair = cosign.generate_key_pair(tmp_path, algorithm)
    image = image_factory("v1")
    digest = SIGNING_DIGEST.get(algorithm)

    cosign.sign(image.digest_ref, pair.private_path)

    assert cosign.verify(image.digest_ref, key=pair.public_path, signature_digest_algorithm=digest)
    assert not cosign.verify(image.digest_ref, key=keys[0].public_path)
    assert policy_tester(keyed_policy(pair.public_pem, hash_algorithm=digest), image.digest_ref)


def test_policy_tester_agrees_on_keyed_signatures(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    images: ImageFactory,
    policy_tester: PolicyTester,
) -> None:
    signer, stranger = keys
    image, unsigned = images("v1"), images("v1")

    cosign.sign(image.digest_ref, signer.private_path)

    assert policy_tester(keyed_policy(signer.public_pem), image.digest_ref)
    assert not policy_tester(keyed_policy(stranger.public_pem), image.digest_ref)
    assert not policy_tester(keyed_policy(signer.public_pem), unsigned.digest_ref)


def test_attestation_verifies_by_key_and_type(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    images: ImageFactory,
    predicate: Path,
    policy_tester: PolicyTester,
) -> None:
    signer, stranger = keys
    image = images("v1")

    cosign.attest(image.digest_ref, signer.private_path, predicate, PREDICATE_TYPE)

    verify = cosign.verify_attestation
    assert verify(image.digest_ref, key=signer.public_path, predicate_type=PREDICATE_TYPE)
    assert not verify(image.digest_ref, key=stranger.public_path, predicate_type=PREDICATE_TYPE)
    assert not verify(image.digest_ref, key=signer.public_path, predicate_type="https://other/v1")
    wanted = [{"name": "test", "predicateType": PREDICATE_TYPE}]
    assert policy_tester(keyed_policy(signer.public_pem, attestations=wanted), image.digest_ref)
    assert not policy_tester(
        keyed_policy(stranger.public_pem, attestations=wanted), image.digest_ref
    )


def test_attestation_bundle_is_a_referrer(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    referrers_registry: ReferrersRegistry,
    referrers_images: ImageFactory,
    predicate: Path,
) -> None:
    signer, stranger = keys
    image = referrers_images("v1")

    cosign.attest(
        image.digest_ref, signer.private_path, predicate, PREDICATE_TYPE, new_bundle_format=True
    )

    assert len(referrers_registry.referrers(image)["manifests"]) == 1
    for key, verified in ((signer, True), (stranger, False)):
        verdict = cosign.verify_attestation(
            image.digest_ref,
            key=key.public_path,
            predicate_type=PREDICATE_TYPE,
            new_bundle_format=True,
        )
        assert bool(verdict) is verified, verdict.output


def test_oracles_raise_when_the_tool_never_judged(
    cosign: Cosign,
    keys: tuple[KeyPair, KeyPair],
    policy_tester: PolicyTester,
    image_factory: ImageFactory,
) -> None:
    image = image_factory("v1")
    policy = keyed_policy(keys[0].public_pem)
    del policy["spec"]["images"]
    unreachable = f"127.0.0.1:{free_port()}/nothing@{image.digest}"

    with pytest.raises(ToolError):
        cosign.verify(image.digest_ref, key=keys[0].public_path, no_such_flag=True)
    with pytest.raises(ToolError):
        cosign.verify(unreachable, key=keys[0].public_path)
    with pytest.raises(ToolError):
        policy_tester(policy, image.digest_ref)
    with pytest.raises(ToolError, match="connection refused"):  # reported as "errors" by it
        policy_tester(keyed_policy(keys[0].public_pem), unreachable)
