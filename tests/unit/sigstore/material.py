"""What the sigstore unit tests sign and verify with, made in-process: keys, a Fulcio-shaped
certificate authority, a Rekor-shaped log (SETs, entry bodies, signed checkpoints) and the
documents cosign writes (signature payloads, in-toto statements, DSSE envelopes).

Nothing here runs a server or cosign (the integration tests do, with the real tools). Every
format is written from its specification, not from the code under test, so a test that
passes shows the code reads what the tools write.

Time is fixed (NOW): verification must never consult the clock, so the certificates are
made valid around NOW, whatever day the tests run.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from portieris_webhook.images import parse_image
from portieris_webhook.policy.model import parse_policy_object
from portieris_webhook.policy.sigstore_part import Authority
from portieris_webhook.sigstore.authority import AuthorityTrust, Subject
from portieris_webhook.sigstore.evidence import (
    ATTESTATION,
    IN_TOTO_PAYLOAD_TYPE,
    SIGNATURE,
    Envelope,
    Evidence,
    LogEntry,
)
from portieris_webhook.sigstore.trust_material import TrustLoader

from tests.builders import cluster_policy, memory_state
from tests.fixtures.sigstore_pki import der_utf8_string

NOW = datetime.datetime(2025, 1, 15, 12, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)
ISSUER = "https://oidc.example.test"
SIGNER = "alice@example.com"
ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
COSIGN_TYPE = "cosign container image signature"
SLSA = "https://slsa.dev/provenance/v1"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"

REPOSITORY = "registry.local/team/app"
IMAGE = parse_image(f"{REPOSITORY}:1.0")
DIGEST = "sha256:" + hashlib.sha256(b"the image manifest").hexdigest()
OTHER_DIGEST = "sha256:" + hashlib.sha256(b"another image manifest").hexdigest()
SUBJECT = Subject(IMAGE, DIGEST)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def canonical(value: Any) -> bytes:
    """The canonical JSON Rekor signs (RFC 8785 for these values: sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# -- keys ---------------------------------------------------------------------------------

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_pem(key: Any) -> str:
    """SubjectPublicKeyInfo PEM of a key (or of a private key's public half)."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_der(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def sign(key: PrivateKey, data: bytes, algorithm: str = "sha256") -> bytes:
    """What cosign makes: ECDSA (DER), RSA PKCS#1 v1.5, or Ed25519 over `data`."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(HASHES[algorithm]()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), HASHES[algorithm]())
    return key.sign(data)


# -- a Fulcio-shaped certificate authority -------------------------------------------------


def _key_usage(*, signing: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Leaf:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class FulcioCA:
    """A root and an intermediate (EKU codeSigning) shaped like Sigstore's, issuing leaves
    shaped like Fulcio's: empty subject, critical SAN, KU digitalSignature, EKU codeSigning,
    the OIDC issuer in 1.3.6.1.4.1.57264.1.8 (DER UTF8String) and .1.1 (raw)."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    @classmethod
    def create(cls, name: str = "sigstore") -> FulcioCA:
        root_key, intermediate_key = ec_key(ec.SECP384R1()), ec_key(ec.SECP384R1())
        start, end = NOW - datetime.timedelta(days=365), NOW + datetime.timedelta(days=365)
        root = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(signing=False, ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA384())
        )
        intermediate = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name}-intermediate"))
            .issuer_name(root.subject)
            .public_key(intermediate_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=False, ca=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(intermediate_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA384())
        )
        return cls(root_key, root, intermediate_key, intermediate)

    def pem(self, *, intermediate: bool = True) -> str:
        """What an authority's `ca-cert` holds: the root and (usually) the intermediate."""
        certificates = [self.root, self.intermediate] if intermediate else [self.root]
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)

    @property
    def intermediate_der(self) -> bytes:
        return self.intermediate.public_bytes(serialization.Encoding.DER)

    def leaf(
        self,
        *,
        email: str | None = SIGNER,
        uri: str | None = None,
        issuer: str | None = ISSUER,
        issuer_v1: str | None = None,
        not_before: datetime.datetime = NOW - MINUTE,
        not_after: datetime.datetime | None = None,
        usages: list[ObjectIdentifier] | None = None,
        digital_signature: bool = True,
    ) -> Leaf:
        """A leaf for `email` and/or `uri`; the issuer in .1.8 (`issuer`) and .1.1
        (`issuer_v1`, default the same); `usages` None: codeSigning, []: no EKU at all."""
        key = ec_key()
        names: list[x509.GeneralName] = []
        if email:
            names.append(x509.RFC822Name(email))
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after or not_before + 10 * MINUTE)
            .add_extension(_key_usage(signing=digital_signature, ca=False), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
        wanted = [ExtendedKeyUsageOID.CODE_SIGNING] if usages is None else usages
        if wanted:
            builder = builder.add_extension(x509.ExtendedKeyUsage(wanted), critical=False)
        v1 = issuer if issuer_v1 is None else issuer_v1
        if v1:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ISSUER_V1, v1.encode()), critical=False
            )
        if issuer:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ISSUER_V2, der_utf8_string(issuer)), critical=False
            )
        return Leaf(key, builder.sign(self.intermediate_key, hashes.SHA384()))


