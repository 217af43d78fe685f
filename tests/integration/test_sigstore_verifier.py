"""SigstoreVerifier against real cosign-made signatures in real registries, one behaviour each.

Every signature here is made by the real cosign (keys it generated or imported, leaves of the
Fulcio stand-in, entries of the Rekor stand-in, tokens of the real timestamp-server) and put
where cosign puts it: the tag schema on Debian's docker-registry and on go-containerregistry's
registry, Sigstore bundles and legacy signatures as OCI referrers on the latter, another
repository (COSIGN_REPOSITORY). Tampering is done with cosign too where it can (`attach
signature` of a payload it did not sign, `attach attestation` of another image's envelope,
`copy` to another repository); what no registry would serve comes from a small TLS server of
the test. Each deny asserts the message names its cause.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from portieris_webhook.kits.nesting import MAX_DEPTH
from portieris_webhook.registry.client import MAX_MANIFEST_BYTES
from portieris_webhook.registry.oci import MAX_LAYERS, MAX_REFERRER_PAGES, MAX_REFERRERS

from tests.fixtures.cosign import Cosign, KeyPair, ReferrersRegistry
from tests.fixtures.plugin import ImageFactory
from tests.fixtures.procs import free_port
from tests.fixtures.registry import PushedImage, Registry
from tests.fixtures.sigstore_helpers import (
    attach_attestation_of,
    attach_signature,
    copy_signed,
    decide_sigstore,
    detached_signature,
    key_authority,
    keyless_authority,
    sigstore_policy,
    tamper,
)
from tests.fixtures.sigstore_pki import (
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
from tests.fixtures.simple_helpers import NAMESPACE, pull_secret, secret, serve, server_ssl_context

pytestmark = pytest.mark.integration

ALICE = "alice@example.com"
ISSUER = "https://oidc.portieris.test"
PREDICATE_TYPE = "https://portieris.test/predicate/scan/v1"
OTHER_PREDICATE_TYPE = "https://portieris.test/predicate/other/v1"
MINUTES = datetime.timedelta(minutes=1)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLE_SIGNING_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# -- fixtures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    signer: KeyPair
    stranger: KeyPair
    p384: KeyPair
    rsa: KeyPair


@pytest.fixture(scope="module")
def keys(cosign: Cosign, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    made = tmp_path_factory.mktemp("verifier-keys")
    return Keys(
        cosign.generate_key_pair(made / "signer"),
        cosign.generate_key_pair(made / "stranger"),
        cosign.generate_key_pair(made / "p384", "ecdsa-p384"),
        cosign.generate_key_pair(made / "rsa", "rsa-3072"),
    )


@pytest.fixture(params=["registry", "referrers_registry"])
def images(request: pytest.FixtureRequest) -> ImageFactory:
    """Images on the Debian docker-registry, then on the referrers registry."""
    return ImageFactory(request.getfixturevalue(request.param), request.node.name)


@pytest.fixture
def predicate(tmp_path: Path) -> Path:
    path = tmp_path / "predicate.json"
    path.write_text(json.dumps({"scanner": "portieris-tests", "findings": 0}))
    return path


@pytest.fixture
def alice_leaf(fulcio_ca: FulcioCA) -> FulcioLeaf:
    return fulcio_ca.issue(ALICE, ISSUER)


@pytest.fixture
def expired_leaf(fulcio_ca: FulcioCA) -> FulcioLeaf:
    """Valid from 20 to 10 minutes ago: expired by the time anything signs with it."""
    return fulcio_ca.issue(
        ALICE, ISSUER, not_before=now() - 20 * MINUTES, not_after=now() - 10 * MINUTES
    )


def keyed(pair: KeyPair, **extra: Any) -> dict[str, Any]:
    return sigstore_policy(key_authority(pair.public_pem, **extra))


def logged_keyless(
    fulcio_ca: FulcioCA, log: TransparencyLog, subject: str = ALICE, issuer: str = ISSUER
) -> dict[str, Any]:
    """A keyless policy for one exact identity, proven by the Rekor stand-in's SET."""
    identity = {"subject": subject, "issuer": issuer}
    return sigstore_policy(
        keyless_authority(fulcio_ca.chain_pem, identity, log_pem=log.public_key_pem)
    )


