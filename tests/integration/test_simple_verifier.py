"""SimpleVerifier against real components: registry, lookaside store, gpg, and small test servers.

Each verification step has a test where it is the step that fails.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from portieris_webhook.verify.contract import ImageCheck, Verdict, Verifier

from tests.fixtures.gpg import GpgHome, policy_for, signed_by_requirement
from tests.fixtures.procs import free_port
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    ExtensionRegistry,
    alice_secret,
    atomic_payload,
    decide_with_policy,
    extension_entry,
    gpg_sign,
    pull_secret,
    secret,
    serve,
    server_ssl_context,
    signed_by,
)

pytestmark = pytest.mark.integration


def lookaside_policy(store_url: str, **simple: Any) -> dict[str, Any]:
    return {"simple": {"requirements": [signed_by("alice")], "storeURL": store_url, **simple}}


# --- the happy path and what the decision carries --------------------------------------


async def test_a_signed_image_is_allowed_and_pinned_to_its_digest(
    registry, lookaside_store, signed_image, alice
) -> None:
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), signed_image.ref, alice_secret(alice)
    )
    assert decision.allowed, decision.reasons
    assert decision.digest == signed_image.digest
    assert decision.patched_image == signed_image.digest_ref


async def test_mutate_image_false_allows_without_a_patch(
    registry, lookaside_store, signed_image, alice
) -> None:
    policy = {**lookaside_policy(lookaside_store.url), "mutateImage": False}
    decision = await decide_with_policy(registry, policy, signed_image.ref, alice_secret(alice))
    assert decision.allowed and decision.patched_image is None


# --- step 1: the key secret ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not a key at all", "`key` does not hold an ASCII-armoured OpenPGP public key"),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n-----END PGP PUBLIC KEY BLOCK-----\n",
            "`key` does not hold an ASCII-armoured OpenPGP public key",
        ),
        ("__PRIVATE__", "`key` holds a private key"),
    ],
)
async def test_a_key_secret_without_a_public_key_denies_clearly(
    registry, lookaside_store, signed_image, alice, gpg_home: GpgHome, key: str, message: str
) -> None:
    if key == "__PRIVATE__":
        key = gpg_home.export_secret(alice.fingerprint)
    decision = await decide_with_policy(
        registry,
        lookaside_policy(lookaside_store.url),
        signed_image.ref,
        secret("alice", {"key": key}),
    )
    assert not decision.allowed
    assert (
        f"requirement 1 (signedBy key secret {NAMESPACE}/alice): {message}" in decision.reasons[0]
    )


async def test_a_missing_key_secret_denies_clearly(registry, lookaside_store, signed_image) -> None:
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), signed_image.ref
    )
    assert not decision.allowed
    assert f"key secret {NAMESPACE}/alice): the secret does not exist" in decision.reasons[0]


async def test_a_key_in_another_secret_does_not_count(
    registry, lookaside_store, signed_image, alice, gpg_key
) -> None:
    # Alice's key is in the cluster, but the requirement names Bob's secret.
    decision = await decide_with_policy(
        registry,
        lookaside_policy(lookaside_store.url),
        signed_image.ref,
        secret("alice", {"key": gpg_key("verifier-bob").public_armored}),
        secret("really-alice", {"key": alice.public_armored}),
    )
    assert not decision.allowed
    assert "does not verify with the secret's keys" in decision.reasons[0]


# --- step 2: the signature ----------------------------------------------------------------


async def test_a_tampered_signature_is_refused(
    registry, lookaside_store, image_factory, alice, gpg_home, skopeo_verdict
) -> None:
    image = image_factory("v1")
    payload = atomic_payload(image.digest, image.ref)
    # Uncompressed, so the signed digest is in the clear and one bit of it can be flipped.
    good = gpg_sign(gpg_home, alice.fingerprint, payload, extra_args=("--compress-algo", "none"))
    payload_at = good.index(image.digest.encode())
    tampered = bytearray(good)
    tampered[payload_at + 10] ^= 0x01  # one bit of the signed digest
    lookaside_store.add(image.repo, image.digest, bytes(tampered))

    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )

    assert not decision.allowed
    assert "signature 1: signature by key" in decision.reasons[0]
    assert "signature bad" in decision.reasons[0]
    policy = policy_for(registry.host, [signed_by_requirement(alice.public_armored)])
    assert skopeo_verdict(policy, image.ref) is False


async def test_garbage_in_the_store_is_not_a_signature(
    registry, lookaside_store, image_factory, alice
) -> None:
    image = image_factory("v1")
    lookaside_store.add(image.repo, image.digest, b"<html>not a signature</html>")
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )
    assert not decision.allowed
    assert "signature 1: not an OpenPGP signed message" in decision.reasons[0]


async def test_a_message_with_two_signatures_is_refused(
    registry, lookaside_store, image_factory, alice, gpg_key, gpg_home, skopeo_verdict
) -> None:
    image = image_factory("v1")
    bob = gpg_key("verifier-bob")
    payload = atomic_payload(image.digest, image.ref)
    twice = gpg_sign(gpg_home, alice.fingerprint, payload, also=(bob.fingerprint,))
    lookaside_store.add(image.repo, image.digest, twice)

    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )

    assert not decision.allowed
    assert "holds 2 signatures; exactly one is allowed" in decision.reasons[0]
    policy = policy_for(registry.host, [signed_by_requirement(alice.public_armored)])
    assert skopeo_verdict(policy, image.ref) is False


# --- step 3: the payload ------------------------------------------------------------------


async def test_a_payload_with_an_unknown_critical_field_is_refused_as_skopeo_does(
    registry, lookaside_store, image_factory, alice, gpg_home, skopeo_verdict
) -> None:
    image = image_factory("v1")
    payload = atomic_payload(image.digest, image.ref, **{"expires-after": "2000-01-01"})
    lookaside_store.add(image.repo, image.digest, gpg_sign(gpg_home, alice.fingerprint, payload))

    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )

    assert not decision.allowed
    assert "critical has unknown field(s) 'expires-after'" in decision.reasons[0]
    policy = policy_for(registry.host, [signed_by_requirement(alice.public_armored)])
    assert skopeo_verdict(policy, image.ref) is False


async def test_the_same_payload_without_the_unknown_field_is_accepted(
    registry, lookaside_store, image_factory, alice, gpg_home
) -> None:
    image = image_factory("v1")
    payload = atomic_payload(image.digest, image.ref)
    lookaside_store.add(image.repo, image.digest, gpg_sign(gpg_home, alice.fingerprint, payload))
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )
    assert decision.allowed, decision.reasons


# --- steps 4 and 5: digest and identity ------------------------------------------------


async def test_a_signature_for_another_digest_is_refused(
    registry, lookaside_store, image_factory, alice, gpg_home
) -> None:
    image, other = image_factory("v1"), image_factory("v1")
    payload = atomic_payload(other.digest, image.ref)
    lookaside_store.add(image.repo, image.digest, gpg_sign(gpg_home, alice.fingerprint, payload))
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )
    assert not decision.allowed
    assert f"is for digest {other.digest}, not {image.digest}" in decision.reasons[0]


async def test_a_signature_for_another_identity_is_refused(
    registry, lookaside_store, image_factory, alice, gpg_home
) -> None:
    image = image_factory("v1")
    payload = atomic_payload(image.digest, f"{image.name}:v2")
    lookaside_store.add(image.repo, image.digest, gpg_sign(gpg_home, alice.fingerprint, payload))
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )
    assert not decision.allowed
    assert f"is for identity '{image.name}:v2', which matchRepoDigestOrExact" in decision.reasons[0]


# --- registry and stores -----------------------------------------------------------------


async def test_an_unsigned_image_is_denied_saying_no_signature_exists(
    registry, lookaside_store, image_factory, alice
) -> None:
    image = image_factory("v1")
    decision = await decide_with_policy(
        registry, lookaside_policy(lookaside_store.url), image.ref, alice_secret(alice)
    )
    assert not decision.allowed
    assert "a signature was required, but signature store" in decision.reasons[0]


async def test_a_tag_the_registry_does_not_have_is_denied(
    registry, lookaside_store, signed_image, alice
) -> None:
    decision = await decide_with_policy(
        registry,
        lookaside_policy(lookaside_store.url),
        f"{signed_image.name}:no-such-tag",
        alice_secret(alice),
    )
    assert not decision.allowed
    assert "the registry has no such manifest" in decision.reasons[0]


async def test_a_store_that_is_down_denies(registry, signed_image, alice) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    decision = await decide_with_policy(
        registry, lookaside_policy(down), signed_image.ref, alice_secret(alice)
    )
    assert not decision.allowed
    assert "cannot reach server" in decision.reasons[0]


async def test_a_store_that_fails_denies_rather_than_counting_fewer_signatures(
    registry, signed_image, alice
) -> None:
    app = web.Application()

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500)

    app.router.add_get("/{tail:.*}", broken)
    async with serve(app) as host:
        decision = await decide_with_policy(
            registry, lookaside_policy(f"http://{host}"), signed_image.ref, alice_secret(alice)
        )
    assert not decision.allowed
    assert "answered HTTP 500" in decision.reasons[0]


def basic_auth_store(directory: Path, username: str, password: str) -> web.Application:
    """A lookaside store over HTTP that wants basic auth, serving `directory`."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="sigs"'})
        path = (directory / request.match_info["tail"]).resolve()
        if directory.resolve() not in path.parents or not path.is_file():
            return web.Response(status=404)
        return web.Response(body=path.read_bytes())

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.mark.parametrize(
    ("password", "allowed", "message"),
    [
        ("s3cret", True, ""),
        ("wrong", False, "refused access"),
        (None, False, "refused access"),
    ],
)
async def test_store_credentials_come_from_the_store_secret(
    registry, lookaside_store, signed_image, alice, password, allowed, message
) -> None:
    async with serve(basic_auth_store(lookaside_store.dir, "reader", "s3cret")) as host:
        objects = [alice_secret(alice)]
        simple: dict[str, Any] = {}
        if password is not None:
            objects.append(secret("store", {"username": "reader", "password": password}))
            simple["storeSecret"] = "store"
        decision = await decide_with_policy(
            registry, lookaside_policy(f"http://{host}", **simple), signed_image.ref, *objects
        )
    assert decision.allowed is allowed, decision.reasons
    if message:
        assert message in decision.reasons[0]


