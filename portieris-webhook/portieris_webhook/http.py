"""Outbound HTTPS: one TLS context (system roots plus --ca-file) and one shared client session."""

from __future__ import annotations

import ssl

import aiohttp

from portieris_webhook.errors import ConfigurationError


def client_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """System trust roots, plus the PEM bundle of `ca_file` when given."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"--ca-file {ca_file}: cannot load CA bundle: {exc}") from exc
    return context


class HttpClient:
    """Owns the aiohttp session every verifier shares; created inside the running loop."""

    def __init__(self, ca_file: str | None, user_agent: str = "portieris-webhook") -> None:
        self.ssl_context = client_ssl_context(ca_file)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=100, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self._user_agent}, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