def stamped_keyless(fulcio_ca: FulcioCA, tsa: TimestampAuthority) -> dict[str, Any]:
    """A keyless policy for alice, proven by the real timestamp authority only."""
    identity = {"subject": ALICE, "issuer": ISSUER}
    return sigstore_policy(keyless_authority(fulcio_ca.chain_pem, identity, tsa_pem=tsa.chain_pem))


def reasons(decision: Any) -> str:
    return " ".join(decision.reasons)


def assert_allowed_and_pinned(decision: Any, image: PushedImage) -> None:
    assert decision.allowed, decision.reasons
    assert decision.digest == image.digest
    assert decision.patched_image == image.digest_ref


def assert_denied(decision: Any, *fragments: str) -> None:
    assert not decision.allowed, decision
    text = reasons(decision)
    for fragment in fragments:
        assert fragment in text, text


def has_tag(registry: Registry, repo: str, tag: str) -> bool:
    """Whether `repo:tag` exists (a manifest HEAD through the registry's API)."""
    request = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
    )
    context = ssl.create_default_context(cafile=str(registry.ca_file))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


# -- allowed: each place cosign writes, each kind of key ---------------------------------------


async def test_keyed_tag_schema_signature_is_allowed_and_pinned(
    cosign, keys, images, test_ca_file
) -> None:
    image = images("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_allowed_and_pinned(decision, image)
    assert has_tag(images.registry, image.repo, f"sha256-{image.hex}.sig")


async def test_keyed_bundle_found_only_as_a_referrer_is_allowed(
    cosign, keys, referrers_registry: ReferrersRegistry, referrers_images, test_ca_file
) -> None:
    image = referrers_images("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path, new_bundle_format=True)

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_allowed_and_pinned(decision, image)
    assert not has_tag(referrers_registry, image.repo, f"sha256-{image.hex}.sig")
    [listed] = referrers_registry.referrers(image)["manifests"]
    assert listed["mediaType"] == OCI_MANIFEST


async def test_legacy_signature_found_only_as_a_referrer_is_allowed(
    cosign, keys, referrers_registry: ReferrersRegistry, referrers_images, test_ca_file
) -> None:
    image = referrers_images("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path, referrers=True)

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_allowed_and_pinned(decision, image)
    assert not has_tag(referrers_registry, image.repo, f"sha256-{image.hex}.sig")
    [listed] = referrers_registry.referrers(image)["manifests"]
    assert listed["artifactType"] == "application/vnd.dev.cosign.artifact.sig.v1+json"


@pytest.mark.parametrize("form", ["bundle", "legacy"])
async def test_referrer_on_a_registry_without_the_api_is_found_by_the_referrers_tag(
    cosign, keys, registry, image_factory, test_ca_file, form
) -> None:
    """Debian's docker-registry has no referrers API: cosign then lists its referrer in the
    index tagged `sha256-<hex>` (the OCI 1.1 fallback), and so do we read it."""
    image = image_factory("v1")
    if form == "bundle":
        cosign.sign(image.digest_ref, keys.signer.private_path, new_bundle_format=True)
    else:
        cosign.sign(image.digest_ref, keys.signer.private_path, referrers=True)

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_allowed_and_pinned(decision, image)
    assert not has_tag(registry, image.repo, f"sha256-{image.hex}.sig")
    [listed] = registry.inspect(f"{image.repo}:sha256-{image.hex}", raw=True)["manifests"]
    assert listed["mediaType"] == OCI_MANIFEST


async def test_key_from_a_secret_is_allowed(cosign, keys, image_factory, test_ca_file) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)
    key_secret = secret("cosign-key", {"cosign.pub": keys.signer.public_pem, "other": "x"})
    authority = {
        "name": "from-secret",
        "key": {"secretRef": {"name": "cosign-key", "key": "cosign.pub"}},
        "ctlog": {"enabled": False},
    }

    decision = await decide_sigstore(
        test_ca_file, sigstore_policy(authority), image.ref, key_secret
    )

    assert_allowed_and_pinned(decision, image)


async def test_key_from_a_missing_secret_is_denied_naming_it(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)
    authority = {"key": {"secretRef": {"name": "no-such-key"}}, "ctlog": {"enabled": False}}

    decision = await decide_sigstore(test_ca_file, sigstore_policy(authority), image.ref)

    assert_denied(decision, f"{NAMESPACE}/no-such-key")


async def test_p384_key_signature_is_allowed_with_its_hash_algorithm(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.p384.private_path)  # cosign hashes with SHA-384
    policy = sigstore_policy(
        {
            "name": "p384",
            "key": {"data": keys.p384.public_pem.decode(), "hashAlgorithm": "sha384"},
            "ctlog": {"enabled": False},
        }
    )

    assert_allowed_and_pinned(await decide_sigstore(test_ca_file, policy, image.ref), image)
    assert_denied(
        await decide_sigstore(test_ca_file, keyed(keys.p384), image.ref),  # sha256 assumed
        "does not verify with the authority's key",
    )


async def test_rsa_key_signature_is_allowed(cosign, keys, image_factory, test_ca_file) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.rsa.private_path)

    decision = await decide_sigstore(test_ca_file, keyed(keys.rsa), image.ref)

    assert_allowed_and_pinned(decision, image)


async def test_keyed_signature_with_a_set_is_allowed(
    cosign, keys, transparency_log, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    sign(cosign, image.digest_ref, keyed_signer(keys.signer), rekor=transparency_log)
    policy = keyed(
        keys.signer, ctlog={"publicKey": {"data": transparency_log.public_key_pem.decode()}}
    )

    assert_allowed_and_pinned(await decide_sigstore(test_ca_file, policy, image.ref), image)


async def test_keyed_signature_without_a_log_entry_is_denied_when_a_log_is_required(
    cosign, keys, transparency_log, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)
    policy = keyed(
        keys.signer, ctlog={"publicKey": {"data": transparency_log.public_key_pem.decode()}}
    )

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_denied(decision, "carries no transparency log entry")


async def test_keyless_signature_with_a_set_is_allowed(
    cosign, fulcio_ca, transparency_log, image_factory, alice_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log)

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_allowed_and_pinned(decision, image)


async def test_keyless_signature_with_a_tsa_timestamp_is_allowed(
    cosign, fulcio_ca, timestamp_authority, image_factory, alice_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, alice_leaf, tsa=timestamp_authority)

    decision = await decide_sigstore(
        test_ca_file, stamped_keyless(fulcio_ca, timestamp_authority), image.ref
    )

    assert_allowed_and_pinned(decision, image)


async def test_keyless_expired_leaf_is_allowed_when_the_log_saw_it_while_valid(
    cosign, fulcio_ca, transparency_log, image_factory, expired_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    entry = EntryOptions(integrated_time=now() - 15 * MINUTES)
    sign_keyless(cosign, image.digest_ref, expired_leaf, rekor=transparency_log, entry=entry)

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_allowed_and_pinned(decision, image)


async def test_keyed_attestation_required_and_present_is_allowed(
    cosign, keys, images, predicate, test_ca_file
) -> None:
    image = images("v1")
    cosign.attest(image.digest_ref, keys.signer.private_path, predicate, PREDICATE_TYPE)
    wanted = [{"name": "scan", "predicateType": PREDICATE_TYPE}]

    decision = await decide_sigstore(
        test_ca_file, keyed(keys.signer, attestations=wanted), image.ref
    )

    assert_allowed_and_pinned(decision, image)


async def test_keyed_attestation_bundle_found_as_a_referrer_is_allowed(
    cosign, keys, referrers_images, predicate, test_ca_file
) -> None:
    image = referrers_images("v1")
    cosign.attest(
        image.digest_ref,
        keys.signer.private_path,
        predicate,
        PREDICATE_TYPE,
        new_bundle_format=True,
    )
    wanted = [{"name": "scan", "predicateType": PREDICATE_TYPE}]

    decision = await decide_sigstore(
        test_ca_file, keyed(keys.signer, attestations=wanted), image.ref
    )

    assert_allowed_and_pinned(decision, image)


async def test_keyless_attestation_required_and_present_is_allowed(
    cosign, fulcio_ca, transparency_log, image_factory, alice_leaf, predicate, test_ca_file
) -> None:
    image = image_factory("v1")
    attest_keyless(
        cosign, image.digest_ref, alice_leaf, predicate, PREDICATE_TYPE, rekor=transparency_log
    )
    policy = logged_keyless(fulcio_ca, transparency_log)
    policy["sigstore"]["authorities"][0]["attestations"] = [{"predicateType": PREDICATE_TYPE}]

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_allowed_and_pinned(decision, image)


async def test_required_attestation_missing_is_denied_naming_the_type(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)  # a signature, no attestation
    wanted = [{"name": "scan", "predicateType": PREDICATE_TYPE}]

    decision = await decide_sigstore(
        test_ca_file, keyed(keys.signer, attestations=wanted), image.ref
    )

    assert_denied(decision, f"no verified attestation of type {PREDICATE_TYPE}")


async def test_signatures_in_another_repository_are_read_from_the_source(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    elsewhere = f"{image.host}/{image_factory.new_repo('signatures')}"
    cosign.sign(image.digest_ref, keys.signer.private_path, repository=elsewhere)

    with_source = keyed(keys.signer, source=[{"oci": elsewhere}])
    allowed = await decide_sigstore(test_ca_file, with_source, image.ref)
    without = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_allowed_and_pinned(allowed, image)
    assert_denied(without, "no signature found")


@pytest.fixture
def auth_cosign(cosign: Cosign, auth_registry: Registry, tmp_path: Path) -> Cosign:
    """cosign logged in to the authenticating registry (a docker config of its own)."""
    user, password = auth_registry.credentials or ("", "")
    config = tmp_path / "docker"
    config.mkdir()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": token}}})
    )
    clone = copy.copy(cosign)
    clone.env = {**cosign.env, "DOCKER_CONFIG": str(config)}
    return clone


async def test_source_in_a_private_registry_is_read_with_the_signature_pull_secrets(
    auth_cosign, keys, auth_registry, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    elsewhere = f"{auth_registry.host}/signatures/private"
    auth_cosign.sign(image.digest_ref, keys.signer.private_path, repository=elsewhere)
    user, password = auth_registry.credentials or ("", "")
    creds = pull_secret("signature-pull", auth_registry.host, user, password)
    source = {"oci": elsewhere, "signaturePullSecrets": [{"name": "signature-pull"}]}

    with_secret = await decide_sigstore(
        test_ca_file, keyed(keys.signer, source=[source]), image.ref, creds
    )
    without = await decide_sigstore(
        test_ca_file, keyed(keys.signer, source=[{"oci": elsewhere}]), image.ref, creds
    )

    assert_allowed_and_pinned(with_secret, image)
    assert_denied(without, "signatures/private", "refused access (HTTP 401)")


async def test_mutate_image_false_allows_without_a_patch(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)
    policy = {**keyed(keys.signer), "mutateImage": False}

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert decision.allowed, decision.reasons
    assert decision.digest == image.digest
    assert decision.patched_image is None


async def test_one_satisfied_authority_of_several_is_enough(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)
    policy = sigstore_policy(
        key_authority(keys.stranger.public_pem, name="stranger"),
        key_authority(keys.signer.public_pem, name="signer"),
    )

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_allowed_and_pinned(decision, image)
    assert "authority signer: satisfied" in reasons(decision)


async def test_one_good_signature_among_others_is_enough(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.stranger.private_path)
    cosign.sign(image.digest_ref, keys.signer.private_path)  # a second layer of the .sig

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_allowed_and_pinned(decision, image)


# -- must fail: signatures ------------------------------------------------------------------


async def test_signature_by_another_key_is_denied(cosign, keys, images, test_ca_file) -> None:
    image = images("v1")
    cosign.sign(image.digest_ref, keys.stranger.private_path)

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_denied(decision, "does not verify with the authority's key", image.digest)
    assert not cosign.verify(image.digest_ref, key=keys.signer.public_path)


async def test_unsigned_image_is_denied_naming_no_signature(
    keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_denied(decision, "no signature found", image.digest)


async def test_tampered_payload_is_denied(
    cosign, keys, image_factory, test_ca_file, tmp_path
) -> None:
    image = image_factory("v1")
    payload, signature = detached_signature(cosign, image, keys.signer.private_path, tmp_path)
    tamper(payload)
    attach_signature(cosign, image, payload, signature)  # cosign attaches what it is given

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_denied(decision, "the signature does not verify with the authority's key")
    assert not cosign.verify(image.digest_ref, key=keys.signer.public_path)


async def test_payload_naming_another_digest_is_denied(
    cosign, keys, image_factory, test_ca_file, tmp_path
) -> None:
    signed, image = image_factory("signed"), image_factory("v1")
    payload, signature = detached_signature(cosign, signed, keys.signer.private_path, tmp_path)
    attach_signature(cosign, image, payload, signature)  # signed's signature on image

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), image.ref)

    assert_denied(decision, f"signs {signed.digest}, not {image.digest}")
    assert not cosign.verify(image.digest_ref, key=keys.signer.public_path)


async def test_signature_copied_from_another_repository_is_denied(
    cosign, keys, image_factory, test_ca_file
) -> None:
    """`cosign copy` carries the signature along; its payload still names the repository
    it was made for. cosign itself accepts it (it compares only the digest): we do not."""
    original = image_factory("v1")
    cosign.sign(original.digest_ref, keys.signer.private_path)
    copied = copy_signed(cosign, original, image_factory.new_repo("copied"))

    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), copied.ref)
    at_home = await decide_sigstore(test_ca_file, keyed(keys.signer), original.ref)

    assert_denied(decision, f"signs repository {original.name}, not {copied.name}")
    assert at_home.allowed, at_home.reasons
    assert cosign.verify(copied.digest_ref, key=keys.signer.public_path)  # the divergence


# -- must fail: keyless certificates ------------------------------------------------------------


async def test_certificate_from_an_untrusted_root_is_denied(
    cosign, fulcio_ca, transparency_log, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    stranger = FulcioCA.create("another fulcio").issue(ALICE, ISSUER)
    sign_keyless(cosign, image.digest_ref, stranger, rekor=transparency_log)

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_denied(decision, "does not chain to the configured roots")


async def test_other_identity_is_denied_naming_the_identity_it_saw(
    cosign, fulcio_ca, transparency_log, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    mallory = fulcio_ca.issue("mallory@example.com", ISSUER)
    sign_keyless(cosign, image.digest_ref, mallory, rekor=transparency_log)

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_denied(decision, "signed by mallory@example.com", "not an accepted identity")


@pytest.mark.parametrize("field", ["subject", "issuer"])
async def test_identity_matching_only_an_unanchored_pattern_is_denied(
    cosign, fulcio_ca, fulcio_chain, transparency_log, image_factory, test_ca_file, field
) -> None:
    """A regular expression is matched against the whole string: `alice@example.com` does
    not accept `alice@example.com.evil.net`. cosign matches anywhere and accepts it (the
    documented divergence, asserted here)."""
    image = image_factory("v1")
    evil = {"subject": f"{ALICE}.evil.net", "issuer": ISSUER}
    if field == "issuer":
        evil = {"subject": ALICE, "issuer": f"{ISSUER}.evil.net"}
    leaf = fulcio_ca.issue(evil["subject"], evil["issuer"])
    sign_keyless(cosign, image.digest_ref, leaf, rekor=transparency_log)
    pattern = {
        "subjectRegExp" if field == "subject" else "subject": ALICE,
        "issuerRegExp" if field == "issuer" else "issuer": ISSUER,
    }
    policy = sigstore_policy(
        keyless_authority(fulcio_ca.chain_pem, pattern, log_pem=transparency_log.public_key_pem)
    )

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_denied(decision, f"signed by {evil['subject']} from issuer {evil['issuer']}")
    flags = keyless_flags(fulcio_chain, ALICE, ISSUER, tlog=True)
    if field == "subject":
        flags["certificate_identity_regexp"] = flags.pop("certificate_identity")
    else:
        flags["certificate_oidc_issuer_regexp"] = flags.pop("certificate_oidc_issuer")
    cosign_verdict = with_rekor_key(cosign, transparency_log).verify(image.digest_ref, **flags)
    assert cosign_verdict, cosign_verdict.output  # cosign accepts: the divergence


async def test_leaf_expired_before_the_log_saw_it_is_denied(
    cosign, fulcio_ca, transparency_log, image_factory, expired_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, expired_leaf, rekor=transparency_log)  # logged now

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_denied(
        decision, "does not chain to the configured roots at", "not valid at validation time"
    )


async def test_leaf_expired_at_the_timestamp_is_denied(
    cosign, fulcio_ca, timestamp_authority, image_factory, expired_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, expired_leaf, tsa=timestamp_authority)

    decision = await decide_sigstore(
        test_ca_file, stamped_keyless(fulcio_ca, timestamp_authority), image.ref
    )

    assert_denied(
        decision, "does not chain to the configured roots at", "not valid at validation time"
    )


async def test_keyless_signature_without_the_configured_proof_is_denied(
    cosign,
    fulcio_ca,
    transparency_log,
    timestamp_authority,
    image_factory,
    alice_leaf,
    test_ca_file,
) -> None:
    """A valid leaf signed with neither a log entry nor a timestamp: the current clock is
    never taken as the signing time, whichever proof the policy names."""
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, alice_leaf)

    by_log = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )
    by_stamp = await decide_sigstore(
        test_ca_file, stamped_keyless(fulcio_ca, timestamp_authority), image.ref
    )

    assert_denied(by_log, "carries no transparency log entry")
    assert_denied(by_stamp, "carries no RFC 3161 timestamp")


async def test_timestamp_from_another_authority_is_denied(
    cosign, fulcio_ca, timestamp_authority, image_factory, alice_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, alice_leaf, tsa=timestamp_authority)
    stranger = FulcioCA.create("not the TSA")
    identity = {"subject": ALICE, "issuer": ISSUER}
    policy = sigstore_policy(
        keyless_authority(fulcio_ca.chain_pem, identity, tsa_pem=stranger.chain_pem)
    )

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_denied(decision, "the RFC 3161 timestamp does not verify")


# -- must fail: the transparency log ----------------------------------------------------------


async def test_set_signed_by_another_key_is_denied(
    cosign, fulcio_ca, transparency_log, image_factory, alice_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    entry = EntryOptions(set_key=ec.generate_private_key(ec.SECP256R1()))
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log, entry=entry)

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_denied(decision, "signed entry timestamp does not verify")


async def test_entry_of_another_log_is_denied(
    cosign, fulcio_ca, image_factory, alice_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=TransparencyLog())
    trusted = TransparencyLog()

    decision = await decide_sigstore(test_ca_file, logged_keyless(fulcio_ca, trusted), image.ref)

    assert_denied(decision, "not the configured log")


async def test_entry_hashing_another_artifact_is_denied(
    cosign, fulcio_ca, transparency_log, image_factory, alice_leaf, test_ca_file
) -> None:
    image = image_factory("v1")
    entry = EntryOptions(payload=b'{"another": "artifact"}')
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log, entry=entry)

    decision = await decide_sigstore(
        test_ca_file, logged_keyless(fulcio_ca, transparency_log), image.ref
    )

    assert_denied(decision, "the log entry is for another payload")


