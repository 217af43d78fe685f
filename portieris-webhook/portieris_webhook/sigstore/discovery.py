"""Finding an image's cosign signatures and attestations in a registry (I/O).

Both places cosign writes are read, concurrently, for the digest being verified:

- the tag schema: the manifests tagged `sha256-<hex>.sig` and `sha256-<hex>.att`;
- the referrers of the digest (the OCI 1.1 API, else the `sha256-<hex>` index tag), each a
  manifest holding a Sigstore bundle or legacy cosign layers.

Layers of other media types are skipped (a referrer may be an SBOM or a Notation
signature). A layer that cannot be read as a signature (malformed JSON, bad base64, a
bundle of another version) is kept as an `Unreadable` with the reason, so one bad layer
pushed beside a good signature does not hide it, and a deny can say what was wrong. Every
read is bounded (registry/oci.py) and charged to the image's budget; a remote failure
ends the search (RemoteError). What is found is only evidence: authority.py decides what
it proves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from portieris_webhook.errors import RemoteError, VerificationError
from portieris_webhook.images import ImageReference
from portieris_webhook.registry.oci import Descriptor, Manifest, OciClient, Reads
from portieris_webhook.sigstore.evidence import (
    BUNDLE_MEDIA_TYPES,
    DSSE_LAYER,
    SIMPLE_SIGNING_LAYER,
    Evidence,
    Unreadable,
    legacy_layer,
    parse_bundle,
)

LOG = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES = 256 * 1024
"""A cosign signature payload is a few hundred bytes."""
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
"""An attestation or bundle may carry a whole SBOM or vulnerability report."""
MAX_EVIDENCE = 64
"""Signatures and attestations read per image; beyond this the image is denied."""
TAG_SUFFIXES = (".sig", ".att")


async def find_evidence(
    oci: OciClient, repository: ImageReference, digest: str, reads: Reads
) -> list[Evidence | Unreadable]:
    """Every signature and attestation `repository` holds for `digest`."""
    algorithm, _, hexpart = digest.partition(":")
    tags = [f"{algorithm}-{hexpart}{suffix}" for suffix in TAG_SUFFIXES]
    tagged, referrers = await asyncio.gather(
        asyncio.gather(*(oci.manifest(repository, tag, reads) for tag in tags)),
        oci.referrers(repository, digest, reads),
    )
    manifests = [m for m in tagged if m is not None]
    wanted = [r for r in referrers if r.media_type.endswith("manifest.v1+json")]
    manifests += [
        m
        for m in await asyncio.gather(*(oci.manifest(repository, r.digest, reads) for r in wanted))
        if m is not None
    ]
    layers = [(m, layer) for m in manifests for layer in _signature_layers(m)]
    if len(layers) > MAX_EVIDENCE:
        raise VerificationError(
            f"{repository.repository}: {len(layers)} signatures and attestations for {digest}; "
            f"at most {MAX_EVIDENCE} are read"
        )
    return list(
        await asyncio.gather(*(_read(oci, repository, m, layer, reads) for m, layer in layers))
    )


def _signature_layers(manifest: Manifest) -> Iterable[Descriptor]:
    known = (SIMPLE_SIGNING_LAYER, DSSE_LAYER, *BUNDLE_MEDIA_TYPES)
    return (layer for layer in manifest.layers if layer.media_type in known)


async def _read(
    oci: OciClient, repository: ImageReference, manifest: Manifest, layer: Descriptor, reads: Reads
) -> Evidence | Unreadable:
    where = f"signature manifest {manifest.digest[:19]} layer {layer.digest[:19]}"
    limit = MAX_PAYLOAD_BYTES if layer.media_type == SIMPLE_SIGNING_LAYER else MAX_ENVELOPE_BYTES
    try:
        blob = await oci.blob(repository, layer, limit, reads)
        if layer.media_type in BUNDLE_MEDIA_TYPES:
            return parse_bundle(blob, where)
        return legacy_layer(layer.media_type, layer.annotations or {}, blob, where)
    except RemoteError:
        raise
    except VerificationError as exc:
        return Unreadable(where, str(exc).removeprefix(f"{where}: "))
