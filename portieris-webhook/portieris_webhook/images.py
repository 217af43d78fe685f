"""Image references: parse by the distribution reference grammar, normalise like Docker.

`nginx` is written by users; lookups (registry, notary GUN, pull secrets) need
`docker.io/library/nginx:latest`. Both forms are kept: policy matching uses the
image as written, everything that talks to a server uses the normalised form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portieris_webhook.errors import InvalidImageReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPOSITORY_PREFIX = "library/"
NAME_TOTAL_LENGTH_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True)
class ImageReference:
    """One parsed image reference.

    `written_name` is the repository as the user wrote it (no tag, no digest);
    `domain` and `path` are normalised (`docker.io`, `library/nginx`).
    """

    raw: str
    written_name: str
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """Normalised repository name, e.g. `docker.io/library/nginx`; also the notary GUN."""
        return f"{self.domain}/{self.path}"

    @property
    def effective_tag(self) -> str | None:
        """The tag to resolve: as written, or `latest` when neither tag nor digest is given."""
        if self.tag is not None:
            return self.tag
        return None if self.digest else "latest"

    @property
    def normalised(self) -> str:
        """Fully qualified reference, e.g. `docker.io/library/nginx:latest`."""
        text = self.repository
        if self.effective_tag:
            text += f":{self.effective_tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def pinned(self, digest: str) -> str:
        """The reference as written, pinned to `digest` (tag dropped)."""
        return f"{self.written_name}@{digest}"

    def __str__(self) -> str:
        return self.raw


def names_domain(first: str) -> bool:
    """True if `first`, the first of several components of a name, is a registry host.

    It is when it contains `.` or `:`, is `localhost`, or has upper-case letters
    (the way Docker reads it); otherwise it is a path on Docker Hub.
    """
    return "." in first or ":" in first or first == "localhost" or first.lower() != first


def split_domain(name: str) -> tuple[str, str]:
    """Split a repository name into (domain, path) the way Docker does (see `names_domain`)."""
    first, slash, rest = name.partition("/")
    if slash and names_domain(first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPOSITORY_PREFIX + path
    return domain, path


def parse_image(text: str) -> ImageReference:
    """Parse `text` or raise InvalidImageReference saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidImageReference("image reference is empty")
    if text != text.strip():
        raise InvalidImageReference(f"image reference {text!r} has surrounding whitespace")
    match = _REFERENCE.match(text)
    if match is None:
        raise InvalidImageReference(_explain_invalid(text))
    name, tag, digest = match.group("name"), match.group("tag"), match.group("digest")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidImageReference(
            f"image reference {text!r}: repository name is longer than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        digest = _validate_digest(text, digest)
    domain, path = split_domain(name)
    return ImageReference(
        raw=text, written_name=name, domain=domain, path=path, tag=tag, digest=digest
    )


def _validate_digest(text: str, digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        raise InvalidImageReference(
            f"image reference {text!r}: digest algorithm {algorithm!r} is not supported "
            f"(use one of {', '.join(sorted(_DIGEST_HEX_LENGTH))})"
        )
    if len(hexpart) != expected or hexpart != hexpart.lower():
        raise InvalidImageReference(
            f"image reference {text!r}: a {algorithm} digest is {expected} lower-case hex characters"
        )
    return digest


def _explain_invalid(text: str) -> str:
    name = text.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name = name[:colon]
    _, _, path = name.partition("/") if "/" in name else ("", "", name)
    if path != path.lower():
        return f"image reference {text!r}: repository name must be lower-case"
    if "//" in text or text.endswith("/") or text.startswith("/"):
        return f"image reference {text!r}: repository name has an empty path component"
    if text.endswith(":") or ":@" in text:
        return f"image reference {text!r}: tag is empty"
    return f"image reference {text!r} is not a valid reference ([host[:port]/]path[:tag][@digest])"


def normalise_registry_host(value: str) -> str:
    """Normalise a registry host as written in a docker config (`https://index.docker.io/v1/`).

    Returns host[:port] lower-cased, with Docker Hub's aliases folded into `docker.io`.
    """
    host = value.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0].lower()
    if host in (LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io", "registry.hub.docker.com"):
        return DEFAULT_DOMAIN
    return host
