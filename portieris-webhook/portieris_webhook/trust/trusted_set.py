"""The trusted metadata set of one repository (GUN): a pure state machine, no I/O.

Feed it raw bytes in TUF order -- root (and each rotated root), timestamp,
snapshot, targets, delegated roles -- and it either trusts each document or
raises a TrustError saying why not; a step called out of that order is a bug of
the caller's (StateMachineMisuse), never a deny reason. It enforces, as
python-tuf's ngclient does:
  * signatures: a threshold of distinct keys of the role, counted per public key;
  * root keys count only with a certificate for this GUN (binding.py), so one
    repository's signed data cannot stand in for another's;
  * root rotation: each new root (version + 1) signed by thresholds of the old and new root;
  * expiry against the injected `now`;
  * lengths and hashes of the raw bytes as recorded by the parent role;
  * versions never lower than the ones recorded in `seen` for this GUN (updated as roles pass).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from portieris_webhook.trust.binding import certified_root_keys, common_name, is_ca
from portieris_webhook.trust.errors import (
    ExpiredMetadataError,
    MetadataError,
    RollbackError,
    SignatureError,
    StateMachineMisuse,
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
    parent_of,
    parse_envelope,
    parse_root,
    parse_snapshot,
    parse_targets,
    parse_timestamp,
    valid_delegation_name,
)


@dataclass(frozen=True)
class RootPin:
    """A trust anchor for a repository's root instead of trust on first use.

    Only root keys certified for the GUN (binding.py) are ever asked, and the
    root threshold must be met by those that are also pinned, as in notary: a
    key with one of `keyids` (its ID in root.json or the ID of its bare public
    key, which one root key keeps across repositories), a certificate that is
    one of `certificates`, or one issued by one of them that is a CA valid now.
    A pin covers every repository of the server; the common name is what tells
    them apart, so one repository's genuine root never passes for another's.
    """

    keyids: frozenset[str] = frozenset()
    certificates: tuple[x509.Certificate, ...] = ()
    description: str = ""

    def matches(self, key: PublicKey, gun: str, now: datetime.datetime) -> bool:
        """Whether `key` is pinned; only keys certified for `gun` (binding.py) are asked."""
        if key.keyid in self.keyids or key.public_id in self.keyids:
            return True
        certificate = key.certificate
        if certificate is None:
            return False
        for anchor in self.certificates:
            if certificate == anchor:
                return True
            issued_here = common_name(certificate) == gun and _is_ca_at(anchor, now)
            if issued_here and _issued_by(certificate, anchor):
                return True
        return False


def _is_ca_at(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    valid = certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    return is_ca(certificate) and valid


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


def _expiry(role: str, expires: datetime.datetime, now: datetime.datetime) -> None:
    if now >= expires:
        raise ExpiredMetadataError(
            f"{role} metadata expired at {expires.isoformat()} (now {now.isoformat()})"
        )


def valid_signers(
    envelope: Envelope,
    keys: Mapping[str, PublicKey],
    role_keys: RoleKeys,
) -> dict[bytes, PublicKey]:
    """Keys of the role (by DER SPKI) with a valid signature.

    Counting by public key, not key ID, stops one key listed twice (bare and
    x509) or one signature repeated from counting twice toward a threshold.
    """
    found: dict[bytes, PublicKey] = {}
    allowed = set(role_keys.keyids)
    for signature in envelope.signatures:
        key = keys.get(signature.keyid)
        if key is None or signature.keyid not in allowed or key.spki in found:
            continue
        if any(key.verifies(signature.method, m, signature.value) for m in envelope.messages):
            found[key.spki] = key
    return found


def check_threshold(
    envelope: Envelope,
    keys: Mapping[str, PublicKey],
    role_keys: RoleKeys,
    whose: str = "",
    refused: Sequence[str] = (),
) -> dict[bytes, PublicKey]:
    """The valid signers of `envelope`, or SignatureError if fewer than the threshold.

    `whose` describes the keys (default: keys of the role); `refused` says why
    keys of the role were not offered, for the error message.
    """
    found = valid_signers(envelope, keys, role_keys)
    if len(found) < role_keys.threshold:
        why = "".join(f"; {reason}" for reason in refused)
        raise SignatureError(
            f"{envelope.role} metadata has {len(found)} valid signature(s) from "
            f"{whose or 'keys of ' + envelope.role}, {role_keys.threshold} required{why}"
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
        certified, refused = certified_root_keys(root, gun, now)
        if pin is None:
            check_threshold(
                envelope, certified, root.roles[ROOT], f"root keys certified for {gun}", refused
            )
        else:
            # As notary does: only keys both certified for this GUN and pinned count.
            pinned = {k: v for k, v in certified.items() if pin.matches(v, gun, now)}
            if len(valid_signers(envelope, pinned, root.roles[ROOT])) < root.roles[ROOT].threshold:
                why = "".join(f"; {reason}" for reason in refused)
                raise SignatureError(
                    f"root of {gun} (version {root.version}) is not signed by the pinned root "
                    f"{pin.description or 'key'} with a certificate for {gun}{why}"
                )
        self._check_version(ROOT, root.version)
        self.root = root
        self.raw[ROOT] = root_bytes

    # --- steps ---------------------------------------------------------------
    def update_root(self, data: bytes) -> Root:
        """Rotate to the next root: version + 1, signed by the old and the new root keys."""
        if self.timestamp is not None:
            raise StateMachineMisuse("root can only be rotated before timestamp is loaded")
        envelope = parse_envelope(data, ROOT)
        new = parse_root(envelope)
        if new.version != self.root.version + 1:
            raise RollbackError(
                f"root rotation of {self.gun}: expected version {self.root.version + 1}, "
                f"got {new.version}"
            )
        # The trusted root's certificates count even if expired since, as in notary.
        previous, _ = certified_root_keys(self.root, self.gun, None)
        check_threshold(envelope, previous, self.root.roles[ROOT], "keys of the previous root")
        certified, refused = certified_root_keys(new, self.gun, self.now)
        check_threshold(
            envelope,
            certified,
            new.roles[ROOT],
            f"keys of the new root certified for {self.gun}",
            refused,
        )
        self._check_version(ROOT, new.version)
        self.root = new
        self.raw[ROOT] = data
        return new

    def update_timestamp(self, data: bytes) -> Timestamp:
        if self.timestamp is not None:
            raise StateMachineMisuse("timestamp is already loaded")
        _expiry(ROOT, self.root.expires, self.now)
        envelope = parse_envelope(data, TIMESTAMP)
        timestamp = parse_timestamp(envelope)
        self._verify_top_level(envelope, TIMESTAMP, timestamp.version, timestamp.expires)
        self.timestamp = timestamp
        self.raw[TIMESTAMP] = data
        return timestamp

    def update_snapshot(self, data: bytes) -> Snapshot:
        if self.timestamp is None or self.snapshot is not None:
            raise StateMachineMisuse("snapshot must be loaded once, after timestamp")
        self.timestamp.snapshot.check(data, f"snapshot of {self.gun}")
        envelope = parse_envelope(data, SNAPSHOT)
        snapshot = parse_snapshot(envelope)
        self._verify_top_level(envelope, SNAPSHOT, snapshot.version, snapshot.expires)
        if ROOT not in snapshot.meta:
            raise MetadataError(
                f"snapshot of {self.gun} does not record root, so nothing ties it to the "
                "trusted root (notary's snapshots always do)"
            )
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
            raise StateMachineMisuse(f"{role} must be loaded after snapshot")
        if role in self.roles:
            raise StateMachineMisuse(f"{role} is already loaded")
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
            raise StateMachineMisuse("the targets role cannot be skipped")
        self.skipped[role] = reason

    def delegated_roles(self, parent: str) -> list[str]:
        """Roles `parent` delegates to that the snapshot lists (others have no data)."""
        assert self.snapshot is not None
        targets = self.roles[parent]
        return [d.name for d in targets.delegations if d.name in self.snapshot.meta]

    def result(self) -> TrustData:
        if self.timestamp is None or self.snapshot is None or TARGETS not in self.roles:
            raise StateMachineMisuse(f"trust data of {self.gun} is incomplete")
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
        if not valid_delegation_name(role):
            raise TrustError(f"{role} is not a targets role")
        parent = parent_of(role)
        if parent not in self.roles:
            raise StateMachineMisuse(f"{role} must be loaded after its parent {parent}")
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
