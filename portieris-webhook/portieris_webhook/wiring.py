"""Process wiring shared by the commands: a ready Enforcer from settings and a cluster state,
and waiting for the signal that stops `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from portieris_webhook.cluster.state import StateView
from portieris_webhook.config.settings import Settings
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.trust.state_store import TrustStateStore
from portieris_webhook.trust.verifier import TrustVerifier
from portieris_webhook.verify.contract import VerifierContext
from portieris_webhook.verify.plugins import load_verifiers

LOG = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def enforcer_for(
    state: StateView, settings: Settings, trust_state: TrustStateStore | None = None
) -> AsyncIterator[Enforcer]:
    """An Enforcer with every installed verifier; closes their resources on exit.

    With `trust_state`, the trust verifier's trust on first use starts from and goes to it."""
    http = HttpClient(settings.ca_file)
    verifiers = load_verifiers(VerifierContext(settings, state, http))
    trust = verifiers.get("trust")
    if trust_state is not None and isinstance(trust, TrustVerifier):
        trust_state.attach(trust.cache)
    try:
        yield Enforcer(state, verifiers, settings)
    finally:
        for verifier in verifiers.values():
            await verifier.close()
        await http.close()


async def wait_for_signal() -> None:
    """Return once SIGTERM or SIGINT arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    LOG.info("stopping: signal received")
