"""Fixtures shared by the trust tests against the real notary-server."""

from __future__ import annotations

import pytest

from tests.fixtures.trust_helpers import NotaryProxy


@pytest.fixture
def signed(image_factory, notary_signer):
    """A pushed image whose tag v1 is signed in targets/releases."""
    image = image_factory("v1")
    notary_signer.sign(image.name, image.tag, image.size, image.hex)
    return image


@pytest.fixture
async def proxy(notary_server, test_ca, tmp_path):
    """A proxy in front of the real notary-server that tests can make lie."""
    p = await NotaryProxy(notary_server.url, test_ca, notary_server.ca_file, tmp_path).start()
    yield p
    await p.stop()
