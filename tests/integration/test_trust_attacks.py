"""Attacks on trust data between the real notary-server and the webhook: each must be denied."""

from __future__ import annotations

import base64
import datetime
import json

import pytest

from portieris_webhook.config.settings import Settings

from tests.builders import decide, memory_state
from tests.fixtures.notary import make_delegation_key
from tests.fixtures.trust_helpers import enforcer, trust_policy

pytestmark = pytest.mark.integration


SETTINGS = {"trust_refresh_interval": 0.0}


def b64_sha256(hex_digest: str) -> bytes:
    return base64.b64encode(bytes.fromhex(hex_digest))


async def test_a_target_hash_rewritten_in_transit_is_denied(signed, image_factory, proxy, settings):
    evil = image_factory("evil")

    def rewrite(path: str, body: bytes) -> bytes:
        if path.endswith("/targets/releases.json"):
            return body.replace(b64_sha256(signed.hex), b64_sha256(evil.hex))
        return body

    proxy.rewrites.append(rewrite)
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert not decision.response.allowed
    assert f"targets/releases of {signed.name}: sha256 hash differs" in decision.response.message


async def test_a_targets_role_from_another_repository_signed_by_a_key_not_delegated_here_is_denied(
    signed, image_factory, notary_signer, notary_server, proxy, settings
):
    """The attacker's own repository signs the same tag with its key; its document is substituted."""
    evil = image_factory("v1")
    notary_signer.sign(evil.name, "v1", evil.size, evil.hex, key=make_delegation_key("attacker"))
    proxy.replace["targets/releases.json"] = notary_server.fetch(evil.name, "targets/releases")
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert not decision.response.allowed
    assert "targets/releases of" in decision.response.message


async def test_a_root_signed_by_a_key_that_is_not_a_root_key_is_denied(
    signed, notary_server, proxy, settings
):
    """The attacker swaps the root signature for one made with the (real) targets key's slot."""
    root = json.loads(notary_server.fetch(signed.name, "root"))
    targets_keyid = root["signed"]["roles"]["targets"]["keyids"][0]
    targets_doc = json.loads(notary_server.fetch(signed.name, "targets"))
    # A genuine signature by a genuine key of this repository, just not a root key.
    forged = dict(targets_doc["signatures"][0], keyid=targets_keyid)
    root["signatures"] = [forged]
    proxy.replace["root.json"] = json.dumps(root).encode()
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert not decision.response.allowed
    assert (
        f"root metadata has 0 valid signature(s) from root keys certified for {signed.name}, "
        "1 required" in decision.response.message
    )


async def test_a_root_with_its_signatures_stripped_does_not_meet_the_threshold(
    signed, notary_server, proxy, settings
):
    root = json.loads(notary_server.fetch(signed.name, "root"))
    root["signatures"] = []
    proxy.replace["root.json"] = json.dumps(root).encode()
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    assert "root metadata has 0 valid signature(s)" in decision.response.message
    assert "1 required" in decision.response.message


async def test_replaying_older_trust_data_after_newer_was_seen_is_a_rollback(
    signed, image_factory, notary_signer, proxy, settings
):
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        first = await decide(e, signed.ref)
        old = dict(proxy.record)
        v2 = image_factory("v2", repo=signed.repo)
        notary_signer.add_hash(signed.name, "v2", v2.size, v2.hex, publish=True)
        newer = await decide(e, v2.ref)
        for path, body in old.items():
            proxy.replace[path.rsplit("/_trust/tuf/", 1)[1]] = body
        replayed = await decide(e, signed.ref)

    assert first.response.allowed and newer.response.allowed, newer.summary
    assert not replayed.response.allowed
    assert (
        "older than version" in replayed.response.message
        and "(rollback)" in replayed.response.message
    )


async def test_replaying_an_older_snapshot_under_the_current_timestamp_is_denied(
    signed, image_factory, notary_signer, proxy, settings
):
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        await decide(e, signed.ref)
        old_snapshot = next(b for p, b in proxy.record.items() if p.endswith("/snapshot.json"))
        v2 = image_factory("v2", repo=signed.repo)
        notary_signer.add_hash(signed.name, "v2", v2.size, v2.hex, publish=True)
        proxy.replace["snapshot.json"] = old_snapshot
        decision = await decide(e, v2.ref)

    assert not decision.response.allowed
    assert f"snapshot of {signed.name}:" in decision.response.message


async def test_metadata_past_its_expiry_is_denied(signed, notary_server, settings):
    timestamp = notary_server.fetch_json(signed.name, "timestamp")["signed"]
    expires = datetime.datetime.fromisoformat(timestamp["expires"][:19] + "+00:00")
    state = memory_state(trust_policy(f"{signed.host}/*", notary_server.url))
    async with enforcer(state, settings) as e:
        e.verifiers["trust"].clock = lambda: expires + datetime.timedelta(minutes=1)  # type: ignore[attr-defined]
        decision = await decide(e, signed.ref)

    assert not decision.response.allowed
    assert "timestamp metadata expired at" in decision.response.message


async def test_cached_data_is_not_used_past_its_expiry(signed, notary_server):
    settings = Settings(ca_file=str(notary_server.ca_file), trust_refresh_interval=3600.0)
    state = memory_state(trust_policy(f"{signed.host}/*", notary_server.url))
    async with enforcer(state, settings) as e:
        trust = e.verifiers["trust"]
        allowed = await decide(e, signed.ref)
        trust.clock = lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)  # type: ignore[attr-defined]
        denied = await decide(e, signed.ref)

    assert allowed.response.allowed
    assert not denied.response.allowed and "expired" in denied.response.message


async def test_a_delegation_signing_outside_its_paths_is_denied(
    image_factory, notary_signer, notary_server, settings
):
    image = image_factory("dev-1")
    alice = make_delegation_key("alice")
    notary_signer.init(image.name, publish=False)
    notary_signer.import_delegation_key(alice.key_pem, "targets/alice")
    notary_signer.add_delegation(
        image.name, "targets/alice", alice.cert_pem, paths=["prod-", "dev-"]
    )
    notary_signer.add_hash(image.name, "dev-1", image.size, image.hex, roles=["targets/alice"])
    notary_signer.publish(image.name)
    notary_signer.notary(
        "delegation", "remove", image.name, "targets/alice", "--paths", "dev-", "-y", "-p"
    )
    state = memory_state(trust_policy(f"{image.host}/*", notary_server.url))
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert not decision.response.allowed
    assert (
        "targets/alice lists it, but targets/alice may only sign paths 'prod-'"
        in decision.response.message
    )


async def test_a_signer_pinned_to_another_key_is_denied_although_the_tag_is_signed(
    image_factory, notary_signer, notary_server, settings
):
    from tests.fixtures.trust_helpers import signer_secret

    image = image_factory("v1")
    notary_signer.sign(
        image.name,
        "v1",
        image.size,
        image.hex,
        key=make_delegation_key("alice"),
        role="targets/alice",
    )
    state = memory_state(
        trust_policy(f"{image.host}/*", notary_server.url, signers=["alice"]),
        signer_secret("alice", "alice", make_delegation_key("alice").cert_pem),
    )
    async with enforcer(state, settings) as e:
        decision = await decide(e, image.ref)

    assert "the key in the secret is not a key of targets/alice" in decision.response.message
