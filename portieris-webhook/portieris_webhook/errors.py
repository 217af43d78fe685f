"""One exception hierarchy for everything portieris reports to a user.

Every message is meant to be read by an operator: it names the object, field
or server involved and, where possible, what to do about it.
"""


class PortierisError(Exception):
    """Base of every error portieris raises on purpose."""


class ConfigurationError(PortierisError):
    """The webhook's own configuration (options, files) is unusable."""


class InvalidImageReference(PortierisError):
    """An image reference does not follow the distribution reference grammar."""


class InvalidPolicy(PortierisError):
    """An ImagePolicy or ClusterImagePolicy object is malformed."""


class ManifestError(PortierisError):
    """A manifest file given with --manifests cannot be read."""


class InvalidAdmissionReview(PortierisError):
    """The AdmissionReview body is not one we can decide on."""


class VerificationError(PortierisError):
    """An image failed a check; the message is the deny reason."""


class SecretError(VerificationError):
    """A secret a policy names is missing or does not hold what it must."""


class RemoteError(VerificationError):
    """A registry, notary server or signature store failed to answer usefully: no answer in
    time, no connection or TLS, an answer too large, or an HTTP status other than the ones
    the caller understands. Every transport failure is one of these, whoever the caller."""


class AccessRefused(RemoteError):
    """A server refused the credentials of this request (or their absence): HTTP 401 or 403."""


class UncheckableObject(PortierisError):
    """A well-formed object portieris cannot check (a kind it does not know, a container
    without an image): denied with the reason, unlike a malformed one (HTTP 400)."""
