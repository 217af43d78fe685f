"""The OCI distribution reads signature formats need beyond resolving a tag: a manifest
that may be absent, blobs checked against their digest, and the referrers of a digest.

Referrers are found the two ways the OCI 1.1 distribution specification gives: the API
(`GET /v2/<name>/referrers/<digest>`, an image index, paginated by `Link` headers) and,
where a registry has no such API (it answers 404), the referrers tag schema (an index
tagged `sha256-<hex>`). Servers may ignore `?artifactType=`, and some report a referrer's
config media type as its artifact type, so callers filter on what they read themselves.

Everything read is bounded: manifests by the registry's own manifest limit, blobs by the
caller's size, listings by entries and pages; a listing over its bounds is refused naming
the limit rather than cut, so what is verified never depends on where a cut fell.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portieris_webhook.errors import RemoteError, VerificationError
from portieris_webhook.images import ImageReference
from portieris_webhook.kits.nesting import loads
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.client import (
    ACCEPT_MANIFESTS,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    api_base,
    digest_of_body,
    raise_for_status,
)
from portieris_webhook.registry.credentials import RegistryCredential
from portieris_webhook.remote.outbound import ReadBudget

MAX_REFERRERS = 128
"""Referrers of one digest read at most; a listing with more is refused."""
MAX_REFERRER_PAGES = 4
MAX_LAYERS = 64
"""Layers of one signature manifest read at most (cosign itself refuses over 1,000)."""


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index points at."""

    media_type: str
    digest: str
    size: int
    artifact_type: str = ""
    annotations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest as served: its digest (of the body), media type, and what it lists."""

    digest: str
    media_type: str
    artifact_type: str
    config_media_type: str
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Reads:
    """Who reads, with what, until when: the same for every call of one verification."""

    credentials: Sequence[RegistryCredential]
    timeout: float
    budget: ReadBudget | None = None


def descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, Mapping):
        raise VerificationError(f"{where}: a descriptor must be a JSON object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or ":" not in digest:
        raise VerificationError(f"{where}: a descriptor lacks mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise VerificationError(f"{where}: a descriptor's size must be a non-negative integer")
    annotations = value.get("annotations")
    artifact_type = value.get("artifactType")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=artifact_type if isinstance(artifact_type, str) else "",
        annotations=(
            {k: v for k, v in annotations.items() if isinstance(v, str)}
            if isinstance(annotations, Mapping)
            else None
        ),
    )


def _listed(doc: Any, key: str, limit: int, where: str) -> list[Descriptor]:
    if not isinstance(doc, Mapping):
        raise VerificationError(f"{where} is not a JSON object")
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise VerificationError(f"{where}: {key} must be a list")
    if len(entries) > limit:
        raise VerificationError(f"{where} lists {len(entries)} {key}; at most {limit} are read")
    return [descriptor(e, f"{where} {key}[{i}]") for i, e in enumerate(entries)]


class OciClient:
    """Manifests, blobs and referrers of one registry API, through the pod's credentials."""

    def __init__(self, auth: AuthenticatedClient) -> None:
        self.auth = auth

    async def manifest(
        self, repository: ImageReference, reference: str, reads: Reads
    ) -> Manifest | None:
        """The manifest `reference` (tag or digest) names in `repository`; None if absent."""
        where = f"{repository.repository}:{reference}"
        found = await self._document(repository, reference, ACCEPT_MANIFESTS, reads)
        if found is None:
            return None
        digest, doc = found
        config = doc.get("config")
        media_type, artifact_type = doc.get("mediaType"), doc.get("artifactType")
        return Manifest(
            digest=digest,
            media_type=media_type if isinstance(media_type, str) else "",
            artifact_type=artifact_type if isinstance(artifact_type, str) else "",
            config_media_type=(
                str(config.get("mediaType", "")) if isinstance(config, Mapping) else ""
            ),
            layers=tuple(_listed(doc, "layers", MAX_LAYERS, f"{where} manifest")),
        )

    async def _document(
        self, repository: ImageReference, reference: str, accept: str, reads: Reads
    ) -> tuple[str, Mapping[str, Any]] | None:
        """The digest (of the body) and the JSON object of a manifest or index; None if
        the registry has none under `reference`."""
        where = f"{repository.repository}:{reference}"
        response = await self.auth.get(
            f"{api_base(repository.domain)}/v2/{repository.path}/manifests/{reference}",
            credentials=reads.credentials,
            headers={"Accept": accept},
            timeout=reads.timeout,
            max_bytes=MAX_MANIFEST_BYTES,
            budget=reads.budget,
        )
        if response.status == 404:
            return None
        raise_for_status(response, where, reads.credentials)
        digest = digest_of_body(response.body, response.headers.get("Docker-Content-Digest"), where)
        if reference.startswith("sha256:") and digest != reference:
            raise RemoteError(f"{where}: the registry served a manifest with digest {digest}")
        doc = loads(response.body, f"{where}: manifest", VerificationError)
        if not isinstance(doc, Mapping):
            raise VerificationError(f"{where}: the manifest is not a JSON object")
        return digest, doc

    async def blob(
        self, repository: ImageReference, item: Descriptor, max_bytes: int, reads: Reads
    ) -> bytes:
        """The blob `item` names, at most `max_bytes`, checked against its digest."""
        where = f"{repository.repository}@{item.digest}"
        if item.size > max_bytes:
            raise VerificationError(f"{where}: {item.size} bytes; at most {max_bytes} are read")
        response = await self.auth.get(
            f"{api_base(repository.domain)}/v2/{repository.path}/blobs/{item.digest}",
            credentials=reads.credentials,
            timeout=reads.timeout,
            max_bytes=max_bytes,
            budget=reads.budget,
        )
        raise_for_status(response, where, reads.credentials)
        algorithm, _, hexpart = item.digest.partition(":")
        if algorithm != "sha256" or hashlib.sha256(response.body).hexdigest() != hexpart:
            raise RemoteError(f"{where}: the registry served a blob with another digest")
        return response.body

    async def referrers(
        self, repository: ImageReference, digest: str, reads: Reads
    ) -> list[Descriptor]:
        """The referrers of `digest`: by the API, else by the referrers tag schema."""
        listed = await self._referrers_api(repository, digest, reads)
        if listed is not None:
            return listed
        algorithm, _, hexpart = digest.partition(":")
        index = await self._index(repository, f"{algorithm}-{hexpart}", reads)
        return index or []

    async def _referrers_api(
        self, repository: ImageReference, digest: str, reads: Reads
    ) -> list[Descriptor] | None:
        url: str | None = f"{api_base(repository.domain)}/v2/{repository.path}/referrers/{digest}"
        found: list[Descriptor] = []
        where = f"{repository.repository}: referrers of {digest}"
        for _ in range(MAX_REFERRER_PAGES):
            if url is None:
                return found
            response = await self.auth.get(
                url,
                credentials=reads.credentials,
                headers={"Accept": OCI_INDEX},
                timeout=reads.timeout,
                max_bytes=MAX_MANIFEST_BYTES,
                budget=reads.budget,
            )
            if response.status == 404 and not found:
                return None
            raise_for_status(response, where, reads.credentials)
            doc = loads(response.body, where, VerificationError)
            found.extend(_listed(doc, "manifests", MAX_REFERRERS, where))
            if len(found) > MAX_REFERRERS:
                raise VerificationError(
                    f"{where}: more than {MAX_REFERRERS} referrers; at most {MAX_REFERRERS} are read"
                )
            url = _next_page(response.headers.get("Link", ""), api_base(repository.domain))
        if url is not None:
            raise VerificationError(f"{where}: more than {MAX_REFERRER_PAGES} pages")
        return found

    async def _index(
        self, repository: ImageReference, tag: str, reads: Reads
    ) -> list[Descriptor] | None:
        # Asked with every manifest type: a registry asked for a type it does not hold may
        # convert (distribution serves a Docker v2 manifest as schema 1), and the tag may name
        # something else than an index, which lists no referrers.
        found = await self._document(repository, tag, ACCEPT_MANIFESTS, reads)
        if found is None:
            return None
        if found[1].get("mediaType") not in (None, OCI_INDEX, DOCKER_MANIFEST_LIST):
            return []
        where = f"{repository.repository}:{tag} referrers index"
        return _listed(found[1], "manifests", MAX_REFERRERS, where)


def _next_page(link: str, base: str) -> str | None:
    """The `rel="next"` target of a Link header (RFC 8288), made absolute."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            url = target.strip().strip("<>")
            if url.startswith("/"):
                return base + url
            if url.startswith(base + "/"):
                return url
            raise RemoteError(f"the registry's next page {url!r} is on another server")
    return None