# -- a Rekor-shaped log ----------------------------------------------------------------------


def hashedrekord_body(signature: bytes, verifier_pem: bytes, payload: bytes) -> bytes:
    """Rekor's canonical `hashedrekord` v0.0.1 body (`verifier_pem`: key or certificate)."""
    return canonical(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
                },
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": b64(verifier_pem)},
                },
            },
        }
    )


def dsse_body(envelope: bytes, verifier_pem: bytes) -> bytes:
    """Rekor's canonical `dsse` v0.0.1 body: each signature as in the envelope (base64), its
    verifier base64(PEM), the hashes of the envelope and of the payload."""
    doc = json.loads(envelope)
    payload = base64.b64decode(doc["payload"])
    return canonical(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": s["sig"], "verifier": b64(verifier_pem)}
                    for s in doc["signatures"]
                ],
            },
        }
    )


def intoto_v002_body(envelope: bytes, verifier_pem: bytes) -> bytes:
    """Rekor's canonical `intoto` v0.0.2 body (cosign's default for `--rekor-entry-type
    intoto`): the envelope without its payload, each `sig` base64-encoded once more (the
    DSSE base64 text as bytes), `publicKey` base64(PEM)."""
    doc = json.loads(envelope)
    payload = base64.b64decode(doc["payload"])
    return canonical(
        {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {
                "content": {
                    "envelope": {
                        "payloadType": doc["payloadType"],
                        "signatures": [
                            {"publicKey": b64(verifier_pem), "sig": b64(s["sig"].encode())}
                            for s in doc["signatures"]
                        ],
                    },
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope).hexdigest()},
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                }
            },
        }
    )


@dataclass(frozen=True)
class Log:
    """A transparency log's key: it signs entry timestamps (SETs) and checkpoints."""

    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls) -> Log:
        return cls(ec_key())

    @property
    def log_id(self) -> bytes:
        """SHA-256 of the log key's DER SubjectPublicKeyInfo."""
        return hashlib.sha256(public_der(self.key)).digest()

    @property
    def public_pem(self) -> str:
        return public_pem(self.key)

    def entry(
        self,
        body: bytes,
        *,
        integrated_time: datetime.datetime = NOW,
        log_index: int = 41,
        set_key: ec.EllipticCurvePrivateKey | None = None,
        log_id: bytes | None = None,
    ) -> LogEntry:
        """The entry with its SET: the log's ECDSA-SHA256 signature over the canonical JSON
        of {body (base64), integratedTime, logID (hex), logIndex}."""
        when = int(integrated_time.timestamp())
        logged_by = log_id or self.log_id
        document = canonical(
            {
                "body": b64(body),
                "integratedTime": when,
                "logID": logged_by.hex(),
                "logIndex": log_index,
            }
        )
        promise = (set_key or self.key).sign(document, ec.ECDSA(hashes.SHA256()))
        return LogEntry(body, when, log_index, logged_by, promise)

    def checkpoint(self, size: int, root: bytes, *, origin: str = "rekor.test - 1") -> str:
        return signed_note(self.key, origin, size, root)


