"""Fetching notary trust data over HTTPS, with the registry token flow (registry/auth.py)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from portieris_webhook.errors import AccessRefused, RemoteError
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.credentials import RegistryCredential

DOCKER_HUB_NOTARY = "https://notary.docker.io"


def normalise_server(url: str) -> str:
    """`notary.example.com` -> `https://notary.example.com`: no trailing slash, host lower-case,
    no default port, so every spelling of one server finds the same cache and root pin."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = "https://" + text
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    host, slash, path = rest.partition("/")
    host = host.lower()
    default_port = {"https": ":443", "http": ":80"}.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}{slash}{path}"


def metadata_url(server: str, gun: str, role: str) -> str:
    """`{server}/v2/{gun}/_trust/tuf/{role}.json` (role may be `N.root` for a root version)."""
    return f"{server}/v2/{quote(gun, safe='/:')}/_trust/tuf/{quote(role, safe='/.')}.json"


class NotaryClient:
    """GETs metadata documents from notary servers; knows nothing about their meaning."""

    def __init__(self, http: AuthenticatedClient) -> None:
        self.http = http

    async def fetch(
        self,
        server: str,
        gun: str,
        role: str,
        *,
        credentials: Sequence[RegistryCredential],
        timeout: float,
        max_bytes: int,
    ) -> bytes | None:
        """Raw bytes of `role` for `gun`, or None if the server has none (404)."""
        url = metadata_url(server, gun, role)
        response = await self.http.get(
            url, credentials=credentials, timeout=timeout, max_bytes=max_bytes
        )
        if response.status == 200:
            return response.body
        if response.status == 404:
            return None
        if response.status in (401, 403):
            how = "with the pull secret credentials" if credentials else "anonymously"
            raise AccessRefused(
                f"notary server {server} refused access to trust data of {gun} "
                f"(HTTP {response.status}, tried {how})"
            )
        raise RemoteError(
            f"notary server {server} answered HTTP {response.status} for {role} of {gun}"
        )
