"""Where simple signatures come from: a lookaside store, or the registry's extension API.

Lookaside (containers/image `lookaside`, Portieris `storeURL`):
`{storeURL}/{repository path}@{algorithm}={hex}/signature-{n}` for n = 1, 2, ...
until the store answers 404. Any other answer is an error: a store we cannot
read must not look like a store with fewer signatures.

Registry extension API (OpenShift's integrated registry, used when no storeURL
is given): `GET /extensions/v2/{repository path}/signatures/{digest}` answers
`{"signatures": [{"version": 2, "type": "atomic", "name": ..., "content": base64}]}`;
entries of another version or type are skipped, as containers/image does.
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from portieris_webhook.errors import AccessRefused, RemoteError
from portieris_webhook.images import ImageReference
from portieris_webhook.kits.nesting import check_depth
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.client import api_base
from portieris_webhook.registry.credentials import (
    RegistryCredential,
    credential_identity,
    credentials_identity,
)
from portieris_webhook.remote.outbound import ReadBudget

MAX_SIGNATURE_BYTES = 64 * 1024
"""A simple signature is an OpenPGP message of about a KiB; this leaves room for long names."""
MAX_SIGNATURES = 16
"""Signatures read per image. A store that has more is refused rather than cut short (the
one that counts could be among those left out), and each costs a GnuPG run per requirement."""
MAX_SIGNATURE_LIST_BYTES = 2 * 1024 * 1024
"""An extension API answer: MAX_SIGNATURES signatures of MAX_SIGNATURE_BYTES in base64, and room."""
EXTENSION_SIGNATURE_VERSION = 2
EXTENSION_SIGNATURE_TYPE = "atomic"


@dataclass(frozen=True)
class StoreCredentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password in a log line
        return f"StoreCredentials({self.username!r})"


class SignatureStore(abc.ABC):
    """A source of the signatures of one manifest digest."""

    @abc.abstractmethod
    async def signatures(
        self, image: ImageReference, digest: str, *, timeout: float, budget: ReadBudget | None
    ) -> list[bytes]:
        """Every signature of `digest` (at most MAX_SIGNATURES of MAX_SIGNATURE_BYTES each,
        each byte charged to `budget`); RemoteError when the store has more or larger ones."""

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def first_url(self, image: ImageReference, digest: str) -> str:
        """The URL asked first for the signatures of `digest` (names the call in messages)."""

    @abc.abstractmethod
    def answer_key(self, image: ImageReference, digest: str) -> tuple[str, str]:
        """Everything the answer for `digest` depends on: where it is read (store, repository,
        digest) and the identity of the credentials it is read with."""


class LookasideStore(SignatureStore):
    def __init__(
        self, client: AuthenticatedClient, url: str, credentials: StoreCredentials | None = None
    ) -> None:
        self.client = client
        self.url = url.rstrip("/")
        self.credentials = credentials

    def describe(self) -> str:
        return f"signature store {self.url}"

    def signature_url(self, image: ImageReference, digest: str, index: int) -> str:
        algorithm, _, hexpart = digest.partition(":")
        return f"{self.url}/{image.path}@{algorithm}={hexpart}/signature-{index}"

    def first_url(self, image: ImageReference, digest: str) -> str:
        return self.signature_url(image, digest, 1)

    def answer_key(self, image: ImageReference, digest: str) -> tuple[str, str]:
        where = self.signature_url(image, digest, 1).rpartition("/")[0]
        creds = self.credentials
        return where, credential_identity([(creds.username, creds.password)] if creds else [])

    async def signatures(
        self, image: ImageReference, digest: str, *, timeout: float, budget: ReadBudget | None
    ) -> list[bytes]:
        basic = (self.credentials.username, self.credentials.password) if self.credentials else None
        found: list[bytes] = []
        for index in range(1, MAX_SIGNATURES + 2):
            url = self.signature_url(image, digest, index)
            response = await self.client.get(
                url,
                timeout=timeout,
                max_bytes=MAX_SIGNATURE_BYTES,
                basic_auth=basic,
                budget=budget,
            )
            if response.status == 404:
                return found
            if response.status in (401, 403):
                hint = "storeSecret's credentials were refused" if basic else "set storeSecret"
                raise AccessRefused(
                    f"{self.describe()} refused access to {url} (HTTP {response.status}); {hint}"
                )
            if response.status != 200:
                raise RemoteError(f"{self.describe()} answered HTTP {response.status} for {url}")
            if index > MAX_SIGNATURES:
                raise RemoteError(
                    f"{self.describe()} has more than {MAX_SIGNATURES} signatures for {digest}, "
                    f"the most portieris reads for an image"
                )
            found.append(response.body)
        return found


class RegistryExtensionStore(SignatureStore):
    def __init__(
        self, client: AuthenticatedClient, credentials: Sequence[RegistryCredential] = ()
    ) -> None:
        self.client = client
        self.credentials = tuple(credentials)

    def describe(self) -> str:
        return "the registry's signature extension API"

    @staticmethod
    def signatures_url(image: ImageReference, digest: str) -> str:
        return f"{api_base(image.domain)}/extensions/v2/{image.path}/signatures/{digest}"

    def first_url(self, image: ImageReference, digest: str) -> str:
        return self.signatures_url(image, digest)

    def answer_key(self, image: ImageReference, digest: str) -> tuple[str, str]:
        return self.signatures_url(image, digest), credentials_identity(self.credentials)

    async def signatures(
        self, image: ImageReference, digest: str, *, timeout: float, budget: ReadBudget | None
    ) -> list[bytes]:
        url = self.signatures_url(image, digest)
        response = await self.client.get(
            url,
            credentials=self.credentials,
            timeout=timeout,
            max_bytes=MAX_SIGNATURE_LIST_BYTES,
            budget=budget,
        )
        if response.status == 404:
            raise RemoteError(
                f"{image.domain} has no signature extension API ({url} answered 404); "
                "give the policy a storeURL"
            )
        if response.status != 200:
            refused = response.status in (401, 403)
            error = AccessRefused if refused else RemoteError
            raise error(f"{self.describe()} answered HTTP {response.status} for {url}")
        return parse_signature_list(response.body, url)


def parse_signature_list(body: bytes, url: str) -> list[bytes]:
    """The atomic (version 2) signatures of an extension API answer."""
    check_depth(body, f"{url}: signature list", RemoteError)
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise RemoteError(f"{url}: signature list is not JSON") from exc
    entries = document.get("signatures") if isinstance(document, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise RemoteError(f"{url}: `signatures` is not a list")
    found: list[bytes] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise RemoteError(f"{url}: a signature entry is not an object")
        if entry.get("version") != EXTENSION_SIGNATURE_VERSION:
            continue
        if entry.get("type") != EXTENSION_SIGNATURE_TYPE:
            continue
        if len(found) == MAX_SIGNATURES:
            raise RemoteError(
                f"{url}: the signature list has more than {MAX_SIGNATURES} signatures, "
                "the most portieris reads for an image"
            )
        try:
            signature = base64.b64decode(str(entry.get("content") or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RemoteError(f"{url}: signature content is not base64") from exc
        if len(signature) > MAX_SIGNATURE_BYTES:
            raise RemoteError(
                f"{url}: signature {len(found) + 1} is larger than {MAX_SIGNATURE_BYTES} bytes, "
                "the most portieris reads for a signature"
            )
        found.append(signature)
    return found
