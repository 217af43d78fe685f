"""--simple-refresh-interval: follows --trust-refresh-interval unless given; 0 turns reuse off."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from portieris_webhook.config import options
from portieris_webhook.config.settings import Settings
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.verify.contract import VerifierContext

from tests.builders import memory_state


def settings_for(*args: str) -> Settings:
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(options.VERIFY_OPTS)
    conf(list(args), project="portieris-test", default_config_files=[])
    return options.settings_from(conf)


@pytest.mark.parametrize(
    ("args", "window"),
    [
        ((), 30.0),
        (("--trust-refresh-interval", "12"), 12.0),
        (("--trust-refresh-interval", "12", "--simple-refresh-interval", "3"), 3.0),
        (("--simple-refresh-interval", "0"), 0.0),
    ],
)
def test_the_window_follows_the_trust_interval_unless_set(
    args: tuple[str, ...], window: float
) -> None:
    assert settings_for(*args).simple_refresh == window


async def test_the_verifier_reuses_answers_and_decisions_for_the_window_in_effect() -> None:
    http = HttpClient(None)
    settings = Settings(trust_refresh_interval=12.0, simple_failure_ttl=2.0)
    verifier = SimpleVerifier(VerifierContext(settings, memory_state(), http))
    try:
        for answers in (verifier.manifests, verifier.signature_lists):
            assert answers.limits.fresh_for == 12.0
            assert answers.limits.failure_ttl == 2.0
        assert verifier.max_age() == 12.0  # a cached decision lives no longer than its reads
    finally:
        await verifier.close()
        await http.close()


async def test_a_simple_window_of_its_own_bounds_cached_decisions() -> None:
    http = HttpClient(None)
    settings = Settings(trust_refresh_interval=30.0, simple_refresh_interval=5.0)
    verifier = SimpleVerifier(VerifierContext(settings, memory_state(), http))
    try:
        assert verifier.max_age() == 5.0
    finally:
        await verifier.close()
        await http.close()
