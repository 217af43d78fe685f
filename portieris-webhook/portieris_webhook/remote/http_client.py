"""Outbound HTTPS: one TLS context (system roots plus --ca-file), one shared client session,
and the one GET every verifier's call goes through (outbound.Transport).

Every way a call can fail on the wire (no answer in time, an untrusted certificate, a
failed handshake, no connection, an answer past its limit) is a RemoteError here, so
callers see one error type whatever they asked for.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from portieris_webhook.errors import ConfigurationError, RemoteError
from portieris_webhook.remote.outbound import AnswerLimits, ReadBudget, Response, waiting_for

MAX_ERROR_BODY_BYTES = 16 * 1024
"""Of an answer other than 200 only this much is read (then dropped: nothing uses it), so
a short one leaves the connection reusable and a long one costs no more than this."""


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
            connector = aiohttp.TCPConnector(
                ssl=self.ssl_context, limit=100, limit_per_host=8, ttl_dns_cache=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self._user_agent}, trust_env=False
            )
        return self._session

    async def get(
        self, url: str, headers: Mapping[str, str], timeout: float, limits: AnswerLimits
    ) -> Response:
        """GET `url` (outbound.Transport): the answer, or RemoteError saying what failed."""
        host = urlsplit(url).netloc
        try:
            with waiting_for(host, url):
                async with asyncio.timeout(timeout):
                    async with self.session.get(url, headers=headers, allow_redirects=True) as resp:
                        body = await _read_body(resp, limits, host)
                        return Response(resp.status, dict(resp.headers), body)
        except TimeoutError as exc:
            raise RemoteError(f"{host}: no answer within {timeout:g}s") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise RemoteError(
                f"{host}: TLS certificate not trusted ({exc.certificate_error}); "
                "add its CA with --ca-file"
            ) from exc
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise RemoteError(f"{host}: TLS handshake failed: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise RemoteError(f"{host}: cannot reach server: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def _read_body(resp: aiohttp.ClientResponse, limits: AnswerLimits, host: str) -> bytes:
    """The body of a 200 answer, read chunk by chunk and never past a limit.

    Of any other answer at most MAX_ERROR_BODY_BYTES are read and dropped.
    """
    where = f"{host} (GET {resp.url})"
    if resp.status != 200:
        await _drain(resp, min(MAX_ERROR_BODY_BYTES, limits.max_bytes), limits.budget, where)
        return b""
    if resp.content_length is not None and resp.content_length > limits.max_bytes:
        raise _too_large(where, limits.max_bytes, resp.content_length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(min(64 * 1024, limits.max_bytes + 1 - size)):
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(where, limits.max_bytes)
        if limits.budget is not None:
            limits.budget.charge(len(chunk), where)
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(
    resp: aiohttp.ClientResponse, limit: int, budget: ReadBudget | None, where: str
) -> None:
    size = 0
    while size < limit and (chunk := await resp.content.read(limit - size)):
        size += len(chunk)
        if budget is not None:
            budget.charge(len(chunk), where)


def _too_large(where: str, limit: int, declared: int | None = None) -> RemoteError:
    said = f" (it declares {declared} bytes)" if declared is not None else ""
    return RemoteError(
        f"{where}: the answer is larger than {limit} bytes, the most portieris reads for it{said}"
    )
