"""When --remote-timeout is longer than --verify-timeout, the deny still names the slow server.

The verification budget ends the image's check first; the message must say what the
check was still waiting for, whichever remote it was: a registry, a signature store or
a notary server.
"""

from __future__ import annotations

from typing import Any

import pytest

from portieris_webhook.config.settings import Settings
from portieris_webhook.wiring import enforcer_for

from tests.builders import memory_state, pod_request
from tests.fixtures.hostile import slow_app
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    alice_secret,
    policy_under_test,
    serve,
    server_ssl_context,
    signed_by,
)

pytestmark = pytest.mark.integration

VERIFY_TIMEOUT = 1.0
REMOTE_TIMEOUT = 30.0


SETTINGS = {"verify_timeout": VERIFY_TIMEOUT, "remote_timeout": REMOTE_TIMEOUT}


async def deny_message(
    policy: dict[str, Any], image: str, settings: Settings, *objects: dict[str, Any]
) -> str:
    state = memory_state(policy_under_test(policy), *objects)
    async with enforcer_for(state, settings) as enforcer:
        decision = await enforcer.decide(pod_request([image], NAMESPACE))
    assert decision.response.allowed is False
    return decision.response.message


def names_as_slow(message: str, host: str) -> bool:
    """The deny says the check ran out of time waiting for `host`.

    Whichever deadline fires first, the verification budget's or the call's own (set to
    the budget left), the message names the server.
    """
    return any(
        said in message
        for said in (
            f"did not finish within {VERIFY_TIMEOUT:g}s; it was waiting for {host} (GET ",
            f"{host}: no answer within",
            f"from https://{host} did not arrive within the verification budget",
        )
    )


async def test_a_slow_registry_is_named(
    test_ca, settings, tmp_path, lookaside_store, alice
) -> None:
    policy = {"simple": {"requirements": [signed_by("alice")], "storeURL": lookaside_store.url}}
    async with serve(slow_app(), server_ssl_context(test_ca, tmp_path)) as host:
        message = await deny_message(
            policy,
            f"{host}/team/app:v1",
            settings,
            alice_secret(alice),
        )
    assert names_as_slow(message, host)


async def test_a_slow_signature_store_is_named(settings, image_factory, registry, alice) -> None:
    image = image_factory("v1")
    async with serve(slow_app()) as host:
        policy = {
            "simple": {"requirements": [signed_by("alice")], "storeURL": f"http://{host}/sigs"}
        }
        message = await deny_message(policy, image.ref, settings, alice_secret(alice))
    assert names_as_slow(message, host)
    assert f"waiting for {registry.host}" not in message


async def test_a_slow_notary_server_is_named(test_ca, settings, tmp_path) -> None:
    async with serve(slow_app(), server_ssl_context(test_ca, tmp_path)) as host:
        policy = {"trust": {"enabled": True, "trustServer": f"https://{host}"}}
        message = await deny_message(policy, "registry.invalid/team/app:v1", settings)
    assert names_as_slow(message, host)
