"""One exception hierarchy for everything portieris reports to a user, and the categories
of a deny that metrics count.

Every message is meant to be read by an operator: it names the object, field
or server involved and, where possible, what to do about it. An error that is
itself the reason for a deny names its category (`deny_kind`); every category
is one of `DenyKind`, whose values are the `reason` labels of
portieris_admission_deny_reasons.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class DenyKind(enum.StrEnum):
    """Why an image (or a whole object) was denied, as counted in metrics."""

    UNSUPPORTED_OBJECT = "unsupported-object"
    """A well-formed object portieris cannot check (UncheckableObject)."""
    INVALID_IMAGE = "invalid-image"
    NO_POLICY = "no-policy"
    """No policy matches the image, or one that applies is invalid."""
    VERIFIER_MISSING = "verifier-missing"
    VERIFICATION = "verification"
    """A verifier refused the image (or failed on it)."""
    DIGEST_DISAGREEMENT = "digest-disagreement"
    DIGEST_MISMATCH = "digest-mismatch"
    TIMEOUT = "timeout"
    """Verification did not finish within the verification budget."""
    INTERNAL_ERROR = "internal-error"
    """Deciding failed unexpectedly (a bug): the request is denied, never answered 500."""
    OTHER = "other"


class PortierisError(Exception):
    """Base of every error portieris raises on purpose."""

    deny_kind: ClassVar[DenyKind] = DenyKind.OTHER


class ConfigurationError(PortierisError):
    """The webhook's own configuration (options, files) is unusable."""


class TrustStateError(PortierisError):
    """The persisted trust state (trust on first use shared by replicas) cannot be read or
    written."""


class StateConflict(TrustStateError):
    """The persisted trust state changed since it was read: read it again and merge."""


class InvalidImageReference(PortierisError):
    """An image reference does not follow the distribution reference grammar."""

    deny_kind = DenyKind.INVALID_IMAGE


class InvalidPolicy(PortierisError):
    """An ImagePolicy or ClusterImagePolicy object is malformed."""


class ManifestError(PortierisError):
    """A manifest file given with --manifests cannot be read."""


class InvalidAdmissionReview(PortierisError):
    """The AdmissionReview body is not one we can decide on."""


class VerificationError(PortierisError):
    """An image failed a check; the message is the deny reason."""

    deny_kind = DenyKind.VERIFICATION


class SecretError(VerificationError):
    """A secret a policy names is missing or does not hold what it must."""


class RemoteError(VerificationError):
    """A registry, notary server or signature store failed to answer usefully: no answer in
    time, no connection or TLS, an answer too large, or an HTTP status other than the ones
    the caller understands. Every transport failure is one of these, whoever the caller."""


class AccessRefused(RemoteError):
    """A server refused the credentials of this request (or their absence): HTTP 401 or 403."""


class ReadBudgetExhausted(RemoteError):
    """Remote servers sent more bytes than one image's (or one request's) read budget allows."""


def askers_own(error: BaseException) -> bool:
    """Whether a failure belongs to the request that met it, so that no cache of shared
    answers may hand it to another: the server refused this request's credentials (another
    request may carry the pull secret it wants), or this request's read budget ran out
    (another has its own, and may need less of it once some answers are cached). Every
    other failure is the server's or the image's, and the same for whoever asks."""
    return isinstance(error, AccessRefused | ReadBudgetExhausted)


class UncheckableObject(PortierisError):
    """A well-formed object portieris cannot check (a kind it does not know, a container
    without an image): denied with the reason, unlike a malformed one (HTTP 400)."""

    deny_kind = DenyKind.UNSUPPORTED_OBJECT