def signed_note(
    key: ec.EllipticCurvePrivateKey,
    origin: str,
    size: int,
    root: bytes,
    *,
    hint: bytes | None = None,
    body: str | None = None,
) -> str:
    """A checkpoint: "origin\\nsize\\nbase64(root)\\n", a blank line, and the line
    "— origin base64(keyhint || signature)", the key hint the first 4 bytes of the SHA-256
    of the key's DER, the signature ECDSA-SHA256 over the body text with its final newline.
    `body`: sign that text instead (to show the signature covers what is read)."""
    text = f"{origin}\n{size}\n{b64(root)}\n"
    signed = (body if body is not None else text).encode()
    signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    hint = hint if hint is not None else hashlib.sha256(public_der(key)).digest()[:4]
    return f"{text}\n\u2014 {origin} {b64(hint + signature)}\n"


# -- what cosign signs --------------------------------------------------------------------


def cosign_payload(
    digest: str = DIGEST,
    reference: str = REPOSITORY,
    *,
    kind: str = COSIGN_TYPE,
    critical_extra: dict[str, Any] | None = None,
) -> bytes:
    """A cosign simple-signing payload, as `cosign sign` writes it."""
    critical = {
        "identity": {"docker-reference": reference},
        "image": {"docker-manifest-digest": digest},
        "type": kind,
        **(critical_extra or {}),
    }
    return json.dumps({"critical": critical, "optional": None}).encode()


def statement(
    predicate_type: str = SLSA,
    digests: tuple[str, ...] = (DIGEST,),
    statement_type: str = "https://in-toto.io/Statement/v1",
) -> bytes:
    """An in-toto statement about `digests` (sha256:<hex>)."""
    subjects = [{"name": REPOSITORY, "digest": {"sha256": d.partition(":")[2]}} for d in digests]
    return json.dumps(
        {
            "_type": statement_type,
            "subject": subjects,
            "predicateType": predicate_type,
            "predicate": {"builder": {"id": "https://ci.example.test"}},
        }
    ).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 " + b"%d %s %d %s" % (len(kind), kind, len(payload), payload)


def envelope_json(
    payload: bytes, key: PrivateKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> bytes:
    """A DSSE envelope with one signature by `key` over PAE(type, payload)."""
    signature = sign(key, pae(payload_type, payload))
    return json.dumps(
        {
            "payloadType": payload_type,
            "payload": b64(payload),
            "signatures": [{"keyid": "", "sig": b64(signature)}],
        }
    ).encode()


# -- evidence and authorities, as the verifier sees them ------------------------------------


def signature_evidence(
    payload: bytes,
    key: PrivateKey,
    *,
    leaf: Leaf | None = None,
    chain: tuple[bytes, ...] = (),
    log_entry: LogEntry | None = None,
    signature: bytes | None = None,
    where: str = "sig",
) -> Evidence:
    """A legacy cosign signature layer: `key` signed `payload` (or `signature` is given);
    a timestamp would cover the raw signature."""
    signature = signature if signature is not None else sign(key, payload)
    return Evidence(
        where,
        SIGNATURE,
        payload,
        payload,
        signature,
        leaf.der if leaf else None,
        chain,
        log_entry,
        timestamped=signature,
    )


def attestation_evidence(
    envelope: bytes,
    *,
    leaf: Leaf | None = None,
    log_entry: LogEntry | None = None,
    where: str = "att",
) -> Evidence:
    """A DSSE attestation (legacy layer or bundle: the same evidence)."""
    doc = json.loads(envelope)
    parsed = Envelope(
        doc["payloadType"],
        base64.b64decode(doc["payload"]),
        tuple(base64.b64decode(s["sig"]) for s in doc["signatures"]),
    )
    return Evidence(
        where,
        ATTESTATION,
        parsed.payload,
        pae(parsed.payload_type, parsed.payload),
        parsed.signatures[0],
        leaf.der if leaf else None,
        (),
        log_entry,
        timestamped=envelope,
        envelope=parsed,
        document=envelope,
    )


def authority(part: dict[str, Any]) -> Authority:
    """The one authority of a sigstore policy part, parsed as the webhook parses it."""
    obj = cluster_policy("p", (f"{REPOSITORY}", {"sigstore": {"authorities": [part]}}))
    (only,) = parse_policy_object(obj).repositories[0].policy.sigstore.authorities
    return only


def trust(part: dict[str, Any]) -> AuthorityTrust:
    """The authority of `part` with its inline keys and certificates loaded."""
    return TrustLoader(memory_state()).load(authority(part), "default")


def keyed(key: Any, *, log: Log | None = None, **more: Any) -> dict[str, Any]:
    """A key authority (with `log`'s public key, or the log off)."""
    ctlog = {"publicKey": {"data": log.public_pem}} if log else {"enabled": False}
    return {"name": "keyed", "key": {"data": public_pem(key)}, "ctlog": ctlog, **more}


def keyless(
    ca: FulcioCA, log: Log, identities: list[dict[str, str]] | None = None, **more: Any
) -> dict[str, Any]:
    """A keyless authority trusting `ca` and `log`, accepting SIGNER from ISSUER."""
    return {
        "name": "keyless",
        "keyless": {
            "ca-cert": {"data": ca.pem()},
            "identities": identities or [{"issuer": ISSUER, "subject": SIGNER}],
        },
        "ctlog": {"publicKey": {"data": log.public_pem}},
        **more,
    }


# -- an RFC 3161 timestamp authority ------------------------------------------------------------
#
# No library here writes RFC 3161 responses (rfc3161-client reads and verifies them), so the
# response is written in DER by hand from RFC 3161 / RFC 5652: a TimeStampResp whose token is
# a CMS SignedData over a TSTInfo, signed (with signed attributes) by a leaf whose critical
# EKU is timeStamping. The integration tests use the real sigstore timestamp-server.


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(size)]) + size


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _set(*parts: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(parts)))