async def test_genuine_entry_of_another_image_is_denied(
    cosign, fulcio_ca, transparency_log, image_factory, alice_leaf, test_ca_file
) -> None:
    other, image = image_factory("other"), image_factory("v1")
    elsewhere = sign_keyless(cosign, other.digest_ref, alice_leaf, rekor=transparency_log)
    entry = EntryOptions(replay=elsewhere.entry)
    sign_keyless(cosign, image.digest_ref, alice_leaf, rekor=transparency_log, entry=entry)
    policy = logged_keyless(fulcio_ca, transparency_log)

    assert (await decide_sigstore(test_ca_file, policy, other.ref)).allowed
    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_denied(decision, "the log entry is for another payload")


# -- must fail: attestations ------------------------------------------------------------------


async def test_attestation_of_another_predicate_type_is_denied(
    cosign, keys, image_factory, predicate, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.attest(image.digest_ref, keys.signer.private_path, predicate, OTHER_PREDICATE_TYPE)
    wanted = [{"name": "scan", "predicateType": PREDICATE_TYPE}]

    decision = await decide_sigstore(
        test_ca_file, keyed(keys.signer, attestations=wanted), image.ref
    )

    assert_denied(decision, f"no verified attestation of type {PREDICATE_TYPE}")


async def test_attestation_of_another_subject_is_denied(
    cosign, keys, image_factory, predicate, test_ca_file
) -> None:
    attested, image = image_factory("attested"), image_factory("v1")
    cosign.attest(attested.digest_ref, keys.signer.private_path, predicate, PREDICATE_TYPE)
    attach_attestation_of(cosign, attested, image)
    wanted = [{"name": "scan", "predicateType": PREDICATE_TYPE}]
    policy = keyed(keys.signer, attestations=wanted)

    assert (await decide_sigstore(test_ca_file, policy, attested.ref)).allowed
    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_denied(decision, f"attests to other subjects than {image.digest}")
    assert not cosign.verify_attestation(
        image.digest_ref, key=keys.signer.public_path, predicate_type=PREDICATE_TYPE
    )


async def test_keyless_attestation_with_a_set_of_another_key_is_denied(
    cosign, fulcio_ca, transparency_log, image_factory, alice_leaf, predicate, test_ca_file
) -> None:
    image = image_factory("v1")
    entry = EntryOptions(set_key=ec.generate_private_key(ec.SECP256R1()))
    attest_keyless(
        cosign,
        image.digest_ref,
        alice_leaf,
        predicate,
        PREDICATE_TYPE,
        rekor=transparency_log,
        entry=entry,
    )
    policy = logged_keyless(fulcio_ca, transparency_log)
    policy["sigstore"]["authorities"][0]["attestations"] = [{"predicateType": PREDICATE_TYPE}]

    decision = await decide_sigstore(test_ca_file, policy, image.ref)

    assert_denied(decision, "signed entry timestamp does not verify")


# -- must fail: what a registry answers ---------------------------------------------------------


class HostileRegistry:
    """A TLS registry of the test: one image (`repo:v1`), and whatever the test makes it
    answer for the image's signature tag, its referrers and blobs."""

    def __init__(self, repo: str = "hostile/app") -> None:
        self.repo = repo
        self.image = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor("application/vnd.oci.image.config.v1+json", b"{}"),
                "layers": [],
            }
        ).encode()
        self.digest = "sha256:" + hashlib.sha256(self.image).hexdigest()
        self.signature_manifest: bytes | None = None
        self.referrers: Callable[[web.Request], web.Response] | None = None
        self.blobs: dict[str, bytes] = {}
        self.requests: list[str] = []

    @property
    def signature_tag(self) -> str:
        return self.digest.replace(":", "-") + ".sig"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/", self.base)
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self.manifest)
        app.router.add_get("/v2/{repo:.+}/referrers/{digest}", self.referrer_list)
        app.router.add_get("/v2/{repo:.+}/blobs/{digest}", self.blob)
        return app

    async def base(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def manifest(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        ref = request.match_info["ref"]
        if ref in ("v1", self.digest):
            return web.Response(body=self.image, content_type=OCI_MANIFEST)
        if ref == self.signature_tag and self.signature_manifest is not None:
            return web.Response(body=self.signature_manifest, content_type=OCI_MANIFEST)
        return web.Response(status=404)

    async def referrer_list(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if self.referrers is None:
            return web.json_response({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        return self.referrers(request)

    async def blob(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        body = self.blobs.get(request.match_info["digest"])
        return web.Response(status=404) if body is None else web.Response(body=body)


def descriptor(media_type: str, body: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
        "size": len(body),
        **extra,
    }


def signature_manifest(layers: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", b"{}"),
            "layers": layers,
            **extra,
        }
    ).encode()


def many_layers(count: int) -> bytes:
    layers = [
        descriptor(
            SIMPLE_SIGNING_LAYER,
            f"payload {i}".encode(),
            annotations={"dev.cosignproject.cosign/signature": "MEUCIQ=="},
        )
        for i in range(count)
    ]
    return signature_manifest(layers)


def deeply_nested(depth: int) -> bytes:
    nested: Any = "bottom"
    for _ in range(depth):
        nested = {"n": nested}
    layer = descriptor(SIMPLE_SIGNING_LAYER, b"{}")
    return signature_manifest([layer], annotations={"nested": json.dumps(nested)}, nested=nested)


def huge_manifest(size: int) -> bytes:
    layer = descriptor(SIMPLE_SIGNING_LAYER, b"{}", annotations={"padding": "x" * size})
    return signature_manifest([layer])


def many_referrers(count: int) -> Callable[[web.Request], web.Response]:
    entries = [
        descriptor(
            OCI_MANIFEST,
            f"referrer {i}".encode(),
            artifactType="application/vnd.dev.cosign.artifact.sig.v1+json",
        )
        for i in range(count)
    ]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return lambda _: web.json_response(index)


def nested_referrers(depth: int) -> Callable[[web.Request], web.Response]:
    nested: Any = []
    for _ in range(depth):
        nested = [nested]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "nested": nested}
    return lambda _: web.json_response(index)


def paged_referrers(per_page: int) -> Callable[[web.Request], web.Response]:
    """Pages of `per_page` referrers each, every one linking to the next."""

    def answer(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "0"))
        entries = [
            descriptor(OCI_MANIFEST, f"referrer {page}-{i}".encode()) for i in range(per_page)
        ]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        link = f'<{request.path}?page={page + 1}>; rel="next"'
        return web.json_response(index, headers={"Link": link})

    return answer


def endless_referrer_pages(request: web.Request) -> web.Response:
    """Every page lists one referrer and links to one more page."""
    page = int(request.query.get("page", "0"))
    entry = descriptor(OCI_MANIFEST, f"referrer {page}".encode())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    link = f'<{request.path}?page={page + 1}>; rel="next"'
    return web.json_response(index, headers={"Link": link})


@pytest.fixture
async def hostile(test_ca, tmp_path) -> AsyncIterator[tuple[HostileRegistry, str]]:
    fake = HostileRegistry()
    async with serve(fake.app(), server_ssl_context(test_ca, tmp_path)) as host:
        yield fake, host


HOSTILE_ANSWERS: Mapping[str, tuple[Callable[[HostileRegistry], None], str]] = {
    "signature-manifest-with-thousands-of-layers": (
        lambda fake: setattr(fake, "signature_manifest", many_layers(5000)),
        f"lists 5000 layers; at most {MAX_LAYERS} are read",
    ),
    "deeply-nested-signature-manifest": (
        lambda fake: setattr(fake, "signature_manifest", deeply_nested(5 * MAX_DEPTH)),
        f"deeper than {MAX_DEPTH}",
    ),
    "huge-signature-manifest": (
        lambda fake: setattr(fake, "signature_manifest", huge_manifest(5 * 1024 * 1024)),
        f"the answer is larger than {MAX_MANIFEST_BYTES} bytes",
    ),
    "referrers-listing-thousands": (
        lambda fake: setattr(fake, "referrers", many_referrers(5000)),
        f"lists 5000 manifests; at most {MAX_REFERRERS} are read",
    ),
    "deeply-nested-referrers-answer": (
        lambda fake: setattr(fake, "referrers", nested_referrers(5 * MAX_DEPTH)),
        f"referrers of {HostileRegistry().digest} is nested deeper than {MAX_DEPTH}",
    ),
    "referrers-over-the-limit-across-pages": (
        lambda fake: setattr(fake, "referrers", paged_referrers(100)),
        f"more than {MAX_REFERRERS} referrers; at most {MAX_REFERRERS} are read",
    ),
    "referrers-paginated-without-end": (
        lambda fake: setattr(fake, "referrers", endless_referrer_pages),
        f"more than {MAX_REFERRER_PAGES} pages",
    ),
}


@pytest.mark.parametrize("answer", list(HOSTILE_ANSWERS))
async def test_oversized_registry_answer_is_denied_naming_the_limit(
    hostile, keys, test_ca_file, answer
) -> None:
    fake, host = hostile
    make, limit = HOSTILE_ANSWERS[answer]
    make(fake)

    started = time.monotonic()
    decision = await decide_sigstore(test_ca_file, keyed(keys.signer), f"{host}/{fake.repo}:v1")

    assert_denied(decision, limit)
    assert time.monotonic() - started < 10
    assert not [path for path in fake.requests if "/blobs/" in path]  # refused before reading


async def test_unreachable_registry_is_denied_within_the_budget_naming_it(
    keys, test_ca_file
) -> None:
    host = f"127.0.0.1:{free_port()}"  # nobody listens

    started = time.monotonic()
    decision = await decide_sigstore(
        test_ca_file, keyed(keys.signer), f"{host}/app:v1", verify_timeout=3.0
    )

    assert_denied(decision, host, "cannot reach server")
    assert time.monotonic() - started < 3.0 + 2.0  # the budget, and slack for a busy machine


async def test_silent_registry_is_denied_within_the_budget_naming_it(keys, test_ca_file) -> None:
    """A registry that accepts the connection and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        started = time.monotonic()
        decision = await decide_sigstore(
            test_ca_file, keyed(keys.signer), f"{host}/app:v1", verify_timeout=2.0
        )
        elapsed = time.monotonic() - started
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()

    assert_denied(decision, "did not finish within 2s", f"waiting for {host}")
    assert elapsed < 2.0 + 2.0  # the budget, and slack for a busy machine


async def test_unreachable_signature_source_is_denied_naming_it(
    cosign, keys, image_factory, test_ca_file
) -> None:
    image = image_factory("v1")
    cosign.sign(image.digest_ref, keys.signer.private_path)
    elsewhere = f"127.0.0.1:{free_port()}/signatures"

    decision = await decide_sigstore(
        test_ca_file, keyed(keys.signer, source=[{"oci": elsewhere}]), image.ref
    )

    assert_denied(decision, elsewhere.split("/")[0], "cannot reach server")
