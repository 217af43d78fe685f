"""Wiring: from settings and a cluster state to a ready Enforcer (shared by every command)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from portieris_webhook.enforce import Enforcer
from portieris_webhook.http import HttpClient
from portieris_webhook.plugins import load_verifiers
from portieris_webhook.settings import Settings
from portieris_webhook.state import StateView
from portieris_webhook.verifiers import VerifierContext


@contextlib.asynccontextmanager
async def enforcer_for(state: StateView, settings: Settings) -> AsyncIterator[Enforcer]:
    """An Enforcer with every installed verifier; closes their resources on exit."""
    http = HttpClient(settings.ca_file)
    verifiers = load_verifiers(VerifierContext(settings, state, http))
    try:
        yield Enforcer(state, verifiers, settings)
    finally:
        for verifier in verifiers.values():
            await verifier.close()
        await http.close()