def _int(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


SHA256_ALGORITHM = "2.16.840.1.101.3.4.2.1"
ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"


@dataclass(frozen=True)
class TimestampAuthority:
    """A root and a timestamping leaf (EKU timeStamping, critical) that stamps messages."""

    root: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate

    @classmethod
    def create(cls, name: str = "tsa") -> TimestampAuthority:
        root_key, leaf_key = ec_key(), ec_key()
        start, end = NOW - datetime.timedelta(days=365), NOW + datetime.timedelta(days=365)
        root = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name}-root"))
            .issuer_name(_name(f"{name}-root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=False, ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(root.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=True, ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        return cls(root, leaf_key, leaf)

    def pem(self) -> str:
        """What `rfc3161timestamp.certChain` holds."""
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in (self.leaf, self.root)
        )

    def stamp(self, message: bytes, at: datetime.datetime = NOW) -> bytes:
        """A granted TimeStampResp (DER) over SHA-256(`message`) at `at`."""
        tst_info = _seq(
            _int(1),
            _oid("1.3.6.1.4.1.57264.2"),
            _seq(_seq(_oid(SHA256_ALGORITHM)), _octets(hashlib.sha256(message).digest())),
            _int(x509.random_serial_number()),
            _tlv(0x18, at.strftime("%Y%m%d%H%M%SZ").encode()),
        )
        leaf_der = self.leaf.public_bytes(serialization.Encoding.DER)
        attributes = [
            _seq(_oid("1.2.840.113549.1.9.3"), _set(_oid(ID_CT_TSTINFO))),
            _seq(_oid("1.2.840.113549.1.9.4"), _set(_octets(hashlib.sha256(tst_info).digest()))),
            _seq(
                _oid("1.2.840.113549.1.9.16.2.47"),
                _set(_seq(_seq(_seq(_octets(hashlib.sha256(leaf_der).digest()))))),
            ),
        ]
        signed_attributes = _set(*attributes)
        signature = self.leaf_key.sign(signed_attributes, ec.ECDSA(hashes.SHA256()))
        signer_info = _seq(
            _int(1),
            _seq(self.leaf.issuer.public_bytes(), _int(self.leaf.serial_number)),
            _seq(_oid(SHA256_ALGORITHM)),
            bytes([0xA0]) + signed_attributes[1:],  # [0] IMPLICIT SET OF Attribute
            _seq(_oid("1.2.840.10045.4.3.2")),
            _octets(signature),
        )
        signed_data = _seq(
            _int(3),
            _set(_seq(_oid(SHA256_ALGORITHM))),
            _seq(_oid(ID_CT_TSTINFO), _tlv(0xA0, _octets(tst_info))),
            _tlv(0xA0, leaf_der),
            _set(signer_info),
        )
        token = _seq(_oid("1.2.840.113549.1.7.2"), _tlv(0xA0, signed_data))
        return _seq(_seq(_int(0)), token)
