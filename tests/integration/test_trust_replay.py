"""A notary server (or anyone on its path) answering one repository with another's trust data.

Every document of repository A is genuine and signed; the proxy in front of
the real notary-server hands it out when the webhook asks for repository B.
The root certificates name A, so the webhook must refuse it for B, whether
the root is trusted on first use or pinned.
"""

from __future__ import annotations

import json

import pytest

from portieris_webhook.config.settings import Settings
from portieris_webhook.trust.keys import parse_key

from tests.builders import decide, memory_state
from tests.fixtures.trust_helpers import enforcer, trust_policy

pytestmark = pytest.mark.integration


@pytest.fixture
def signed_a(image_factory, notary_signer):
    image = image_factory("v1", seed="repository-a")
    notary_signer.sign(image.name, image.tag, image.size, image.hex)
    return image


@pytest.fixture
def image_b(image_factory):
    return image_factory("v1", seed="repository-b")


def root_key_ids(notary_server, gun: str) -> tuple[str, str]:
    """(ID in root.json, ID of the bare public key) of the repository's root key."""
    root = json.loads(notary_server.fetch(gun, "root"))["signed"]
    keyid = root["roles"]["root"]["keyids"][0]
    return keyid, parse_key(keyid, root["keys"][keyid], "root").public_id


def settings_for(notary_server, *pins: str) -> Settings:
    return Settings(
        ca_file=str(notary_server.ca_file),
        trust_refresh_interval=0.0,
        pinned_trust_roots=pins,
    )


async def test_another_repositorys_trust_data_is_refused_on_first_use(
    signed_a, image_b, notary_server, proxy
):
    proxy.aliases[image_b.name] = signed_a.name
    state = memory_state(trust_policy(f"{image_b.host}/*", proxy.url))
    async with enforcer(state, settings_for(notary_server)) as e:
        decision = await decide(e, image_b.ref)

    assert not decision.response.allowed
    assert f"issued to '{signed_a.name}', not to '{image_b.name}'" in decision.response.message


@pytest.mark.parametrize("pinned", ["root.json key ID", "public key ID"])
async def test_another_repositorys_trust_data_is_refused_under_a_pinned_root(
    signed_a, image_b, notary_signer, notary_server, proxy, pinned
):
    """B is signed with the same root key as A (the notary CLI reuses it), so the pin fits A's
    root as well as B's; only the certificate's common name tells them apart."""
    notary_signer.sign(image_b.name, image_b.tag, image_b.size, image_b.hex)
    a_ids, b_ids = (
        root_key_ids(notary_server, signed_a.name),
        root_key_ids(notary_server, image_b.name),
    )
    assert a_ids[1] == b_ids[1], "premise: one root key signs both repositories"
    pin = a_ids[0] if pinned == "root.json key ID" else a_ids[1]
    state = memory_state(trust_policy(f"{image_b.host}/*", proxy.url))
    async with enforcer(state, settings_for(notary_server, f"{proxy.url}={pin}")) as e:
        own = await decide(e, signed_a.ref)
        proxy.aliases[image_b.name] = signed_a.name
        replayed = await decide(e, image_b.ref)

    assert own.response.allowed, own.summary
    assert not replayed.response.allowed
    assert "not signed by the pinned root" in replayed.response.message
    assert f"issued to '{signed_a.name}', not to '{image_b.name}'" in replayed.response.message


async def test_a_repository_signed_with_the_pinned_root_key_is_allowed_through_the_proxy(
    image_b, notary_signer, notary_server, proxy
):
    notary_signer.sign(image_b.name, image_b.tag, image_b.size, image_b.hex)
    _, public_id = root_key_ids(notary_server, image_b.name)
    state = memory_state(trust_policy(f"{image_b.host}/*", proxy.url))
    async with enforcer(state, settings_for(notary_server, f"{proxy.url}={public_id}")) as e:
        decision = await decide(e, image_b.ref)

    assert decision.response.allowed, decision.summary
    assert decision.images[0].digest == image_b.digest
