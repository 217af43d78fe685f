"""The trusted metadata set of one repository (GUN): a pure state machine, no I/O.

Feed it raw bytes in TUF order -- root (and each rotated root), timestamp,
snapshot, targets, delegated roles -- and it either trusts each document or
raises a TrustError saying why not. It enforces, as python-tuf's ngclient does:
  * signatures: a threshold of distinct keys of the role, counted per public key;
  * root rotation: each new root (version + 1) signed by thresholds of the old and new root;
  * expiry against the injected `now`, and x509 root keys only within their validity;
  * lengths and hashes of the raw bytes as recorded by the parent role;
  * versions never lower than the ones recorded in `seen` for this GUN (updated as roles pass).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from portieris_webhook.trust.errors import (
    ExpiredMetadataError,
    MetadataError,
    RollbackError,
    SignatureError,
    TrustError,
)
from portieris_webhook.trust.keys import PublicKey
from portieris_webhook.trust.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    Delegation,
    Envelope,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    is_delegation,
    parent_of,
    parse_envelope,
    parse_root,
    parse_snapshot,
    parse_targets,
    parse_timestamp,
)


@dataclass(frozen=True)
class RootPin:
    """A trust anchor for a repository's root instead of trust on first use.

    Satisfied when a key that validly signed the root has one of `keyids` (its
    ID in root.json or the ID of its bare public key), is one of `certificates`,
    or has a certificate issued for this very GUN (common name, as notary
    requires of root certificates) by one of them that is a CA valid now.
    A CA pin covers every repository of the server, so without the common-name
    rule a certificate the CA issued for one repository would sign roots for all.
    """

    keyids: frozenset[str] = frozenset()
    certificates: tuple[x509.Certificate, ...] = ()
    description: str = ""

    def matches(self, key: PublicKey, gun: str, now: datetime.datetime) -> bool:
        if key.keyid in self.keyids or key.public_id in self.keyids:
            return True
        certificate = key.certificate
        if certificate is None:
            return False
        for anchor in self.certificates:
            if certificate == anchor:
                return True
            issued_here = _common_name(certificate) == gun and _is_ca_at(anchor, now)
            if issued_here and _issued_by(certificate, anchor):
                return True
        return False


def _common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if len(names) == 1 else None


def _is_ca_at(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    valid = certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    return constraints.ca and valid


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class TrustData:
    """Verified trust data of one GUN at one moment: what lookups run against."""

    gun: str
    root: Root
    timestamp: Timestamp
    snapshot: Snapshot
    roles: Mapping[str, Targets]
    """Every verified targets role by name, `targets` first, in the order they were loaded."""
    chains: Mapping[str, tuple[Delegation, ...]]
    """For each role, the delegations leading to it from `targets` (empty for `targets`)."""
    signers: Mapping[str, frozenset[bytes]]
    """For each targets role, the public keys (DER SPKI) whose signatures on it are valid."""
    raw: Mapping[str, bytes]
    """Raw bytes of every verified document, to reuse unchanged ones on refresh."""
    skipped: Mapping[str, str] = field(default_factory=dict)
    """Delegated roles left out (expired, or short of signatures), with the reason."""

    @property
    def expires(self) -> datetime.datetime:
        """The earliest expiry of any role: the data must not be used from then on."""
        times = [self.root.expires, self.timestamp.expires, self.snapshot.expires]
        times.extend(t.expires for t in self.roles.values())
        return min(times)

    @property
    def versions(self) -> dict[str, int]:
        result = {
            ROOT: self.root.version,
            TIMESTAMP: self.timestamp.version,
            SNAPSHOT: self.snapshot.version,
        }
        result.update({name: t.version for name, t in self.roles.items()})
        return result


def _expiry(role: str, expires: datetime.datetime, now: datetime.datetime) -> None:
    if now >= expires:
        raise ExpiredMetadataError(
            f"{role} metadata expired at {expires.isoformat()} (now {now.isoformat()})"
        )


def valid_signers(
    envelope: Envelope,
    keys: Mapping[str, PublicKey],
    role_keys: RoleKeys,
    now: datetime.datetime | None = None,
) -> dict[bytes, PublicKey]:
    """Keys of the role (by DER SPKI) with a valid signature; `now` also requires x509 validity.

    Counting by public key, not key ID, stops one key listed twice (bare and
    x509) or one signature repeated from counting twice toward a threshold.
    """
    found: dict[bytes, PublicKey] = {}
    allowed = set(role_keys.keyids)
    for signature in envelope.signatures:
        key = keys.get(signature.keyid)
        if key is None or signature.keyid not in allowed or key.spki in found:
            continue
        if now is not None and not key.valid_at(now):
            continue
        if any(key.verifies(signature.method, m, signature.value) for m in envelope.messages):
            found[key.spki] = key
    return found


def check_threshold(
    envelope: Envelope,
    keys: Mapping[str, PublicKey],
    role_keys: RoleKeys,
    now: datetime.datetime | None = None,
    signed_for: str = "",
) -> dict[bytes, PublicKey]:
    found = valid_signers(envelope, keys, role_keys, now)
    if len(found) < role_keys.threshold:
        whose = signed_for or envelope.role
        raise SignatureError(
            f"{envelope.role} metadata has {len(found)} valid signature(s) from keys of {whose}, "
            f"{role_keys.threshold} required"
        )
    return found


class TrustedMetadataSet:
    """Trust data of one GUN, loaded step by step in TUF order."""

    def __init__(
        self,
        gun: str,
        root_bytes: bytes,
        *,
        now: datetime.datetime,
        seen: MutableMapping[str, int],
        pin: RootPin | None = None,
    ) -> None:
        self.gun = gun
        self.now = now
        self.seen = seen
        self.raw: dict[str, bytes] = {}
        self.timestamp: Timestamp | None = None
        self.snapshot: Snapshot | None = None
        self.roles: dict[str, Targets] = {}
        self.chains: dict[str, tuple[Delegation, ...]] = {}
        self.signers: dict[str, frozenset[bytes]] = {}
        self.skipped: dict[str, str] = {}
        envelope = parse_envelope(root_bytes, ROOT)
        root = parse_root(envelope)
        signed_by = check_threshold(envelope, root.keys, root.roles[ROOT], now)
        if pin is not None and not any(pin.matches(k, gun, now) for k in signed_by.values()):
            raise SignatureError(
                f"root of {gun} (version {root.version}) is not signed by the pinned root "
                f"{pin.description or 'key'}"
            )
        self._check_version(ROOT, root.version)
        self.root = root
        self.raw[ROOT] = root_bytes

    # --- steps ---------------------------------------------------------------
    def update_root(self, data: bytes) -> Root:
        """Rotate to the next root: version + 1, signed by the old and the new root keys."""
        if self.timestamp is not None:
            raise TrustError("root can only be rotated before timestamp is loaded")
        envelope = parse_envelope(data, ROOT)
        new = parse_root(envelope)
        if new.version != self.root.version + 1:
            raise RollbackError(
                f"root rotation of {self.gun}: expected version {self.root.version + 1}, "
                f"got {new.version}"
            )
        check_threshold(envelope, self.root.keys, self.root.roles[ROOT], None, "the previous root")
        check_threshold(envelope, new.keys, new.roles[ROOT], self.now, "the new root")
        self._check_version(ROOT, new.version)
        self.root = new
        self.raw[ROOT] = data
        return new

    def update_timestamp(self, data: bytes) -> Timestamp:
        if self.timestamp is not None:
            raise TrustError("timestamp is already loaded")
        _expiry(ROOT, self.root.expires, self.now)
        envelope = parse_envelope(data, TIMESTAMP)
        timestamp = parse_timestamp(envelope)
        self._verify_top_level(envelope, TIMESTAMP, timestamp.version, timestamp.expires)
        self.timestamp = timestamp
        self.raw[TIMESTAMP] = data
        return timestamp

    def update_snapshot(self, data: bytes) -> Snapshot:
        if self.timestamp is None or self.snapshot is not None:
            raise TrustError("snapshot must be loaded once, after timestamp")
        self.timestamp.snapshot.check(data, f"snapshot of {self.gun}")
        envelope = parse_envelope(data, SNAPSHOT)
        snapshot = parse_snapshot(envelope)
        self._verify_top_level(envelope, SNAPSHOT, snapshot.version, snapshot.expires)
        if ROOT in snapshot.meta:
            # The repository's current root must be the one we trust (rotated to, if it changed).
            snapshot.meta[ROOT].check(self.raw[ROOT], f"trusted root of {self.gun} (per snapshot)")
        self.snapshot = snapshot
        self.raw[SNAPSHOT] = data
        return snapshot

    def update_targets(self, data: bytes) -> Targets:
        return self.update_delegated_targets(TARGETS, data)

    def update_delegated_targets(self, role: str, data: bytes) -> Targets:
        """Load `targets` or a delegated role; its parent must be loaded and delegate to it."""
        if self.snapshot is None:
            raise TrustError(f"{role} must be loaded after snapshot")
        if role in self.roles:
            raise TrustError(f"{role} is already loaded")
        keys, role_keys, chain = self._delegator(role)
        meta = self.snapshot.meta.get(role)
        if meta is None:
            raise MetadataError(f"snapshot of {self.gun} does not list {role}")
        meta.check(data, f"{role} of {self.gun}")
        envelope = parse_envelope(data, role)
        targets = parse_targets(envelope)
        signed_by = check_threshold(envelope, keys, role_keys)
        self._check_version(role, targets.version)
        _expiry(role, targets.expires, self.now)
        self.roles[role] = targets
        self.chains[role] = chain
        self.signers[role] = frozenset(signed_by)
        self.raw[role] = data
        return targets

    def skip(self, role: str, reason: str) -> None:
        """Leave out a delegated role (and so everything below it), as notary's client does
        for an expired role or one short of signatures: its targets simply do not count."""
        if role == TARGETS:
            raise TrustError("the targets role cannot be skipped")
        self.skipped[role] = reason

    def delegated_roles(self, parent: str) -> list[str]:
        """Roles `parent` delegates to that the snapshot lists (others have no data)."""
        assert self.snapshot is not None
        targets = self.roles[parent]
        return [d.name for d in targets.delegations if d.name in self.snapshot.meta]

    def result(self) -> TrustData:
        if self.timestamp is None or self.snapshot is None or TARGETS not in self.roles:
            raise TrustError(f"trust data of {self.gun} is incomplete")
        return TrustData(
            self.gun,
            self.root,
            self.timestamp,
            self.snapshot,
            dict(self.roles),
            dict(self.chains),
            dict(self.signers),
            dict(self.raw),
            dict(self.skipped),
        )

    # --- helpers -------------------------------------------------------------
    def _delegator(
        self, role: str
    ) -> tuple[Mapping[str, PublicKey], RoleKeys, tuple[Delegation, ...]]:
        if role == TARGETS:
            return self.root.keys, self.root.roles[TARGETS], ()
        if not is_delegation(role):
            raise TrustError(f"{role} is not a targets role")
        parent = parent_of(role)
        if parent not in self.roles:
            raise TrustError(f"{role} must be loaded after its parent {parent}")
        delegation = self.roles[parent].delegation(role)
        if delegation is None:
            raise TrustError(f"{parent} does not delegate to {role}")
        role_keys = RoleKeys(delegation.keyids, delegation.threshold)
        return self.roles[parent].keys, role_keys, (*self.chains[parent], delegation)

    def _verify_top_level(
        self, envelope: Envelope, role: str, version: int, expires: datetime.datetime
    ) -> None:
        check_threshold(envelope, self.root.keys, self.root.roles[role])
        self._check_version(role, version)
        _expiry(role, expires, self.now)

    def _check_version(self, role: str, version: int) -> None:
        seen = self.seen.get(role, 0)
        if version < seen:
            raise RollbackError(
                f"{role} of {self.gun} is version {version}, older than version {seen} "
                "already trusted (rollback)"
            )
        self.seen[role] = version