async def test_pull_secrets_let_the_verifier_read_a_private_registry(
    auth_registry, lookaside_store, alice, gpg_home, simple_signer
) -> None:
    repo = "team/private-signed"
    image = auth_registry.push_image(repo, "v1")
    signature = simple_signer.standalone_sign(image.manifest, image.ref, alice.fingerprint)
    lookaside_store.add(image.repo, image.digest, signature)
    user, password = auth_registry.credentials
    objects = (alice_secret(alice), pull_secret("regcred", image.host, user, password))
    policy = lookaside_policy(lookaside_store.url)

    with_secret = await decide_with_policy(
        auth_registry, policy, image.ref, *objects, pull_secrets=("regcred",)
    )
    without = await decide_with_policy(auth_registry, policy, image.ref, *objects)

    assert with_secret.allowed, with_secret.reasons
    assert with_secret.digest == image.digest
    assert not without.allowed
    assert "the registry refused access (HTTP 401)" in without.reasons[0]


# --- the registry extension API --------------------------------------------------------


async def test_signatures_from_the_registry_extension_api_when_no_store_url_is_given(
    registry, test_ca, tmp_path, image_factory, simple_signer, alice, gpg_key
) -> None:
    image = image_factory("v1")
    fake = ExtensionRegistry({f"{image.repo}:v1": image.manifest})
    policy = {"simple": {"requirements": [signed_by("alice")]}}
    async with serve(fake.app(), server_ssl_context(test_ca, tmp_path)) as host:
        fake.host = host
        ref = f"{host}/{image.repo}:v1"
        bob_sig = simple_signer.standalone_sign(
            image.manifest, ref, gpg_key("verifier-bob").fingerprint
        )
        alice_sig = simple_signer.standalone_sign(image.manifest, ref, alice.fingerprint)
        fake.signatures[image.digest] = [
            extension_entry(image.digest, "old-format", alice_sig, version=1),
            extension_entry(image.digest, "bob", bob_sig),
        ]
        objects = (
            alice_secret(alice),
            pull_secret("regcred", host, ExtensionRegistry.USER, ExtensionRegistry.PASSWORD),
        )
        only_bob = await decide_with_policy(
            registry, policy, ref, *objects, pull_secrets=("regcred",)
        )
        fake.signatures[image.digest].append(extension_entry(image.digest, "alice", alice_sig))
        with_alice = await decide_with_policy(
            registry, policy, ref, *objects, pull_secrets=("regcred",)
        )

    assert not only_bob.allowed
    # the version 1 entry (alice) was skipped; the one left is bob's
    assert re.search(
        r"signature 1: signature by key \w+ does not verify.*no public key", only_bob.reasons[0]
    )
    assert with_alice.allowed, with_alice.reasons
    assert with_alice.patched_image == f"{host}/{image.repo}@{image.digest}"


