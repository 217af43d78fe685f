"""Errors of trust verification; each message is a deny reason an operator can act on.

Except StateMachineMisuse: a programming error, never a deny reason."""

from __future__ import annotations

from portieris_webhook.errors import VerificationError


class TrustError(VerificationError):
    """Trust data is missing, malformed or fails verification."""


class MetadataError(TrustError):
    """A metadata document does not have the shape TUF/notary metadata must have."""


class SignatureError(TrustError):
    """A role is not signed by enough of the keys trusted for it."""


class ExpiredMetadataError(TrustError):
    """A role's metadata is past its expiry."""


class RollbackError(TrustError):
    """A role's version is lower than one this process has already trusted."""


class HashMismatchError(TrustError):
    """Metadata bytes do not match the length or hashes its parent role recorded."""


class RepositoryNotFound(TrustError):
    """The notary server has no trust data for the repository."""


class StateMachineMisuse(RuntimeError):
    """The trusted metadata set (trusted_set.py) was driven out of TUF order: a bug in its caller
    (updater.py), not a property of the trust data. It is no VerificationError, so nothing
    takes it for a deny reason; the enforcer still denies, as an internal error."""
