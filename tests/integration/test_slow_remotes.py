"""When --remote-timeout is longer than --verify-timeout, the deny still names the slow server.

The verification budget ends the image's check first; the message must say what the
check was still waiting for, whichever remote it was: a registry, a signature store or
a notary server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from portieris_webhook.config.settings import Settings
from portieris_webhook.wiring import enforcer_for

from tests.builders import memory_state
from tests.fixtures.gpg import GpgKey
from tests.fixtures.hostile import slow_app
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    cluster_policy,
    secret,
    serve,
    server_ssl_context,
    signed_by,
)
from tests.fixtures.trust_helpers import pod_request

pytestmark = pytest.mark.integration

VERIFY_TIMEOUT = 1.0
REMOTE_TIMEOUT = 30.0


def settings(ca_file: Any) -> Settings:
    return Settings(
        ca_file=str(ca_file), verify_timeout=VERIFY_TIMEOUT, remote_timeout=REMOTE_TIMEOUT
    )


async def deny_message(
    policy: dict[str, Any], image: str, ca_file: Any, *objects: dict[str, Any]
) -> str:
    state = memory_state(cluster_policy(policy), *objects)
    async with enforcer_for(state, settings(ca_file)) as enforcer:
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


@pytest.fixture
def alice(gpg_key: Callable[[str], GpgKey]) -> GpgKey:
    return gpg_key("slow-remotes-alice")


async def test_a_slow_registry_is_named(
    test_ca, test_ca_file, tmp_path, lookaside_store, alice
) -> None:
    policy = {"simple": {"requirements": [signed_by("alice")], "storeURL": lookaside_store.url}}
    async with serve(slow_app(), server_ssl_context(test_ca, tmp_path)) as host:
        message = await deny_message(
            policy,
            f"{host}/team/app:v1",
            test_ca_file,
            secret("alice", {"key": alice.public_armored}),
        )
    assert names_as_slow(message, host)


async def test_a_slow_signature_store_is_named(
    test_ca_file, image_factory, registry, alice
) -> None:
    image = image_factory("v1")
    async with serve(slow_app()) as host:
        policy = {
            "simple": {"requirements": [signed_by("alice")], "storeURL": f"http://{host}/sigs"}
        }
        message = await deny_message(
            policy, image.ref, test_ca_file, secret("alice", {"key": alice.public_armored})
        )
    assert names_as_slow(message, host)
    assert f"waiting for {registry.host}" not in message


async def test_a_slow_notary_server_is_named(test_ca, test_ca_file, tmp_path) -> None:
    async with serve(slow_app(), server_ssl_context(test_ca, tmp_path)) as host:
        policy = {"trust": {"enabled": True, "trustServer": f"https://{host}"}}
        message = await deny_message(policy, "registry.invalid/team/app:v1", test_ca_file)
    assert names_as_slow(message, host)
