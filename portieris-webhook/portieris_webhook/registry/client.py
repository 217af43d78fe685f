"""Docker/OCI registry v2 client for manifests: which digest does a tag name right now?

The digest is the one of the manifest the registry serves for the reference: for
a manifest list or an OCI index that is the top-level digest, which is what a
simple signature or a notary target names and what the pod gets pinned to.
When a body is fetched, its sha256 is the digest, and a `Docker-Content-Digest`
header that disagrees with it is an error: a registry that lies about content
does not get to choose what we verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from portieris_webhook.errors import AccessRefused, RemoteError, VerificationError
from portieris_webhook.images import DEFAULT_DOMAIN, ImageReference
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.credentials import RegistryCredential
from portieris_webhook.remote.outbound import ReadBudget, Response

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPES = (DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""The most a registry accepts for a manifest (distribution's limit; containers/image's too)."""
# Docker Hub's registry API lives on another host than the name users write.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DIGEST_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


@dataclass(frozen=True)
class ResolvedManifest:
    """The manifest a reference names: its digest, media type and (when fetched) its bytes."""

    digest: str
    media_type: str
    body: bytes | None = None

    def matches(self, digest: str) -> bool:
        """Whether `digest` names this manifest (any supported algorithm when the body is known)."""
        if digest == self.digest:
            return True
        algorithm, _, hexpart = digest.partition(":")
        hasher = DIGEST_ALGORITHMS.get(algorithm)
        if self.body is None or hasher is None:
            return False
        return hasher(self.body).hexdigest() == hexpart


def api_base(domain: str) -> str:
    """`https://host[:port]` of the registry API for a normalised image domain."""
    host = DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
    return f"https://{host}"


def manifest_url(image: ImageReference, reference: str) -> str:
    return f"{api_base(image.domain)}/v2/{image.path}/manifests/{reference}"


def manifest_reference(image: ImageReference) -> str:
    """What the registry is asked for: the digest if the image names one, else its tag."""
    return image.digest or image.effective_tag or "latest"


def digest_of_body(body: bytes, header: str | None, where: str) -> str:
    """sha256 of `body`; a Docker-Content-Digest `header` must name the same bytes."""
    computed = "sha256:" + hashlib.sha256(body).hexdigest()
    if not header:
        return computed
    algorithm, _, hexpart = header.partition(":")
    hasher = DIGEST_ALGORITHMS.get(algorithm)
    if hasher is None or hasher(body).hexdigest() != hexpart:
        raise RemoteError(
            f"{where}: the registry says the manifest is {header}, but the bytes it served are "
            f"{computed}"
        )
    return computed


class RegistryClient:
    """Reads manifests from registries with the pull credentials of the pod."""

    def __init__(self, auth: AuthenticatedClient) -> None:
        self.auth = auth

    async def resolve(
        self,
        image: ImageReference,
        *,
        credentials: Sequence[RegistryCredential] = (),
        timeout: float,
        budget: ReadBudget | None = None,
    ) -> ResolvedManifest:
        """The manifest `image` names: by digest if it has one, else by its (effective) tag.

        At most MAX_MANIFEST_BYTES are read, each byte charged to `budget`.
        """
        reference = manifest_reference(image)
        url = manifest_url(image, reference)
        response = await self.auth.get(
            url,
            credentials=credentials,
            headers={"Accept": ACCEPT_MANIFESTS},
            timeout=timeout,
            max_bytes=MAX_MANIFEST_BYTES,
            budget=budget,
        )
        where = f"{image.repository}:{reference}" if not image.digest else image.normalised
        raise_for_status(response, where, credentials)
        media_type = _media_type(response)
        digest = digest_of_body(response.body, response.headers.get("Docker-Content-Digest"), where)
        if image.digest and not ResolvedManifest(digest, media_type, response.body).matches(
            image.digest
        ):
            raise RemoteError(f"{where}: the registry served a manifest with digest {digest}")
        return ResolvedManifest(image.digest or digest, media_type, response.body)


def _media_type(response: Response) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip()


def raise_for_status(
    response: Response, where: str, credentials: Sequence[RegistryCredential]
) -> None:
    if response.status == 200:
        return
    if response.status == 404:
        raise VerificationError(f"{where}: the registry has no such manifest")
    if response.status in (401, 403):
        hint = (
            "the pull secrets' credentials were refused"
            if credentials
            else "no pull secret has credentials for this registry"
        )
        raise AccessRefused(
            f"{where}: the registry refused access (HTTP {response.status}); {hint}"
        )
    raise RemoteError(f"{where}: the registry answered HTTP {response.status}")