async def test_a_registry_without_the_extension_api_and_no_store_url_denies(
    registry, signed_image, alice
) -> None:
    policy = {"simple": {"requirements": [signed_by("alice")]}}
    decision = await decide_with_policy(registry, policy, signed_image.ref, alice_secret(alice))
    assert not decision.allowed
    assert re.search(
        r"has no signature extension API .*give the policy a storeURL", decision.reasons[0]
    )


# --- trust and simple together ----------------------------------------------------------


class FakeTrust(Verifier):
    """Stands in for the Notary verifier: vouches for a fixed digest."""

    name = "trust"

    def __init__(self, digest: str) -> None:
        self.digest = digest

    async def verify(self, check: ImageCheck) -> Verdict:
        return Verdict(self.name, self.digest)


@pytest.mark.parametrize("agree", [True, False])
async def test_trust_and_simple_must_name_the_same_digest(
    registry, lookaside_store, signed_image, alice, agree
) -> None:
    trusted = signed_image.digest if agree else "sha256:" + "0" * 64
    policy = {**lookaside_policy(lookaside_store.url), "trust": {"enabled": True}}
    decision = await decide_with_policy(
        registry, policy, signed_image.ref, alice_secret(alice), extra=(FakeTrust(trusted),)
    )
    assert decision.allowed is agree, decision.reasons
    if agree:
        assert decision.patched_image == signed_image.digest_ref
    else:
        assert decision.reasons == (
            f"verifiers disagree on the digest: simple verified {signed_image.digest}, "
            f"trust verified {trusted}",
        ) or decision.reasons == (
            f"verifiers disagree on the digest: trust verified {trusted}, "
            f"simple verified {signed_image.digest}",
        )


async def test_a_signature_by_a_key_that_has_since_expired_is_refused_as_skopeo_does(
    registry, lookaside_store, image_factory, gpg_home, skopeo_verdict
) -> None:
    past = ("--faked-system-time", "20200101T000000!")
    fingerprint = gpg_home.create_key(
        "expired signer", "expired@portieris.test", expires="1d", extra_args=past
    )
    image = image_factory("v1")
    signature = gpg_sign(
        gpg_home, fingerprint, atomic_payload(image.digest, image.ref), extra_args=past
    )
    lookaside_store.add(image.repo, image.digest, signature)
    armored = gpg_home.export_public(fingerprint)

    decision = await decide_with_policy(
        registry,
        lookaside_policy(lookaside_store.url),
        image.ref,
        secret("alice", {"key": armored}),
    )

    assert not decision.allowed
    assert "signing key has expired" in decision.reasons[0]
    policy = policy_for(registry.host, [signed_by_requirement(armored)])
    assert skopeo_verdict(policy, image.ref) is False
