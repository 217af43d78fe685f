"""The trust verifier against the real notary-server and registry, signed with the notary CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from portieris_webhook.config.settings import Settings

from tests.builders import decide, memory_state, pull_secret
from tests.fixtures.notary import NotarySigner, make_delegation_key
from tests.fixtures.trust_helpers import (
    NotaryProxy,
    enforcer,
    patched_images,
    signer_secret,
    trust_policy,
)

pytestmark = pytest.mark.integration


SETTINGS = {"verify_timeout": 8.0, "remote_timeout": 5.0}


def policy_for(image, notary_server, **kwargs):
    return trust_policy(f"{image.host}/*", notary_server.url, **kwargs)


async def test_a_signed_tag_is_allowed_and_pinned_to_the_signed_digest(
    signed, notary_server, settings
):
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert decision.response.allowed, decision.summary
    assert patched_images(decision) == {
        "/spec/containers/0/image": f"{signed.name}@{signed.digest}"
    }
    assert decision.images[0].digest == signed.digest


async def test_mutate_image_false_allows_without_a_patch(signed, notary_server, settings):
    state = memory_state(policy_for(signed, notary_server, mutate=False))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert decision.response.allowed and decision.response.patch == ()


async def test_a_tag_signed_in_targets_itself_is_allowed(
    image_factory, notary_signer, notary_server, settings
):
    image = image_factory("v1")
    notary_signer.sign(image.name, image.tag, image.size, image.hex, role="targets")
    state = memory_state(policy_for(image, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert decision.response.allowed, decision.summary
    assert decision.images[0].digest == image.digest


async def test_an_unsigned_tag_of_a_signed_repository_is_denied(
    signed, image_factory, notary_server, settings
):
    unsigned = image_factory("v2", repo=signed.repo)
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, unsigned.ref)

    assert not decision.response.allowed
    assert f"tag 'v2' of {signed.name} is not signed" in decision.response.message


async def test_a_repository_without_trust_data_is_denied(image_factory, notary_server, settings):
    image = image_factory("v1")
    state = memory_state(policy_for(image, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert not decision.response.allowed
    assert (
        f"no trust data for {image.name} (the repository is not signed)"
        in decision.response.message
    )


async def test_a_signed_digest_reference_is_allowed_without_a_change(
    signed, notary_server, settings
):
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.digest_ref)

    assert decision.response.allowed, decision.summary
    assert decision.response.patch == () and decision.images[0].digest == signed.digest


async def test_an_unsigned_digest_is_denied_even_if_latest_is_signed(
    image_factory, notary_signer, notary_server, settings
):
    latest = image_factory("latest")
    notary_signer.sign(latest.name, "latest", latest.size, latest.hex)
    other = image_factory("other", repo=latest.repo)
    state = memory_state(policy_for(latest, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, other.digest_ref)

    assert not decision.response.allowed
    assert f"no signed tag of {latest.name} has digest {other.digest}" in decision.response.message


async def test_a_tag_moved_in_the_registry_after_signing_is_pinned_to_the_signed_digest(
    signed, image_factory, notary_server, settings
):
    moved = image_factory("v1", repo=signed.repo)  # new content pushed under the signed tag
    assert moved.digest != signed.digest
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert decision.response.allowed
    assert patched_images(decision) == {
        "/spec/containers/0/image": f"{signed.name}@{signed.digest}"
    }


async def test_several_images_in_one_pod_are_each_verified(
    signed, image_factory, notary_signer, notary_server, settings
):
    second = image_factory("v1")
    notary_signer.sign(second.name, "v1", second.size, second.hex)
    unsigned = image_factory("v1")
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        allowed = await decide(e, signed.ref, second.ref)
        denied = await decide(e, signed.ref, unsigned.ref, second.ref)

    assert allowed.response.allowed
    assert patched_images(allowed) == {
        "/spec/containers/0/image": f"{signed.name}@{signed.digest}",
        "/spec/containers/1/image": f"{second.name}@{second.digest}",
    }
    assert not denied.response.allowed
    assert unsigned.ref in denied.response.message
    assert signed.ref not in denied.response.message and second.ref not in denied.response.message


# --- signer pinning -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["certificate", "public key"])
async def test_a_required_signer_who_signed_is_accepted(
    alice_signed, notary_server, settings, form
):
    image, key = alice_signed
    pem = key.cert_pem if form == "certificate" else key.public_key_pem
    state = memory_state(
        policy_for(image, notary_server, signers=["alice-key"]),
        signer_secret("alice-key", "alice", pem),
    )
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert decision.response.allowed, decision.summary
    assert decision.images[0].digest == image.digest


async def test_a_required_signer_whose_key_is_not_delegated_is_denied(
    alice_signed, notary_server, settings
):
    image, _ = alice_signed
    impostor = make_delegation_key("alice")
    state = memory_state(
        policy_for(image, notary_server, signers=["alice-key"]),
        signer_secret("alice-key", "alice", impostor.cert_pem),
    )
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert not decision.response.allowed
    assert (
        "signer 'alice' (secret alice-key): the key in the secret is not a key of targets/alice"
        in (decision.response.message)
    )


async def test_a_required_signer_without_a_delegation_is_denied(
    alice_signed, notary_server, settings
):
    image, _ = alice_signed
    bob = make_delegation_key("bob")
    state = memory_state(
        policy_for(image, notary_server, signers=["bob-key"]),
        signer_secret("bob-key", "bob", bob.cert_pem),
    )
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert not decision.response.allowed
    assert (
        f"signer 'bob' (secret bob-key): {image.name} has no delegation targets/bob"
        in decision.response.message
    )


async def test_a_required_signer_who_did_not_sign_the_tag_is_denied(
    image_factory, notary_signer, notary_server, settings
):
    image = image_factory("v1")
    releases = notary_signer.sign(image.name, "v1", image.size, image.hex)
    alice = make_delegation_key("alice")
    notary_signer.import_delegation_key(alice.key_pem, "targets/alice")
    notary_signer.add_delegation(image.name, "targets/alice", alice.cert_pem)
    notary_signer.add_hash(
        image.name, "other", image.size, image.hex, roles=["targets/alice"], publish=True
    )
    assert releases is not None
    state = memory_state(
        policy_for(image, notary_server, signers=["alice-key"]),
        signer_secret("alice-key", "alice", alice.cert_pem),
    )
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert not decision.response.allowed
    assert (
        f"signer 'alice' (secret alice-key) did not sign 'v1' as {image.digest} in targets/alice"
        in (decision.response.message)
    )


async def test_a_missing_signer_secret_is_denied(signed, notary_server, settings):
    state = memory_state(policy_for(signed, notary_server, signers=["nope"]))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert "signer secret default/nope does not exist" in decision.response.message


# --- trust servers, networks and credentials --------------------------------------------


async def test_the_default_trust_server_is_used_when_the_policy_names_none(signed, notary_server):
    settings = Settings(ca_file=str(notary_server.ca_file), default_trust_server=notary_server.url)
    state = memory_state(trust_policy(f"{signed.host}/*", None))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert decision.response.allowed, decision.summary


async def test_without_any_trust_server_a_private_registry_is_denied(signed, notary_server):
    settings = Settings(ca_file=str(notary_server.ca_file))
    state = memory_state(trust_policy(f"{signed.host}/*", None))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert f"no trust server is known for {signed.host}" in decision.response.message


async def test_an_unreachable_trust_server_is_denied_at_once(signed, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{sock.getsockname()[1]}"
    state = memory_state(trust_policy(f"{signed.host}/*", closed))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert not decision.response.allowed
    assert "cannot reach server" in decision.response.message


async def test_a_trust_server_that_never_answers_is_denied_within_the_budget(
    signed, notary_server, test_ca, tmp_path
):
    proxy = await NotaryProxy(notary_server.url, test_ca, notary_server.ca_file, tmp_path).start()
    proxy.silent = True
    settings = Settings(ca_file=str(notary_server.ca_file), verify_timeout=1.5, remote_timeout=1.0)
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    try:
        async with enforcer(state, settings) as e:
            started = time.monotonic()
            decision = await decide(e, signed.ref)
            elapsed = time.monotonic() - started
    finally:
        await proxy.stop()

    assert not decision.response.allowed
    assert "no answer within 1s" in decision.response.message
    assert elapsed < 1.5 + 0.5


async def test_a_trust_server_certificate_from_an_unknown_ca_is_denied(signed, notary_server):
    settings = Settings(ca_file=None)
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert not decision.response.allowed
    assert "TLS certificate not trusted" in decision.response.message


async def test_token_auth_uses_the_pull_secret_of_the_registry(
    signed, notary_server, test_ca, tmp_path, settings
):
    proxy = await NotaryProxy(notary_server.url, test_ca, notary_server.ca_file, tmp_path).start()
    proxy.token_credentials = ("puller", "pull-pass")
    state = memory_state(
        trust_policy(f"{signed.host}/*", proxy.url),
        pull_secret("regcred", signed.host, "puller", "pull-pass"),
        pull_secret("othercred", "other.example.com", "puller", "pull-pass"),
    )
    try:
        async with enforcer(state, settings) as e:
            without = await decide(e, signed.ref, pull_secrets=["othercred"])
            with_secret = await decide(e, signed.ref, pull_secrets=["regcred"])
    finally:
        await proxy.stop()

    assert not without.response.allowed
    assert "refused access to trust data" in without.response.message
    assert with_secret.response.allowed, with_secret.summary


async def test_a_warm_cache_answers_without_asking_notary(
    signed, notary_server, test_ca, tmp_path, settings
):
    proxy = await NotaryProxy(notary_server.url, test_ca, notary_server.ca_file, tmp_path).start()
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    try:
        async with enforcer(state, settings) as e:
            await decide(e, signed.ref)
            cold = len(proxy.metadata_requests())
            decisions = await asyncio.gather(*(decide(e, signed.ref) for _ in range(5)))
    finally:
        await proxy.stop()

    assert all(d.response.allowed for d in decisions)
    assert cold == 5 and len(proxy.metadata_requests()) == cold


async def test_concurrent_cold_requests_share_one_fetch(
    signed, notary_server, test_ca, tmp_path, settings
):
    proxy = await NotaryProxy(notary_server.url, test_ca, notary_server.ca_file, tmp_path).start()
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    try:
        async with enforcer(state, settings) as e:
            decisions = await asyncio.gather(*(decide(e, signed.ref) for _ in range(10)))
    finally:
        await proxy.stop()

    assert all(d.response.allowed for d in decisions)
    assert len(proxy.metadata_requests()) == 5


async def test_a_new_signature_is_seen_after_the_refresh_interval(
    signed, notary_signer, image_factory, notary_server
):
    settings = Settings(ca_file=str(notary_server.ca_file), trust_refresh_interval=0.0)
    v2 = image_factory("v2", repo=signed.repo)
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        before = await decide(e, v2.ref)
        notary_signer.add_hash(signed.name, "v2", v2.size, v2.hex, publish=True)
        after = await decide(e, v2.ref)

    assert not before.response.allowed and after.response.allowed, after.summary
    assert after.images[0].digest == v2.digest


async def test_a_root_key_rotation_is_followed(signed, notary_signer, notary_server):
    settings = Settings(ca_file=str(notary_server.ca_file), trust_refresh_interval=0.0)
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, settings) as e:
        first = await decide(e, signed.ref)
        notary_signer.rotate_key(signed.name, "root")
        notary_signer.rotate_key(signed.name, "targets")
        second = await decide(e, signed.ref)
        trust = e.verifiers["trust"]

    assert first.response.allowed and second.response.allowed, second.summary
    assert trust.cache.state(notary_server.url, signed.name).seen["root"] >= 2  # type: ignore[attr-defined]


async def test_a_pinned_root_key_id_is_required(signed, notary_server):
    root = notary_server.fetch_json(signed.name, "root")["signed"]
    root_keyid = root["roles"]["root"]["keyids"][0]
    good = Settings(
        ca_file=str(notary_server.ca_file),
        pinned_trust_roots=(f"{notary_server.url}={root_keyid}",),
    )
    bad = Settings(
        ca_file=str(notary_server.ca_file), pinned_trust_roots=(f"{notary_server.url}={'ab' * 32}",)
    )
    state = memory_state(policy_for(signed, notary_server))
    async with enforcer(state, good) as e:
        allowed = await decide(e, signed.ref)
    async with enforcer(state, bad) as e:
        denied = await decide(e, signed.ref)

    assert allowed.response.allowed, allowed.summary
    assert "is not signed by the pinned root" in denied.response.message


def notary_root_key_ids(signer: NotarySigner) -> list[str]:
    """The KEY ID of the root rows of `notary key list` (ROLE, GUN, KEY ID, LOCATION)."""
    rows = [line.split() for line in signer.notary("key", "list").splitlines()]
    return [row[1] for row in rows if row and row[0] == "root"]


async def test_the_pins_the_chart_readme_names(
    signed, image_factory, notary_signer, notary_server, tmp_path
):
    """The chart README ("Pinning notary roots"): the publisher's root key ID from
    `notary key list` pins every repository signed with that root key; the root.json key ID
    (what `notary list` caches for a consumer, and `trust-state show` prints as root_keyids)
    pins that one repository."""
    other = image_factory("v1", repo="other/app")
    notary_signer.sign(other.name, other.tag, other.size, other.hex)
    (publisher_id,) = notary_root_key_ids(notary_signer)
    consumer = NotarySigner(notary_server, tmp_path / "consumer-trust")
    consumer.list(signed.name)
    cached = json.loads(
        (consumer.trust_dir / "tuf" / signed.name / "metadata" / "root.json").read_text()
    )
    (repository_id,) = cached["signed"]["roles"]["root"]["keyids"]
    assert repository_id != publisher_id
    state = memory_state(
        trust_policy(f"{signed.host}/*", notary_server.url),
    )

    async def verdicts(pin: str) -> list[bool]:
        settings = Settings(
            ca_file=str(notary_server.ca_file),
            pinned_trust_roots=(f"{notary_server.url}={pin}",),
        )
        async with enforcer(state, settings) as e:
            return [(await decide(e, image.ref)).response.allowed for image in (signed, other)]

    assert await verdicts(publisher_id) == [True, True]
    assert await verdicts(repository_id) == [True, False]
