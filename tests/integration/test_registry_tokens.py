"""Bearer tokens go back only to the server that asked, for the credential that earned them."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp import web

from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.credentials import RegistryCredential
from portieris_webhook.remote.http_client import HttpClient

from tests.fixtures.simple_helpers import serve, server_ssl_context

pytestmark = pytest.mark.integration

SECRET_TOKEN = "victims-token"
SCOPE = "repository:victim/private:pull"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Servers:
    """A token realm, the victim's registry behind it, and an attacker's registry that
    answers with the very same challenge (realm, service and scope) to harvest the token."""

    def __init__(self) -> None:
        self.realm_host = ""
        self.seen_by_attacker: list[str] = []
        self.token_requests: list[str] = []

    def challenge(self, realm_scheme: str = "https") -> dict[str, str]:
        realm = f"{realm_scheme}://{self.realm_host}/token"
        return {"WWW-Authenticate": f'Bearer realm="{realm}",service="hub",scope="{SCOPE}"'}

    def realm(self) -> web.Application:
        async def token(request: web.Request) -> web.Response:
            self.token_requests.append(request.headers.get("Authorization", ""))
            if request.headers.get("Authorization") == basic("victim", "right"):
                return web.json_response({"token": SECRET_TOKEN, "expires_in": 300})
            return web.json_response({"errors": ["denied"]}, status=401)

        app = web.Application()
        app.router.add_get("/token", token)
        return app

    def victim(self) -> web.Application:
        async def manifest(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") == f"Bearer {SECRET_TOKEN}":
                return web.Response(body=b"{}")
            return web.Response(status=401, headers=self.challenge())

        app = web.Application()
        app.router.add_get("/v2/victim/private/manifests/v1", manifest)
        return app

    def attacker(self, realm_scheme: str = "https") -> web.Application:
        async def manifest(request: web.Request) -> web.Response:
            self.seen_by_attacker.append(request.headers.get("Authorization", ""))
            return web.Response(status=401, headers=self.challenge(realm_scheme))

        app = web.Application()
        app.router.add_get("/v2/x/manifests/v1", manifest)
        return app


async def fetch(client: AuthenticatedClient, url: str, *credentials: Any) -> int:
    return (await client.get(url, credentials=list(credentials), timeout=5)).status


async def test_a_token_is_never_sent_to_another_registry_or_for_another_credential(
    test_ca, tmp_path
) -> None:
    servers = Servers()
    context = server_ssl_context(test_ca, tmp_path)
    http = HttpClient(str(test_ca.write(tmp_path / "ca")))
    client = AuthenticatedClient(http)
    try:
        async with (
            serve(servers.realm(), context) as realm,
            serve(servers.victim(), context) as victim,
            serve(servers.attacker(), context) as attacker,
        ):
            servers.realm_host = realm
            right = RegistryCredential(victim, "victim", "right", "Secret team-a/pull")
            assert (
                await fetch(client, f"https://{victim}/v2/victim/private/manifests/v1", right)
                == 200
            )

            # Same user name, wrong password, from the attacker's own pull secret.
            forged = RegistryCredential(attacker, "victim", "guess", "Secret evil/pull")
            assert await fetch(client, f"https://{attacker}/v2/x/manifests/v1", forged) == 401
            assert await fetch(client, f"https://{attacker}/v2/x/manifests/v1") == 401
    finally:
        await http.close()
    assert servers.seen_by_attacker and all(
        SECRET_TOKEN not in header for header in servers.seen_by_attacker
    )


async def test_a_plain_http_token_realm_is_not_used(test_ca, tmp_path) -> None:
    servers = Servers()
    http = HttpClient(str(test_ca.write(tmp_path / "ca")))
    client = AuthenticatedClient(http)
    try:
        async with (
            serve(servers.realm()) as realm,
            serve(servers.attacker("http"), server_ssl_context(test_ca, tmp_path)) as attacker,
        ):
            servers.realm_host = realm
            creds = RegistryCredential(attacker, "victim", "right", "Secret team-a/pull")
            assert await fetch(client, f"https://{attacker}/v2/x/manifests/v1", creds) == 401
    finally:
        await http.close()
    assert servers.token_requests == []  # the credentials never travelled in clear text
