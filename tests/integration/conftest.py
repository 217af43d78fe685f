"""Fixtures shared by the integration tests: settings, signing keys, signed images, a notary proxy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from portieris_webhook.config.settings import Settings

from tests.fixtures.gpg import GpgKey
from tests.fixtures.notary import make_delegation_key
from tests.fixtures.registry import PushedImage
from tests.fixtures.trust_helpers import NotaryProxy


@pytest.fixture
def settings(request: pytest.FixtureRequest, test_ca_file: Path) -> Settings:
    """Settings trusting the test CA, with what the test module's `SETTINGS` dict sets."""
    return Settings(ca_file=str(test_ca_file), **getattr(request.module, "SETTINGS", {}))


@pytest.fixture
def alice(gpg_key: Callable[[str], GpgKey]) -> GpgKey:
    """The signing key the simple-signing policies name "alice" (one for the session)."""
    return gpg_key("alice")


@pytest.fixture
def signed(image_factory, notary_signer):
    """A pushed image whose tag v1 is signed in targets/releases."""
    image = image_factory("v1")
    notary_signer.sign(image.name, image.tag, image.size, image.hex)
    return image


@pytest.fixture
def alice_signed(image_factory, notary_signer):
    """Tag v1 signed by the delegation targets/alice (and nothing else), and that key."""
    image = image_factory("v1")
    key = make_delegation_key("alice")
    notary_signer.sign(image.name, image.tag, image.size, image.hex, key=key, role="targets/alice")
    return image, key


@pytest.fixture
def signed_image(image_factory, simple_signer, alice: GpgKey) -> PushedImage:
    """A pushed image whose tag v1 `alice` signed into the lookaside store."""
    image = image_factory("v1")
    simple_signer.sign(image, alice.fingerprint)
    return image


@pytest.fixture
async def proxy(notary_server, test_ca, tmp_path):
    """A proxy in front of the real notary-server that tests can make lie."""
    p = await NotaryProxy(notary_server.url, test_ca, notary_server.ca_file, tmp_path).start()
    yield p
    await p.stop()
