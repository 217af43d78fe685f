"""A notary server answering with a document that never ends: denied at the document's limit.

The proxy in front of the real notary-server streams whitespace for one
document until the webhook hangs up (or 1 GiB). The webhook must stop at the
limit of that kind of document - or exactly the length the parent role
recorded, when one did - deny with a message naming the document and the
limit, and never read the rest.
"""

from __future__ import annotations

import pytest

from portieris_webhook.trust.updater import ReadLimits

from tests.builders import decide, memory_state
from tests.fixtures.trust_helpers import ENDLESS_BYTES, enforcer, trust_policy

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SOCKET_BUFFERS = 8 * MiB


SETTINGS = {"trust_refresh_interval": 0.0, "trust_failure_ttl": 0.0}


@pytest.mark.parametrize("role", ["root", "timestamp", "snapshot", "targets", "targets/releases"])
async def test_an_endless_document_is_denied_at_the_limit_of_its_kind(
    signed, proxy, settings, role
):
    proxy.endless.add(f"{role}.json")
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        decision = await decide(e, signed.ref)

    limit = ReadLimits().of(role)
    assert not decision.response.allowed
    assert (
        f"/_trust/tuf/{role}.json): the answer is larger than {limit} bytes"
        in decision.response.message
    )
    # What the proxy handed to its socket: the limit, plus at most what socket buffers hold.
    assert proxy.endless_sent <= limit + SOCKET_BUFFERS < ENDLESS_BYTES


async def test_a_document_whose_length_is_recorded_is_cut_off_at_exactly_that_length(
    signed, image_factory, notary_signer, notary_server, proxy, settings
):
    state = memory_state(trust_policy(f"{signed.host}/*", proxy.url))
    async with enforcer(state, settings) as e:
        first = await decide(e, signed.ref)
        v2 = image_factory("v2", repo=signed.repo)
        notary_signer.add_hash(signed.name, "v2", v2.size, v2.hex, publish=True)
        recorded = len(notary_server.fetch(signed.name, "targets/releases"))
        proxy.endless.add("targets/releases.json")
        second = await decide(e, v2.ref)

    assert first.response.allowed, first.summary
    assert not second.response.allowed
    assert (
        f"/_trust/tuf/targets/releases.json): the answer is larger than {recorded} bytes"
        in second.response.message
    )
