"""A notary repository built in memory with our own keys, for tests of the pure verifier.

Like python-tuf's RepositorySimulator: keys of every type notary uses, roles
with thresholds, delegations with paths, root rotation, and `publish()` giving
the raw bytes a notary server would serve. Tests then bend one thing at a time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from portieris_webhook.trust.canonical import encode_canonical
from portieris_webhook.trust.keys import key_id

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
GUN = "registry.example.com/team/app"


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class TestKey:
    """A private key and its notary public key object."""

    __test__ = False

    keytype: str
    private: Any
    public_b64: str

    @property
    def keyid(self) -> str:
        return key_id(self.keytype, self.public_b64)

    @property
    def document(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": self.public_b64}}

    @property
    def spki_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> dict[str, str]:
        if self.keytype.startswith("ecdsa"):
            r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
            size = (self.private.curve.key_size + 7) // 8
            sig, method = r.to_bytes(size, "big") + s.to_bytes(size, "big"), "ecdsa"
        elif self.keytype == "ed25519":
            sig, method = self.private.sign(message), "eddsa"
        else:
            pss = padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
            )
            sig, method = self.private.sign(message, pss, hashes.SHA256()), "rsapss"
        return {"keyid": self.keyid, "method": method, "sig": b64(sig)}


def self_signed(
    private: Any, name: str, not_before: datetime.datetime, not_after: datetime.datetime
) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    algorithm = None if isinstance(private, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(private, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def make_key(
    keytype: str = "ecdsa",
    *,
    not_before: datetime.datetime = NOW - datetime.timedelta(days=365),
    not_after: datetime.datetime = NOW + datetime.timedelta(days=3650),
    common_name: str = GUN,
) -> TestKey:
    """A key of `keytype`; an x509 one carries a self-signed certificate for `common_name`
    (the GUN by default, as notary requires of root keys)."""
    if keytype.startswith("ecdsa"):
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif keytype.startswith("rsa"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif keytype == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(keytype)
    if keytype.endswith("-x509"):
        public = self_signed(private, common_name, not_before, not_after)
    elif keytype == "ed25519":
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return TestKey(keytype, private, b64(public))


_SIGNED: dict[tuple[bytes, tuple[str, ...]], bytes] = {}


def envelope(signed: dict[str, Any], keys: list[TestKey]) -> bytes:
    """Signed document bytes; the same content signed by the same keys gives the same bytes,
    as a notary client leaves an unchanged role alone (ECDSA signatures are randomised)."""
    message = encode_canonical(signed)
    memo = (message, tuple(k.keyid for k in keys))
    if memo not in _SIGNED:
        document = {"signed": signed, "signatures": [k.sign(message) for k in keys]}
        _SIGNED[memo] = json.dumps(document).encode()
    return _SIGNED[memo]


def file_meta(data: bytes) -> dict[str, Any]:
    return {
        "hashes": {
            "sha256": b64(hashlib.sha256(data).digest()),
            "sha512": b64(hashlib.sha512(data).digest()),
        },
        "length": len(data),
    }


@dataclass
class Role:
    keys: list[TestKey]
    threshold: int = 1
    version: int = 1
    expires: datetime.datetime = NOW + datetime.timedelta(days=365)
    signers: list[TestKey] | None = None
    """Keys that sign the next publish; default: the role's keys."""
    paths: list[str] | None = field(default_factory=lambda: [""])
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def signing_keys(self) -> list[TestKey]:
        return self.signers if self.signers is not None else self.keys


