"""Which root keys may sign a repository's root: notary's certificate rule (pure).

TUF signatures cover a role's `signed` object, which never names the
repository (GUN). What ties trust data to a repository is the root keys'
certificates, as notary's client requires (trustpinning.ValidateRoot): a root
key counts only if it is an x509 key whose PEM bundle starts with its one
non-CA (leaf) certificate, that leaf's common name is the GUN, it is not
signed with SHA-1 and, for a root being adopted, it is valid now (not-before
may lie up to a day ahead, for clock skew). Every other role chains to the
root keys, and the snapshot records the root's hash, so binding the root
binds the whole chain.

Deliberately stricter than notary: a common name ending in `*`, which notary
reads as a prefix of GUNs, is refused, because it would make one repository's
signed data valid for every repository under that prefix.
"""

from __future__ import annotations

import datetime
import re
import warnings

from cryptography import x509
from cryptography.x509.oid import SignatureAlgorithmOID

from portieris_webhook.trust.keys import ECDSA_X509, RSA_X509, PublicKey
from portieris_webhook.trust.metadata import ROOT, Root

CLOCK_SKEW = datetime.timedelta(days=1)
"""How far in the future a root certificate's not-before may lie (notary allows one day)."""

_SHA1_SIGNATURES = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        SignatureAlgorithmOID.DSA_WITH_SHA1,
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
    }
)
_PEM_BEGIN = re.compile(rb"-----BEGIN ([^\r\n]*?)-----")


def common_name(certificate: x509.Certificate) -> str | None:
    """The subject's common name, or None unless there is exactly one."""
    with warnings.catch_warnings():
        # GUNs are often longer than X.520's 64-character bound, and notary writes them whole.
        warnings.simplefilter("ignore", UserWarning)
        names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if len(names) == 1 else None


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def root_key_problem(key: PublicKey, gun: str, now: datetime.datetime | None) -> str | None:
    """Why `key` may not sign a root of `gun`, or None if it may.

    With `now` None the validity dates are not checked: notary does not check
    them for the keys of the previously trusted root when following a rotation.
    """
    if key.keytype not in (ECDSA_X509, RSA_X509):
        return f"bare {key.keytype} key, not a certificate"
    leaf = _leaf(key.pem)
    if isinstance(leaf, str):
        return leaf
    name = common_name(leaf)
    if name is None:
        return "certificate has no (single) common name"
    if name != gun:
        return f"certificate issued to {name!r}, not to {gun!r}"
    if leaf.signature_algorithm_oid in _SHA1_SIGNATURES:
        return "certificate signed with SHA-1"
    begins, ends = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if begins > ends:
        return "certificate validity ends before it begins"
    if now is not None and now > ends:
        return f"certificate expired at {ends.isoformat()}"
    if now is not None and begins > now + CLOCK_SKEW:
        return f"certificate not valid before {begins.isoformat()}"
    return None


def _leaf(pem: bytes) -> x509.Certificate | str:
    """The leaf certificate a root key's bundle starts with, or why it has none."""
    labels = _PEM_BEGIN.findall(pem)
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return "certificate bundle cannot be read"
    if len(labels) != len(certificates) or any(label != b"CERTIFICATE" for label in labels):
        return "certificate bundle holds something other than certificates"
    if len(certificates) == 1 and is_ca(certificates[0]):
        return "CA certificate, not a leaf"
    leaves = [c for c in certificates if not is_ca(c)]
    if len(leaves) != 1 or leaves[0] is not certificates[0]:
        return "certificate bundle must start with its one leaf certificate"
    return certificates[0]


def certified_root_keys(
    root: Root, gun: str, now: datetime.datetime | None
) -> tuple[dict[str, PublicKey], list[str]]:
    """The root keys of `root` that may sign a root of `gun`, and why each other one may not."""
    usable: dict[str, PublicKey] = {}
    refused: list[str] = []
    for keyid in root.roles[ROOT].keyids:
        key = root.keys.get(keyid)
        if key is None:
            refused.append(f"root key {keyid[:12]}: not among the root's keys")
            continue
        problem = root_key_problem(key, gun, now)
        if problem is None:
            usable[keyid] = key
        else:
            refused.append(f"root key {keyid[:12]}: {problem}")
    return usable, refused
