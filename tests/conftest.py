"""Shared test configuration: the real-component fixtures live in tests/fixtures/plugin.py."""

import asyncio

import uvloop

pytest_plugins = ["tests.fixtures.plugin", "tests.fixtures.cosign", "tests.fixtures.sigstore_pki"]


BOTH_LOOPS = ("test_connections.py", "test_server.py")
"""Modules whose async tests run on both event loops: `serve` runs on uvloop unless told
otherwise (--event-loop), and connection handling is where the two differ."""


def pytest_asyncio_loop_factories(config, item):
    """Both loops for BOTH_LOOPS, the standard library's (the default) for every other test."""
    if item.path.name in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
