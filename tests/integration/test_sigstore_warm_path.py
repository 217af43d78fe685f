"""The cosign warm path against the real registry and real cosign signatures.

The image is named through a counting proxy in front of the real registry, so each test
sees exactly which requests an admission made; the verifier's clock is moved by hand. The
enforcer's decision cache is off, so what is measured is the verifier's own reuse of
registry answers (what answers when the decision cache cannot: another policy, another
authority, a rotated key Secret).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from portieris_webhook.cluster.state import MemoryState
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.cache import DecisionCache
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.outcome import ImageDecision
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.sigstore.verifier import SigstoreVerifier
from portieris_webhook.verify.contract import VerifierContext

from tests.builders import ManualClock, memory_state
from tests.fixtures.cosign import Cosign
from tests.fixtures.counting_proxy import CountingProxy
from tests.fixtures.registry import Registry
from tests.fixtures.sigstore_helpers import key_authority, sigstore_policy
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    decide_image,
    policy_under_test,
    server_ssl_context,
)

pytestmark = pytest.mark.integration

WINDOW = 30.0  # the default --trust-refresh-interval, which the registry window follows


@pytest.fixture
async def registry_proxy(registry: Registry, test_ca, tmp_path) -> AsyncIterator[CountingProxy]:
    client_ssl = ssl.create_default_context(cafile=str(registry.ca_file))
    server_ssl = server_ssl_context(test_ca, tmp_path / "registry-proxy")
    async with CountingProxy(registry.url, server_ssl=server_ssl, client_ssl=client_ssl) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def warm(
    state: MemoryState, ca_file: Path, clock: ManualClock
) -> AsyncIterator[tuple[Enforcer, SigstoreVerifier]]:
    config = Settings(ca_file=str(ca_file), verify_timeout=20.0, decision_cache_max_entries=0)
    http = HttpClient(config.ca_file)
    verifier = SigstoreVerifier(VerifierContext(config, state, http), monotonic=clock)
    decisions = DecisionCache(0, monotonic=clock)
    try:
        yield Enforcer(state, {verifier.name: verifier}, config, decisions=decisions), verifier
    finally:
        await verifier.close()
        await http.close()


@pytest.fixture
async def signed(
    image_factory, registry_proxy: CountingProxy, cosign: Cosign, tmp_path: Path
) -> tuple[str, dict[str, Any]]:
    """An image whose signature names it as seen through the proxy (cosign signs the proxied
    reference without uploading; the signature is attached in the registry itself, since
    the proxy forwards reads only), and the ClusterImagePolicy trusting that key."""
    image = image_factory("v1")
    pair = cosign.generate_key_pair(tmp_path / "key")
    payload, signature = tmp_path / "payload", tmp_path / "signature"
    proxied = f"{registry_proxy.host}/{image.repo}@{image.digest}"
    # In a thread: the proxy runs on this event loop, which must keep serving cosign.
    await asyncio.to_thread(
        cosign.sign,
        proxied,
        pair.private_path,
        upload=False,
        output_payload=payload,
        output_signature=signature,
    )
    cosign.run(
        "attach", "signature", f"--payload={payload}", f"--signature={signature}", image.digest_ref
    )
    ref = f"{registry_proxy.host}/{image.repo}:{image.tag}"
    return ref, policy_under_test(sigstore_policy(key_authority(pair.public_pem)))


async def decide(enforcer: Enforcer, ref: str) -> ImageDecision:
    decision = await decide_image(enforcer, ref, NAMESPACE)
    assert decision.allowed, decision.reasons
    return decision


async def test_a_second_admission_within_the_window_asks_the_registry_nothing(
    registry, registry_proxy, signed
) -> None:
    ref, policy = signed
    async with warm(memory_state(policy), registry.ca_file, ManualClock()) as (enforcer, _):
        await decide(enforcer, ref)
        asked = registry_proxy.count()
        assert asked >= 3  # the tag, the tag-schema signatures, the referrers
        await decide(enforcer, ref)
        assert registry_proxy.count() == asked


async def test_after_the_window_the_tag_and_signatures_are_read_again(
    registry, registry_proxy, signed
) -> None:
    ref, policy = signed
    clock = ManualClock()
    async with warm(memory_state(policy), registry.ca_file, clock) as (enforcer, _):
        await decide(enforcer, ref)
        reads = ("/manifests/v1", ".sig", "/referrers/")
        first = {what: registry_proxy.count(what) for what in reads}
        assert all(first.values()), first
        clock.now += WINDOW + 1
        await decide(enforcer, ref)
        assert {what: registry_proxy.count(what) for what in reads} == {
            what: 2 * count for what, count in first.items()
        }
