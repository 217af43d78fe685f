"""signedIdentity rules: does the identity a signature claims fit the image? Pure functions.

A transcription of containers/image `signature/policy_reference_match.go`, on
references parsed like `reference.ParseNormalizedNamed` (so `busybox` is
`docker.io/library/busybox`). "Name only" references (no tag, no digest) never
match where containers/image requires an exact reference. The intended
reference is the image as the pod names it, with `latest` added when it has
neither tag nor digest, as skopeo's docker transport does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from portieris_webhook.errors import PortierisError
from portieris_webhook.images import ImageReference, parse_image
from portieris_webhook.policy.model import MATCH_REPO_DIGEST_OR_EXACT, SignedIdentity

# distribution/reference refuses a bare 64-hex string: it would be read as an image ID.
_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class DockerRef:
    """A normalised docker reference: `name` is `domain/path`; tag and digest as given."""

    name: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_normalized(text: str) -> DockerRef | None:
    """`reference.ParseNormalizedNamed`, or None where it fails."""
    if _IMAGE_ID.match(text):
        return None
    try:
        parsed = parse_image(text)
    except PortierisError:
        return None
    return DockerRef(parsed.repository, parsed.tag, parsed.digest)


def parse_canonical(text: str) -> DockerRef | None:
    """`reference.ParseNamed`: like parse_normalized, but `text` must already be fully qualified."""
    ref = parse_normalized(text)
    return ref if ref is not None and str(ref) == text else None


def intended_reference(image: ImageReference) -> DockerRef:
    """The reference skopeo would check signatures against for `image`."""
    tag = image.tag if image.tag is not None or image.digest else "latest"
    return DockerRef(image.repository, tag, image.digest)


def match_exact(_: SignedIdentity, intended: DockerRef, signed: DockerRef) -> bool:
    if intended.name_only or signed.name_only:
        return False
    return str(signed) == str(intended)


def _repo_digest_or_exact(intended: DockerRef, signed: DockerRef) -> bool:
    if signed.name_only:
        return False
    if intended.tag is not None:  # tagged, possibly with a digest too: the exact string
        return str(signed) == str(intended)
    if intended.digest is not None:
        # The signature's digest is checked against the manifest elsewhere; here the repository.
        return signed.name == intended.name
    return False


def match_repo_digest_or_exact(_: SignedIdentity, intended: DockerRef, signed: DockerRef) -> bool:
    return _repo_digest_or_exact(intended, signed)


def match_repository(_: SignedIdentity, intended: DockerRef, signed: DockerRef) -> bool:
    return signed.name == intended.name


def match_exact_reference(identity: SignedIdentity, _: DockerRef, signed: DockerRef) -> bool:
    wanted = parse_normalized(identity.docker_reference or "")
    if wanted is None or wanted.name_only or signed.name_only:
        return False
    return str(signed) == str(wanted)


def match_exact_repository(identity: SignedIdentity, _: DockerRef, signed: DockerRef) -> bool:
    wanted = parse_normalized(identity.docker_repository or "")
    return wanted is not None and signed.name == wanted.name


def _matches_prefix(name: str, prefix: str) -> bool:
    # Only ref.Name() is compared, so `/` is the only separator that can follow a prefix.
    if len(name) <= len(prefix):
        return name == prefix
    return name.startswith(prefix) and name[len(prefix)] == "/"


def remap(identity: SignedIdentity, intended: DockerRef) -> DockerRef | None:
    """`intended` with `prefix` replaced by `signedPrefix`, as is if it does not match; None if
    the result is not a valid canonical reference."""
    prefix, signed_prefix = identity.prefix or "", identity.signed_prefix or ""
    if not _matches_prefix(intended.name, prefix):
        return intended
    return parse_canonical(str(intended).replace(prefix, signed_prefix, 1))


def match_remap_identity(identity: SignedIdentity, intended: DockerRef, signed: DockerRef) -> bool:
    remapped = remap(identity, intended)
    return remapped is not None and _repo_digest_or_exact(remapped, signed)


RULES: dict[str, Callable[[SignedIdentity, DockerRef, DockerRef], bool]] = {
    "matchExact": match_exact,
    MATCH_REPO_DIGEST_OR_EXACT: match_repo_digest_or_exact,
    "matchRepository": match_repository,
    "matchExactReference": match_exact_reference,
    "matchExactRepository": match_exact_repository,
    "remapIdentity": match_remap_identity,
}


def identity_accepted(identity: SignedIdentity, intended: DockerRef, signed_reference: str) -> bool:
    """Whether a signature claiming `signed_reference` satisfies `identity` for `intended`."""
    rule = RULES.get(identity.type)
    signed = parse_normalized(signed_reference)
    if rule is None or signed is None:
        return False
    return rule(identity, intended, signed)