class RepositorySimulator:
    """The four top-level roles plus delegations; `publish()` -> {role: bytes} as served."""

    def __init__(self, gun: str = GUN, root_keytype: str = "ecdsa-x509") -> None:
        self.gun = gun
        self.root = Role(
            [make_key(root_keytype, common_name=gun)], expires=NOW + datetime.timedelta(days=3650)
        )
        self.timestamp = Role([make_key("ed25519")], expires=NOW + datetime.timedelta(days=14))
        self.snapshot = Role([make_key("ecdsa")])
        self.targets = Role([make_key("ecdsa")])
        self.delegations: dict[str, Role] = {}
        self.root_versions: dict[int, bytes] = {}
        self.extra_root_keys: list[TestKey] = []
        self.extra_root_signers: list[TestKey] = []
        self.root_bytes = self._build_root()

    # --- editing ------------------------------------------------------------
    def delegate(
        self,
        name: str,
        keys: list[TestKey] | None = None,
        threshold: int = 1,
        paths: list[str] | None = None,
    ) -> Role:
        role = Role(
            keys or [make_key("ecdsa-x509")], threshold, paths=paths if paths is not None else [""]
        )
        self.delegations[name] = role
        return role

    def role(self, name: str) -> Role:
        top = {
            "root": self.root,
            "timestamp": self.timestamp,
            "snapshot": self.snapshot,
            "targets": self.targets,
        }
        return top.get(name) or self.delegations[name]

    def add_target(self, role: str, name: str, content: bytes) -> str:
        """Sign `name` -> sha256(content) in `role`; returns the digest `sha256:<hex>`."""
        self.role(role).targets[name] = file_meta(content) | {
            "hashes": {"sha256": b64(hashlib.sha256(content).digest())}
        }
        return "sha256:" + hashlib.sha256(content).hexdigest()

    def rotate_root(
        self, new_keys: list[TestKey], signers: list[TestKey] | None = None, threshold: int = 1
    ) -> bytes:
        """Next root version with `new_keys`; signed by `signers` (default old + new keys)."""
        old = self.root.keys
        self.root = Role(new_keys, threshold, self.root.version + 1, self.root.expires)
        self.root.signers = signers if signers is not None else old + new_keys
        self.root_bytes = self._build_root()
        self.root.signers = None
        return self.root_bytes

    def rebuild_root(self) -> bytes:
        self.root_bytes = self._build_root()
        return self.root_bytes

    # --- documents ----------------------------------------------------------
    def _build_root(self) -> bytes:
        keys: dict[str, Any] = {}
        roles: dict[str, Any] = {}
        for name in ("root", "timestamp", "snapshot", "targets"):
            role = self.role(name)
            for key in role.keys:
                keys[key.keyid] = key.document
            roles[name] = {"keyids": [k.keyid for k in role.keys], "threshold": role.threshold}
        for key in self.extra_root_keys:
            keys[key.keyid] = key.document
            roles["root"]["keyids"].append(key.keyid)
        signed = {
            "_type": "Root",
            "consistent_snapshot": False,
            "expires": iso(self.root.expires),
            "keys": keys,
            "roles": roles,
            "version": self.root.version,
        }
        data = envelope(signed, self.root.signing_keys() + self.extra_root_signers)
        self.root_versions[self.root.version] = data
        return data

    def targets_signed(self, name: str) -> dict[str, Any]:
        role = self.role(name)
        children = {n: r for n, r in self.delegations.items() if n.rsplit("/", 1)[0] == name}
        keys = {k.keyid: k.document for r in children.values() for k in r.keys}
        roles = []
        for child, r in children.items():
            entry: dict[str, Any] = {
                "keyids": [k.keyid for k in r.keys],
                "name": child,
                "threshold": r.threshold,
            }
            if r.paths is not None:
                entry["paths"] = r.paths
            roles.append(entry)
        return {
            "_type": "Targets",
            "delegations": {"keys": keys, "roles": roles},
            "expires": iso(role.expires),
            "targets": role.targets,
            "version": role.version,
        }

    def publish(self, bump: bool = False) -> dict[str, bytes]:
        """Sign everything as it stands; `bump` raises every non-root version first."""
        if bump:
            for name in ("timestamp", "snapshot", "targets", *self.delegations):
                self.role(name).version += 1
        files: dict[str, bytes] = {"root": self.root_bytes}
        for name in ("targets", *self.delegations):
            files[name] = envelope(self.targets_signed(name), self.role(name).signing_keys())
        meta = {name: file_meta(data) for name, data in files.items()}
        snapshot = {
            "_type": "Snapshot",
            "expires": iso(self.snapshot.expires),
            "meta": meta,
            "version": self.snapshot.version,
        }
        files["snapshot"] = envelope(snapshot, self.snapshot.signing_keys())
        timestamp = {
            "_type": "Timestamp",
            "expires": iso(self.timestamp.expires),
            "meta": {"snapshot": file_meta(files["snapshot"])},
            "version": self.timestamp.version,
        }
        files["timestamp"] = envelope(timestamp, self.timestamp.signing_keys())
        for version, data in self.root_versions.items():
            files[f"{version}.root"] = data
        return files


def resign(raw: bytes, keys: list[TestKey], edit: Any = None) -> bytes:
    """Re-sign a document's `signed` (optionally changed by `edit(signed)`) with `keys`."""
    signed = json.loads(raw)["signed"]
    if edit is not None:
        edit(signed)
    return envelope(signed, keys)
