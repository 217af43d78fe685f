"""HTTP GET with the Docker registry token flow, shared by registry and notary clients.

Anonymous first. On 401 with `WWW-Authenticate: Bearer realm=..,service=..,scope=..`,
get a token from the realm (anonymously when no credential is known, else with
each pull-secret credential in turn) and retry; on 401 with `Basic`, retry with
each credential. Tokens are cached until they expire. The calls themselves go
through the shared transport (outbound.Transport), which reads within limits and
turns every transport failure into a RemoteError.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from portieris_webhook.kits.bounded import BoundedDict
from portieris_webhook.kits.nesting import too_deep
from portieris_webhook.registry.credentials import RegistryCredential
from portieris_webhook.remote.outbound import AnswerLimits, ReadBudget, Response, Transport

LOG = logging.getLogger(__name__)
DEFAULT_TOKEN_LIFETIME = 60.0
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_TOKEN_BYTES = 256 * 1024
"""A token answer is a small JSON document (a JWT is a few KiB)."""
MAX_REMEMBERED = 1024
"""Tokens and remembered challenges kept per client (each a few hundred bytes), least
recently used dropped first, so naming new repositories cannot grow memory without bound."""
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: Mapping[str, str]


def _directory(url: str) -> str:
    return url.rsplit("/", 1)[0]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def basic_authorization(username: str, password: str) -> str:
    """The value of an `Authorization: Basic` header (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class AuthenticatedClient:
    def __init__(self, http: Transport) -> None:
        self.http = http
        self._tokens: BoundedDict[
            tuple[str, str, str, str, RegistryCredential | None], tuple[str, float]
        ] = BoundedDict(MAX_REMEMBERED)
        # URL "directory" -> the challenge it answered with and the credential that passed it,
        # so later requests there skip the anonymous round trip that only fetches a 401.
        self._remembered: BoundedDict[str, tuple[Challenge, RegistryCredential | None]] = (
            BoundedDict(MAX_REMEMBERED)
        )

    async def get(
        self,
        url: str,
        *,
        credentials: Sequence[RegistryCredential] = (),
        headers: Mapping[str, str] | None = None,
        timeout: float,
        max_bytes: int = MAX_BODY_BYTES,
        basic_auth: tuple[str, str] | None = None,
        budget: ReadBudget | None = None,
    ) -> Response:
        """GET `url`, authenticating as the server asks. Raises RemoteError on transport failure.

        At most `max_bytes` of a 200 answer are read, and every byte received (token
        answers included) is charged to `budget` when one is given: past either limit,
        reading stops with a RemoteError naming the limit and the server.
        """
        base = dict(headers or {})
        if basic_auth:
            base["Authorization"] = basic_authorization(*basic_auth)
        limits = AnswerLimits(max_bytes, budget)
        first = await self._remembered_attempt(url, base, credentials, timeout, limits)
        if first is None:
            first = await self.http.get(url, base, timeout, limits)
        if first.status != 401:
            return first
        challenge = parse_challenge(first.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return first
        attempts: Sequence[RegistryCredential | None] = list(credentials) or [None]
        last = first
        for credential in attempts:
            auth = await self._authorization(challenge, credential, timeout, url, budget)
            if auth is None:
                continue
            last = await self.http.get(url, {**base, "Authorization": auth}, timeout, limits)
            if last.status != 401:
                if "Authorization" not in base:
                    self._remembered.put(_directory(url), (challenge, credential))
                return last
        return last

    async def _remembered_attempt(
        self,
        url: str,
        base: Mapping[str, str],
        credentials: Sequence[RegistryCredential],
        timeout: float,
        limits: AnswerLimits,
    ) -> Response | None:
        """Go straight to the token/credential that worked here before, if it is still ours."""
        if "Authorization" in base:
            return None
        remembered = self._remembered.get(_directory(url))
        if remembered is None:
            return None
        challenge, credential = remembered
        if credential is not None and credential not in credentials:
            return None
        auth = await self._authorization(challenge, credential, timeout, url, limits.budget)
        if auth is None:
            return None
        return await self.http.get(url, {**base, "Authorization": auth}, timeout, limits)

    async def _authorization(
        self,
        challenge: Challenge,
        credential: RegistryCredential | None,
        timeout: float,
        url: str,
        budget: ReadBudget | None,
    ) -> str | None:
        if challenge.scheme == "basic":
            if credential is None:
                return None
            return basic_authorization(credential.username, credential.password)
        if challenge.scheme != "bearer" or not challenge.params.get("realm"):
            return None
        token = await self._token(challenge.params, credential, timeout, _origin(url), budget)
        return f"Bearer {token}" if token else None

    async def _token(
        self,
        params: Mapping[str, str],
        credential: RegistryCredential | None,
        timeout: float,
        origin: str,
        budget: ReadBudget | None,
    ) -> str | None:
        """A bearer token for `origin` from the realm it named.

        The cache key holds the asking origin and the whole credential (password and the
        secret it came from), so a token is only ever sent back to the server that asked
        for it, and only on behalf of the credential that earned it.
        """
        realm, service, scope = params["realm"], params.get("service", ""), params.get("scope", "")
        if urlsplit(realm).scheme != "https":
            LOG.warning("%s names token realm %r, which is not https: not used", origin, realm)
            return None
        key = (origin, realm, service, scope, credential)
        cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        query = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        headers = {}
        if credential is not None:
            headers["Authorization"] = basic_authorization(credential.username, credential.password)
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        response = await self.http.get(url, headers, timeout, AnswerLimits(MAX_TOKEN_BYTES, budget))
        if response.status != 200:
            return None
        if too_deep(response.body):
            return None
        try:
            document = json.loads(response.body)
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            return None
        if not isinstance(token, str) or not token:
            return None
        # Refresh a little early so a token never expires in flight.
        self._tokens.put(key, (token, time.monotonic() + max(1.0, lifetime - 5.0)))
        return token
