"""What a cosign signature or attestation says about an image, read strictly.

A cosign signature signs a simple-signing payload:
`{"critical": {"identity": {"docker-reference": R}, "image": {"docker-manifest-digest": D},
"type": "cosign container image signature"}, "optional": {...}}`. cosign itself compares
only D; we also require the type (a payload of another kind is not a container signature)
and that R names the image's repository, so a signature copied from another repository
does not vouch for this one. Unknown fields in `critical` are refused, as containers/image
does for simple signing.

An attestation is an in-toto statement (`_type` v0.1 or v1) whose `subject` must list the
image's digest and whose `predicateType` the policy names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.errors import InvalidImageReference, VerificationError
from portieris_webhook.images import ImageReference, parse_image
from portieris_webhook.kits.nesting import loads

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
IN_TOTO_STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
"""The predicate type of the statement cosign signs for an image in a Sigstore bundle."""
MAX_SUBJECTS = 1024
STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})


@dataclass(frozen=True)
class SignedImage:
    """What a cosign signature payload claims."""

    digest: str
    docker_reference: str


def _exact_keys(doc: Any, keys: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise VerificationError(f"{what} must be a JSON object")
    unknown = set(doc) - keys
    if unknown:
        raise VerificationError(f"{what} has unknown fields: {', '.join(sorted(unknown))}")
    missing = keys - set(doc)
    if missing:
        raise VerificationError(f"{what} lacks {', '.join(sorted(missing))}")
    return doc


def parse_signature_payload(payload: bytes) -> SignedImage:
    """The claims of a cosign signature payload (only after its signature verified)."""
    doc = loads(payload, "the signature payload", VerificationError)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("critical"), Mapping):
        raise VerificationError("the signature payload has no critical section")
    critical = _exact_keys(doc["critical"], {"identity", "image", "type"}, "critical")
    if critical["type"] != COSIGN_SIGNATURE_TYPE:
        raise VerificationError(
            f"critical.type is {critical['type']!r}, not {COSIGN_SIGNATURE_TYPE!r}"
        )
    identity = _exact_keys(critical["identity"], {"docker-reference"}, "critical.identity")
    image = _exact_keys(critical["image"], {"docker-manifest-digest"}, "critical.image")
    digest, reference = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not isinstance(reference, str):
        raise VerificationError("the signature payload's digest and reference must be strings")
    return SignedImage(digest, reference)


def same_repository(signed_reference: str, image: ImageReference) -> bool:
    """Whether the payload's docker-reference names the image's repository (normalised:
    `nginx` and `docker.io/library/nginx` are one repository). cosign writes the
    repository without tag or digest; a tag or digest there is ignored."""
    try:
        signed = parse_image(signed_reference)
    except InvalidImageReference:
        return False
    return signed.repository == image.repository


@dataclass(frozen=True)
class Statement:
    """An in-toto statement's subject digests (sha256 hex) and predicate type."""

    predicate_type: str
    subject_digests: frozenset[str]


def parse_statement(payload: bytes) -> Statement:
    """An in-toto statement (only after its envelope's signature verified)."""
    doc = loads(payload, "the in-toto statement", VerificationError)
    if not isinstance(doc, Mapping):
        raise VerificationError("the in-toto statement must be a JSON object")
    unknown = set(doc) - STATEMENT_FIELDS
    if unknown:
        raise VerificationError(f"the statement has unknown fields: {', '.join(sorted(unknown))}")
    if doc.get("_type") not in IN_TOTO_STATEMENT_TYPES:
        raise VerificationError(f"the statement's _type {doc.get('_type')!r} is not in-toto's")
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise VerificationError("the statement has no predicateType")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects or len(subjects) > MAX_SUBJECTS:
        raise VerificationError(f"the statement must list 1 to {MAX_SUBJECTS} subjects")
    digests = set()
    for subject in subjects:
        found = subject.get("digest") if isinstance(subject, Mapping) else None
        if not isinstance(found, Mapping):
            raise VerificationError("a statement subject has no digest")
        sha = found.get("sha256")
        if isinstance(sha, str):
            digests.add(sha.lower())
    return Statement(predicate_type, frozenset(digests))
