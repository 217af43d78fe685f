"""The `sigstore` part of a policy: which cosign signatures and attestations an image needs.

Its shape follows sigstore policy-controller's `authorities` so its users recognise it
(`key`, `keyless` with `ca-cert` and `identities`, `ctlog`, `rfc3161timestamp`, `source`,
`attestations`), with what an air-gapped cluster needs made explicit: every trust root is
named in the policy (inline PEM or a Secret), nothing is fetched from a public service,
and the transparency log is either given by its public key or turned off in so many words.
An image passes this part when at least one authority is satisfied.

Parsing is as strict as the rest of the policy: an unknown field, a policy-controller
field this webhook does not implement (`static`, `kms`, `trustRootRef`, an attestation's
`policy`), a regular expression that does not compile or a keyless authority with no way
to prove when it signed is an InvalidPolicy naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from portieris_webhook.policy.reader import Fields, Reader

HASH_ALGORITHMS = ("sha256", "sha384", "sha512")
MAX_AUTHORITIES = 16
MAX_IDENTITIES = 32

_NOT_IMPLEMENTED = "not implemented by this webhook; "
_TRUST_ROOT_REF = (
    _NOT_IMPLEMENTED + "give the certificates or key here (data) or in a Secret (secretRef)"
)

FIELDS: Mapping[str, Fields] = {
    "sigstore": Fields(frozenset({"authorities", "ctlog", "rfc3161timestamp"})),
    "authorities[]": Fields(
        frozenset(
            {"name", "key", "keyless", "ctlog", "rfc3161timestamp", "source", "attestations"}
        ),
        {
            "static": _NOT_IMPLEMENTED + "an empty policy allows without checks",
            "signatureFormat": _NOT_IMPLEMENTED + "legacy signatures and bundles are both read",
        },
    ),
    "key": Fields(
        frozenset({"data", "secretRef", "hashAlgorithm"}),
        {"kms": _NOT_IMPLEMENTED + "give the public key (data or secretRef)"},
    ),
    "secretRef": Fields(frozenset({"name", "key", "namespace"})),
    "keyless": Fields(
        frozenset({"url", "ca-cert", "identities"}),
        {
            "trustRootRef": _TRUST_ROOT_REF,
            "insecureIgnoreSCT": _NOT_IMPLEMENTED + "SCTs are not read",
        },
    ),
    "ca-cert": Fields(frozenset({"data", "secretRef"})),
    "identities[]": Fields(frozenset({"issuer", "issuerRegExp", "subject", "subjectRegExp"})),
    "ctlog": Fields(frozenset({"enabled", "url", "publicKey"}), {"trustRootRef": _TRUST_ROOT_REF}),
    "publicKey": Fields(frozenset({"data", "secretRef"})),
    "rfc3161timestamp": Fields(frozenset({"certChain"}), {"trustRootRef": _TRUST_ROOT_REF}),
    "certChain": Fields(frozenset({"data", "secretRef"})),
    "source[]": Fields(
        frozenset({"oci", "signaturePullSecrets"}), {"tagPrefix": _NOT_IMPLEMENTED + "remove it"}
    ),
    "signaturePullSecrets[]": Fields(frozenset({"name"})),
    "attestations[]": Fields(
        frozenset({"name", "predicateType"}),
        {"policy": _NOT_IMPLEMENTED + "the attestation's presence and signature are checked"},
    ),
}
"""Every level of the sigstore part, by where it sits (merged into the policy's FIELDS)."""


@dataclass(frozen=True)
class Material:
    """PEM text given inline (`data`) or kept in a Secret (`secretRef`)."""

    data: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None
    """The Secret's entry; None: the Secret must hold exactly one."""
    secret_namespace: str | None = None
    """None: the namespace of the object being admitted (as keySecretNamespace)."""

    def describe(self) -> str:
        if self.data is not None:
            return "inline data"
        entry = f"[{self.secret_key}]" if self.secret_key else ""
        where = f"{self.secret_namespace}/" if self.secret_namespace else ""
        return f"Secret {where}{self.secret_name}{entry}"


@dataclass(frozen=True)
class KeyAuthority:
    """Signatures made with one public key."""

    key: Material
    hash_algorithm: str = "sha256"


@dataclass(frozen=True)
class Identity:
    """Who may have signed, as a keyless certificate says: exact values or regular
    expressions, always matched against the whole string."""

    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None

    def accepts(self, issuer: str, subject: str) -> bool:
        return _matches(issuer, self.issuer, self.issuer_regexp) and _matches(
            subject, self.subject, self.subject_regexp
        )

    def describe(self) -> str:
        issuer = self.issuer or f"~/{self.issuer_regexp}/"
        subject = self.subject or f"~/{self.subject_regexp}/"
        return f"subject {subject} from issuer {issuer}"


def _matches(value: str, exact: str | None, pattern: str | None) -> bool:
    if exact is not None:
        return value == exact
    return pattern is not None and re.fullmatch(pattern, value) is not None


@dataclass(frozen=True)
class KeylessAuthority:
    """Short-lived certificates from a Fulcio-like certificate authority."""

    ca_cert: Material
    identities: tuple[Identity, ...]
    url: str | None = None
    """The certificate authority's address, for messages only: never called."""


@dataclass(frozen=True)
class TransparencyLog:
    """A Rekor log whose entries must prove each signature (off only when said so)."""

    enabled: bool
    key: Material | None = None
    url: str | None = None
    """For messages only: entries are read from the registry, never fetched from the log."""


@dataclass(frozen=True)
class TimestampAuthority:
    """An RFC 3161 timestamp authority whose tokens prove when a signature was made."""

    cert_chain: Material


@dataclass(frozen=True)
class SignatureSource:
    """Another repository that holds the signatures, and the pull secrets to read it."""

    repository: str
    pull_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttestationRule:
    """An in-toto attestation of this predicate type, signed by the same authority."""

    name: str
    predicate_type: str


@dataclass(frozen=True)
class Authority:
    """One way to satisfy the sigstore part: exactly one of key and keyless."""

    name: str
    ctlog: TransparencyLog
    key: KeyAuthority | None = None
    keyless: KeylessAuthority | None = None
    timestamp: TimestampAuthority | None = None
    source: SignatureSource | None = None
    attestations: tuple[AttestationRule, ...] = ()


@dataclass(frozen=True)
class SigstorePolicy:
    authorities: tuple[Authority, ...] = ()


def parse_sigstore(part: Reader) -> SigstorePolicy:
    """The `sigstore` part of a policy (empty when absent)."""
    if not part.data:
        return SigstorePolicy()
    default_log = _ctlog(part.child("ctlog")) if part.has("ctlog") else None
    default_stamp = _timestamp(part) if part.has("rfc3161timestamp") else None
    items = part.items("authorities")
    if not items:
        raise part.fail("authorities", "must list at least one authority")
    if len(items) > MAX_AUTHORITIES:
        raise part.fail("authorities", f"lists {len(items)}; at most {MAX_AUTHORITIES}")
    authorities = tuple(
        _authority(item, i, default_log, default_stamp) for i, item in enumerate(items)
    )
    return SigstorePolicy(authorities)


def _authority(
    item: Reader,
    index: int,
    default_log: TransparencyLog | None,
    default_stamp: TimestampAuthority | None,
) -> Authority:
    name = item.string("name") or f"authority[{index}]"
    if item.has("key") == item.has("keyless"):
        raise item.fail("key", "or keyless: give exactly one")
    log = _ctlog(item.child("ctlog")) if item.has("ctlog") else default_log
    if log is None:
        raise item.fail(
            "ctlog",
            "is required (here or for the whole sigstore part): the Rekor log's public key "
            "(ctlog.publicKey), or ctlog.enabled: false to accept signatures no log has seen",
        )
    stamp = _timestamp(item) if item.has("rfc3161timestamp") else default_stamp
    keyless = _keyless(item.child("keyless")) if item.has("keyless") else None
    if keyless is not None and not log.enabled and stamp is None:
        raise item.fail(
            "keyless",
            "needs a transparency log (ctlog) or a timestamp authority (rfc3161timestamp) to "
            "prove the short-lived certificate was valid when it signed",
        )
    return Authority(
        name=name,
        ctlog=log,
        key=_key(item.child("key")) if item.has("key") else None,
        keyless=keyless,
        timestamp=stamp,
        source=_source(item),
        attestations=tuple(_attestation(a) for a in item.items("attestations")),
    )


def _material(item: Reader) -> Material:
    """`data` (PEM) or `secretRef`, exactly one."""
    data = item.string("data")
    if (data is None) == (not item.has("secretRef")):
        raise item.fail("data", "or secretRef: give exactly one")
    if data is not None:
        if "-----BEGIN " not in data:
            raise item.fail("data", "must be PEM text (-----BEGIN ...)")
        return Material(data=data)
    ref = item.child("secretRef")
    return Material(
        secret_name=ref.string("name", required=True),
        secret_key=ref.string("key"),
        secret_namespace=ref.string("namespace"),
    )


def _key(item: Reader) -> KeyAuthority:
    algorithm = item.string("hashAlgorithm") or "sha256"
    if algorithm not in HASH_ALGORITHMS:
        raise item.fail(
            "hashAlgorithm", f"must be one of {', '.join(HASH_ALGORITHMS)}, not {algorithm!r}"
        )
    return KeyAuthority(key=_material(item), hash_algorithm=algorithm)


def _keyless(item: Reader) -> KeylessAuthority:
    if not item.has("ca-cert"):
        raise item.fail(
            "ca-cert", "is required: the certificate authority's root (and intermediates)"
        )
    identities = item.items("identities")
    if not identities:
        raise item.fail("identities", "must list at least one accepted identity")
    if len(identities) > MAX_IDENTITIES:
        raise item.fail("identities", f"lists {len(identities)}; at most {MAX_IDENTITIES}")
    return KeylessAuthority(
        ca_cert=_material(item.child("ca-cert")),
        identities=tuple(_identity(i) for i in identities),
        url=item.string("url"),
    )


def _identity(item: Reader) -> Identity:
    return Identity(
        issuer=_one_of(item, "issuer"),
        issuer_regexp=item.string("issuerRegExp"),
        subject=_one_of(item, "subject"),
        subject_regexp=item.string("subjectRegExp"),
    )


def _one_of(item: Reader, field: str) -> str | None:
    """`field` or `fieldRegExp`, exactly one; a regular expression must compile."""
    exact, pattern = item.string(field), item.string(f"{field}RegExp")
    if (exact is None) == (pattern is None):
        raise item.fail(field, f"or {field}RegExp: give exactly one")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise item.fail(f"{field}RegExp", f"is not a regular expression: {exc}") from None
    return exact


def _ctlog(item: Reader) -> TransparencyLog:
    enabled = item.boolean("enabled", True)
    url = item.string("url")
    if not enabled:
        if item.has("publicKey"):
            raise item.fail("publicKey", "is given but the log is turned off (enabled: false)")
        return TransparencyLog(enabled=False, url=url)
    if not item.has("publicKey"):
        raise item.fail(
            "publicKey", "is required: the log's public key (or enabled: false to turn it off)"
        )
    return TransparencyLog(enabled=True, key=_material(item.child("publicKey")), url=url)


def _timestamp(parent: Reader) -> TimestampAuthority:
    item = parent.child("rfc3161timestamp")
    if not item.has("certChain"):
        raise item.fail("certChain", "is required: the timestamp authority's certificate chain")
    return TimestampAuthority(cert_chain=_material(item.child("certChain")))


def _source(item: Reader) -> SignatureSource | None:
    sources = item.items("source")
    if not sources:
        return None
    if len(sources) > 1:
        raise item.fail("source", "may name one repository")
    only = sources[0]
    repository = only.string("oci", required=True)
    assert repository is not None
    secrets = tuple(
        name
        for name in (s.string("name", required=True) for s in only.items("signaturePullSecrets"))
        if name
    )
    return SignatureSource(repository=repository, pull_secrets=secrets)


def _attestation(item: Reader) -> AttestationRule:
    predicate = item.string("predicateType", required=True)
    assert predicate is not None
    return AttestationRule(name=item.string("name") or predicate, predicate_type=predicate)
