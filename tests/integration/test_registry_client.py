"""The registry v2 client against the real docker-registry and small misbehaving servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from portieris_webhook.errors import RemoteError, VerificationError
from portieris_webhook.images import parse_image
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.client import (
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    RegistryClient,
)
from portieris_webhook.registry.credentials import RegistryCredential
from portieris_webhook.remote.http_client import HttpClient

from tests.fixtures.simple_helpers import serve, server_ssl_context

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(registry) -> AsyncIterator[RegistryClient]:
    http = HttpClient(str(registry.ca_file))
    try:
        yield RegistryClient(AuthenticatedClient(http))
    finally:
        await http.close()


async def test_a_tag_resolves_to_the_digest_of_the_manifest_served(client, image_factory) -> None:
    image = image_factory("v1")
    resolved = await client.resolve(parse_image(image.ref), timeout=5)
    assert resolved.digest == image.digest
    assert resolved.media_type == DOCKER_MANIFEST_V2
    assert resolved.body == image.manifest


async def test_a_digest_reference_is_fetched_and_checked_by_digest(client, image_factory) -> None:
    image = image_factory("v1")
    resolved = await client.resolve(parse_image(image.digest_ref), timeout=5)
    assert resolved.digest == image.digest and resolved.body == image.manifest


async def test_an_unknown_tag_is_no_such_manifest(client, image_factory) -> None:
    image = image_factory("v1")
    with pytest.raises(VerificationError, match="the registry has no such manifest"):
        await client.resolve(parse_image(f"{image.name}:missing"), timeout=5)


async def test_an_oci_index_resolves_to_its_own_top_level_digest(
    client, registry, image_factory
) -> None:
    image = image_factory("v1")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": DOCKER_MANIFEST_V2,
                    "digest": image.digest,
                    "size": image.size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    auth = client.auth
    url = f"{registry.url}/v2/{image.repo}/manifests/multi"
    async with auth.http.session.put(
        url, data=index, headers={"Content-Type": OCI_INDEX}
    ) as response:
        assert response.status == 201, await response.text()

    resolved = await client.resolve(parse_image(f"{image.name}:multi"), timeout=5)

    assert resolved.digest == "sha256:" + hashlib.sha256(index).hexdigest()
    assert resolved.media_type == OCI_INDEX


async def test_a_private_registry_needs_the_pull_secret_credentials(auth_registry) -> None:
    image = auth_registry.push_image("team/client-private", "v1")
    http = HttpClient(str(auth_registry.ca_file))
    client = RegistryClient(AuthenticatedClient(http))
    user, password = auth_registry.credentials
    good = RegistryCredential(image.host, user, password, "test")
    bad = RegistryCredential(image.host, user, "nope", "test")
    try:
        with pytest.raises(RemoteError, match="no pull secret has credentials"):
            await client.resolve(parse_image(image.ref), timeout=5)
        with pytest.raises(RemoteError, match="credentials were refused"):
            await client.resolve(parse_image(image.ref), credentials=[bad], timeout=5)
        resolved = await client.resolve(parse_image(image.ref), credentials=[bad, good], timeout=5)
    finally:
        await http.close()
    assert resolved.digest == image.digest


class FakeRegistry:
    """Serves one manifest behind the bearer-token flow, optionally lying or stalling."""

    BODY = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'

    def __init__(self, header_digest: str | None = None, delay: float = 0.0) -> None:
        self.header_digest = header_digest
        self.delay = delay
        self.host = ""
        self.token_requests = 0
        self.manifest_requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self.token)
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self.manifest)
        return app

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        return web.json_response({"token": "t0k", "expires_in": 300})

    async def manifest(self, request: web.Request) -> web.Response:
        self.manifest_requests += 1
        if request.headers.get("Authorization") != "Bearer t0k":
            challenge = f'Bearer realm="https://{self.host}/token",service="fake",scope="x"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        await asyncio.sleep(self.delay)
        headers = {"Docker-Content-Digest": self.header_digest} if self.header_digest else {}
        return web.Response(
            body=self.BODY,
            headers=headers,
            content_type="application/vnd.oci.image.manifest.v1+json",
        )


async def resolve_from(fake: FakeRegistry, test_ca, tmp_path, times: int = 1, timeout: float = 5):
    async with serve(fake.app(), server_ssl_context(test_ca, tmp_path)) as host:
        fake.host = host
        http = HttpClient(str(test_ca.write(tmp_path / "ca")))
        client = RegistryClient(AuthenticatedClient(http))
        try:
            return [
                await client.resolve(parse_image(f"{host}/team/app:v1"), timeout=timeout)
                for _ in range(times)
            ]
        finally:
            await http.close()


async def test_a_bearer_token_is_fetched_once_and_reused(test_ca, tmp_path) -> None:
    fake = FakeRegistry()
    results = await resolve_from(fake, test_ca, tmp_path, times=3)
    assert {r.digest for r in results} == {
        "sha256:" + hashlib.sha256(FakeRegistry.BODY).hexdigest()
    }
    assert fake.token_requests == 1
    # One anonymous 401; after that the client goes straight to the cached token.
    assert fake.manifest_requests == 4


async def test_a_docker_content_digest_that_does_not_match_the_body_is_refused(
    test_ca, tmp_path
) -> None:
    fake = FakeRegistry(header_digest="sha256:" + "0" * 64)
    with pytest.raises(RemoteError, match="the registry says the manifest is sha256:0000"):
        await resolve_from(fake, test_ca, tmp_path)


async def test_a_registry_that_does_not_answer_in_time_fails_at_the_deadline(
    test_ca, tmp_path
) -> None:
    fake = FakeRegistry(delay=2.0)
    async with serve(fake.app(), server_ssl_context(test_ca, tmp_path)) as host:
        fake.host = host
        http = HttpClient(str(test_ca.write(tmp_path / "ca")))
        client = RegistryClient(AuthenticatedClient(http))
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(RemoteError, match=r"no answer within 0.3s"):
                await client.resolve(parse_image(f"{host}/team/app:v1"), timeout=0.3)
            elapsed = asyncio.get_running_loop().time() - started
        finally:
            await http.close()
    assert elapsed < 1.0


async def test_an_untrusted_registry_certificate_is_a_clear_error(image_factory) -> None:
    image = image_factory("v1")
    http = HttpClient(None)
    try:
        with pytest.raises(RemoteError, match="TLS certificate not trusted"):
            await RegistryClient(AuthenticatedClient(http)).resolve(
                parse_image(image.ref), timeout=5
            )
    finally:
        await http.close()
