"""A server that answers with a status its caller cannot use fails the same way whoever asked.

Registry manifests, notary metadata, lookaside signatures and the registry's signature
extension API all see a RemoteError naming the status (an AccessRefused for 401 and 403),
as they do for a timeout, a TLS failure or an answer too large (see the other tests here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from portieris_webhook.errors import AccessRefused, RemoteError
from portieris_webhook.images import parse_image
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.client import RegistryClient
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.simple.stores import LookasideStore, RegistryExtensionStore
from portieris_webhook.trust.client import NotaryClient

from tests.fixtures.hostile import routes_app
from tests.fixtures.simple_helpers import serve, server_ssl_context

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "a" * 64


def answering(status: int) -> web.Application:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    return routes_app({"/{tail:.*}": handler})


async def ask(caller: str, auth: AuthenticatedClient, host: str) -> object:
    image = parse_image(f"{host}/team/app:v1")
    if caller == "registry":
        return await RegistryClient(auth).resolve(image, timeout=5.0)
    if caller == "notary":
        return await NotaryClient(auth).fetch(
            f"https://{host}",
            image.repository,
            "timestamp",
            credentials=(),
            timeout=5.0,
            max_bytes=1024,
        )
    if caller == "lookaside":
        store = LookasideStore(auth, f"https://{host}/signatures")
        return await store.signatures(image, DIGEST, timeout=5.0, budget=None)
    return await RegistryExtensionStore(auth).signatures(image, DIGEST, timeout=5.0, budget=None)


@pytest.fixture
async def auth(test_ca_file) -> AsyncIterator[AuthenticatedClient]:
    http = HttpClient(str(test_ca_file))
    try:
        yield AuthenticatedClient(http)
    finally:
        await http.close()


CALLERS = ["registry", "notary", "lookaside", "extension"]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("status", [500, 502, 429])
async def test_an_unusable_status_is_a_remote_error_whoever_asked(
    auth, test_ca, tmp_path, caller, status
) -> None:
    async with serve(answering(status), server_ssl_context(test_ca, tmp_path)) as host:
        with pytest.raises(RemoteError, match=f"HTTP {status}") as raised:
            await ask(caller, auth, host)
    assert not isinstance(raised.value, AccessRefused)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_an_access_refused_remote_error_whoever_asked(
    auth, test_ca, tmp_path, caller, status
) -> None:
    async with serve(answering(status), server_ssl_context(test_ca, tmp_path)) as host:
        with pytest.raises(AccessRefused, match=f"HTTP {status}"):
            await ask(caller, auth, host)
