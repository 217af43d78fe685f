"""Differential: our sigstore verdict equals cosign's and policy-controller's on the same case.

Each case is a signing setup (an image signed once, for the whole module, by the real cosign:
keys it generated or imported, leaves of the Fulcio stand-in, entries of the Rekor stand-in,
tokens of the real timestamp-server) and a policy, said three ways:

- ours: one authority of the `sigstore` policy part, through the real Enforcer;
- `cosign verify` / `cosign verify-attestation` with the equivalent flags (offline: the log's
  key through SIGSTORE_REKOR_PUBLIC_KEY, the CA and TSA chains as files, no SCT);
- policy-controller v0.13.1's tester on the equivalent ClusterImagePolicy, where it can judge
  the case. Its keyless authorities take their CA, log and TSA from a TrustRoot
  (`trustRootRef`): an inline `ca-cert` is validated as a public key and refused. It reads the
  tag schema only (bundles and legacy referrers are "no signatures" to it), and with a log
  configured it looks a signature without a log entry up online, which cannot be done here.

Signatures are found in every place cosign writes them: the tag schema on Debian's
docker-registry and on the referrers registry, bundles and legacy signatures as OCI referrers
(through the API on the referrers registry, through the `sha256-<hex>` referrers tag on
docker-registry, which has no API), and another repository.

Every case also states the verdict expected, so agreement cannot come from all three being
wrong the same way. Where we are deliberately stricter than cosign, the case is an expected
divergence: our deny and the tools' accept are both asserted, with the reason.

The counts (cases, agreements with cosign and with the tester, divergences) are written to
dist/sigstore-differential.txt and shown at the end of the module.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.cosign import (
    CIP_API_VERSION,
    SIGNING_DIGEST,
    Cosign,
    KeyPair,
    PolicyTester,
    ReferrersRegistry,
    Verdict,
    keyed_policy,
)
from tests.fixtures.plugin import ImageFactory
from tests.fixtures.registry import PushedImage, Registry
from tests.fixtures.sigstore_helpers import (
    attach_attestation_of,
    attach_signature,
    copy_signed,
    decide_sigstore,
    detached_signature,
    sigstore_policy,
    tamper,
)
from tests.fixtures.sigstore_pki import (
    EntryOptions,
    FulcioCA,
    TimestampAuthority,
    TransparencyLog,
    attest_keyless,
    keyed_signer,
    sign,
    sign_keyless,
    with_rekor_key,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SUMMARY = REPO_ROOT / "dist" / "sigstore-differential.txt"

ALICE = "alice@example.com"
ISSUER = "https://oidc.portieris.test"
WORKLOAD = "https://github.com/portieris/app/.github/workflows/release.yml@refs/heads/main"
GITHUB = "https://token.actions.githubusercontent.com"
PREDICATE = "https://portieris.test/predicate/scan/v1"
OTHER_PREDICATE = "https://portieris.test/predicate/other/v1"
MINUTES = datetime.timedelta(minutes=1)

TRUST_ROOT = "portieris-tests"
"""The TrustRoot the tester's keyless, ctlog and rfc3161timestamp entries name."""
UNREACHABLE = "https://{}.invalid"
"""URLs policy-controller insists on and never calls for these cases."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# -- what was signed, and the trust material ----------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A signed image and where its signatures are."""

    image: PushedImage
    bundle: bool = False
    """A Sigstore bundle referrer (cosign verifies it with --new-bundle-format)."""
    referrers: bool = False
    """A legacy signature referrer (cosign looks with --experimental-oci11)."""
    repository: str | None = None
    """The repository holding the signatures (COSIGN_REPOSITORY, our `source`)."""

    @property
    def tester_reads(self) -> bool:
        """policy-tester reads the tag schema only."""
        return not (self.bundle or self.referrers)


@dataclass
class World:
    """Everything signed once for the module, and what the policies trust."""

    cosign: Cosign
    tester: PolicyTester
    ca_file: Path
    keys: dict[str, KeyPair]
    cas: dict[str, bytes]
    """Certificate authorities (intermediate + root PEM) by name."""
    ca_files: dict[str, Path]
    logs: dict[str, TransparencyLog]
    tsas: dict[str, bytes]
    """Timestamp authority chains (PEM) by name."""
    tsa_files: dict[str, Path]
    setups: dict[str, Setup] = field(default_factory=dict)


def chain_file(directory: Path, name: str, pem: bytes) -> Path:
    path = directory / f"{name}.pem"
    path.write_bytes(pem)
    return path


@pytest.fixture(scope="module")
def world(
    cosign: Cosign,
    policy_tester: PolicyTester,
    registry: Registry,
    referrers_registry: ReferrersRegistry,
    fulcio_ca: FulcioCA,
    transparency_log: TransparencyLog,
    timestamp_authority: TimestampAuthority,
    test_ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> World:
    """Every setup, signed once by the real cosign."""
    work = tmp_path_factory.mktemp("sigstore-differential")
    stranger_ca = FulcioCA.create("an untrusted fulcio")
    not_a_tsa = stranger_ca.issue("tsa@example.com")
    cas = {"fulcio": fulcio_ca.chain_pem, "stranger": stranger_ca.chain_pem}
    tsas = {
        "tsa": timestamp_authority.chain_pem,
        "stranger": not_a_tsa.cert_pem + not_a_tsa.chain_pem,
    }
    made = World(
        cosign=cosign,
        tester=policy_tester,
        ca_file=test_ca_file,
        keys={
            "signer": cosign.generate_key_pair(work / "signer"),
            "stranger": cosign.generate_key_pair(work / "stranger"),
            "p384": cosign.generate_key_pair(work / "p384", "ecdsa-p384"),
            "rsa": cosign.generate_key_pair(work / "rsa", "rsa-3072"),
        },
        cas=cas,
        ca_files={name: chain_file(work, f"ca-{name}", pem) for name, pem in cas.items()},
        logs={"rekor": transparency_log, "stranger": TransparencyLog()},
        tsas=tsas,
        tsa_files={name: chain_file(work, f"tsa-{name}", pem) for name, pem in tsas.items()},
    )
    sign_everything(
        made,
        ImageFactory(registry, "sigstore-differential"),
        ImageFactory(referrers_registry, "sigstore-differential"),
        fulcio_ca,
        stranger_ca,
        timestamp_authority,
        work,
    )
    return made


def sign_everything(
    world: World,
    images: ImageFactory,
    referrers_images: ImageFactory,
    fulcio: FulcioCA,
    stranger_ca: FulcioCA,
    tsa: TimestampAuthority,
    work: Path,
) -> None:
    cosign, keys, log = world.cosign, world.keys, world.logs["rekor"]
    signer = keys["signer"].private_path
    setups = world.setups
    predicate = work / "predicate.json"
    predicate.write_text(json.dumps({"scanner": "portieris-tests", "findings": 0}))

    def add(name: str, image: PushedImage, **placement: Any) -> PushedImage:
        setups[name] = Setup(image, **placement)
        return image

    # keyed, no log: every place cosign writes
    cosign.sign(add("keyed", images()).digest_ref, signer)
    cosign.sign(add("keyed-on-referrers-registry", referrers_images()).digest_ref, signer)
    image = add("keyed-bundle", referrers_images(), bundle=True)
    cosign.sign(image.digest_ref, signer, new_bundle_format=True)
    image = add("keyed-legacy-referrer", referrers_images(), referrers=True)
    cosign.sign(image.digest_ref, signer, referrers=True)
    image = add("keyed-bundle-by-referrers-tag", images(), bundle=True)
    cosign.sign(image.digest_ref, signer, new_bundle_format=True)
    image = add("keyed-legacy-referrer-by-referrers-tag", images(), referrers=True)
    cosign.sign(image.digest_ref, signer, referrers=True)
    elsewhere = f"{images.registry.host}/{images.new_repo('signatures')}"
    image = add("keyed-in-another-repository", images(), repository=elsewhere)
    cosign.sign(image.digest_ref, signer, repository=elsewhere)
    cosign.sign(add("p384", images()).digest_ref, keys["p384"].private_path)
    cosign.sign(add("rsa", images()).digest_ref, keys["rsa"].private_path)
    add("unsigned", images())

    # keyed, made wrong with cosign's own attach/copy
    image = add("tampered-payload", images())
    tamper_dir = work / "tampered"
    payload, signature = detached_signature(cosign, image, signer, tamper_dir)
    tamper(payload)
    attach_signature(cosign, image, payload, signature)
    other = images()
    payload, signature = detached_signature(cosign, other, signer, work / "other-digest")
    attach_signature(cosign, add("signature-of-another-digest", images()), payload, signature)
    original = images()
    cosign.sign(original.digest_ref, signer)
    add("copied-from-another-repository", copy_signed(cosign, original, images.new_repo("copy")))

    # keyed attestations
    cosign.attest(add("keyed-attestation", images()).digest_ref, signer, predicate, PREDICATE)
    image = add("keyed-attestation-bundle", referrers_images(), bundle=True)
    cosign.attest(image.digest_ref, signer, predicate, PREDICATE, new_bundle_format=True)
    attested = images()
    cosign.attest(attested.digest_ref, signer, predicate, PREDICATE)
    attach_attestation_of(cosign, attested, add("attestation-of-another-subject", images()))

    # keyed, logged
    sign(cosign, add("keyed-logged", images()).digest_ref, keyed_signer(keys["signer"]), rekor=log)

    # keyed, timestamped
    image = add("keyed-stamped", images())
    sign(cosign, image.digest_ref, keyed_signer(keys["signer"]), tsa=tsa)

    # keyless; alice's leaf outlives the module, so the clock-fallback divergences do not
    # depend on how long signing took
    alice = fulcio.issue(ALICE, ISSUER, not_after=now() + 60 * MINUTES)
    expired = fulcio.issue(
        ALICE, ISSUER, not_before=now() - 20 * MINUTES, not_after=now() - 10 * MINUTES
    )
    sign_keyless(cosign, add("keyless-logged", images()).digest_ref, alice, rekor=log)
    workload = fulcio.issue(WORKLOAD, GITHUB)
    sign_keyless(cosign, add("keyless-workload-logged", images()).digest_ref, workload, rekor=log)
    sign_keyless(cosign, add("keyless-stamped", images()).digest_ref, alice, tsa=tsa)
    image = add("keyless-logged-and-stamped", images())
    sign_keyless(cosign, image.digest_ref, alice, rekor=log, tsa=tsa)
    sign_keyless(cosign, add("keyless-unproven", images()).digest_ref, alice)
    bad_set = EntryOptions(set_key=ec.generate_private_key(ec.SECP256R1()))
    image = add("keyless-set-by-another-key", images())
    sign_keyless(cosign, image.digest_ref, alice, rekor=log, entry=bad_set)
    image = add("keyless-entry-of-another-artifact", images())
    sign_keyless(
        cosign, image.digest_ref, alice, rekor=log, entry=EntryOptions(payload=b'{"other": 1}')
    )
    elsewhere_entry = sign_keyless(cosign, images().digest_ref, alice, rekor=log).entry
    image = add("keyless-replayed-entry", images())
    sign_keyless(
        cosign, image.digest_ref, alice, rekor=log, entry=EntryOptions(replay=elsewhere_entry)
    )
    image = add("keyless-expired-logged-in-time", images())
    in_time = EntryOptions(integrated_time=now() - 15 * MINUTES)
    sign_keyless(cosign, image.digest_ref, expired, rekor=log, entry=in_time)
    sign_keyless(
        cosign, add("keyless-expired-logged-late", images()).digest_ref, expired, rekor=log
    )
    sign_keyless(cosign, add("keyless-expired-stamped", images()).digest_ref, expired, tsa=tsa)
    untrusted = stranger_ca.issue(ALICE, ISSUER)
    sign_keyless(cosign, add("keyless-untrusted-root", images()).digest_ref, untrusted, rekor=log)
    evil_subject = fulcio.issue(f"{ALICE}.evil.net", ISSUER)
    image = add("keyless-evil-subject", images())
    sign_keyless(cosign, image.digest_ref, evil_subject, rekor=log)
    evil_issuer = fulcio.issue(ALICE, f"{ISSUER}.evil.net")
    sign_keyless(cosign, add("keyless-evil-issuer", images()).digest_ref, evil_issuer, rekor=log)

    # keyless attestations
    image = add("keyless-attestation-dsse", images())
    attest_keyless(cosign, image.digest_ref, alice, predicate, PREDICATE, rekor=log)
    image = add("keyless-attestation-intoto", images())
    attest_keyless(cosign, image.digest_ref, alice, predicate, PREDICATE, rekor=log, kind="intoto")
    image = add("keyless-attestation-stamped", images())
    attest_keyless(cosign, image.digest_ref, alice, predicate, PREDICATE, tsa=tsa)


# -- one policy, said three ways --------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One authority: a key, or a CA and one identity; what proves the signing time; where
    the signatures are; the attestation required."""

    key: str | None = None
    hash_algorithm: str | None = None
    ca: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    log: str | None = None
    tsa: str | None = None
    source: bool = False
    predicate_type: str | None = None

    def identity(self) -> dict[str, str]:
        named = {
            "subject": self.subject,
            "subjectRegExp": self.subject_regexp,
            "issuer": self.issuer,
            "issuerRegExp": self.issuer_regexp,
        }
        return {name: value for name, value in named.items() if value is not None}


def keyed(key: str = "signer", **extra: Any) -> Policy:
    return Policy(key=key, **extra)


def keyless(**extra: Any) -> Policy:
    """Alice from our issuer, certified by the Fulcio stand-in, unless `extra` says otherwise
    (an identity given as a regexp replaces the exact one)."""
    base: dict[str, Any] = {"ca": "fulcio", "subject": ALICE, "issuer": ISSUER}
    if "subject_regexp" in extra:
        base.pop("subject")
    if "issuer_regexp" in extra:
        base.pop("issuer")
    return Policy(**{**base, **extra})


def ours(world: World, setup: Setup, policy: Policy) -> dict[str, Any]:
    """The policy in our shape."""
    authority: dict[str, Any] = {"name": "under-test"}
    if policy.key is not None:
        key: dict[str, Any] = {"data": world.keys[policy.key].public_pem.decode()}
        if policy.hash_algorithm:
            key["hashAlgorithm"] = policy.hash_algorithm
        authority["key"] = key
    else:
        assert policy.ca is not None
        authority["keyless"] = {
            "ca-cert": {"data": world.cas[policy.ca].decode()},
            "identities": [policy.identity()],
        }
    if policy.log:
        authority["ctlog"] = {"publicKey": {"data": world.logs[policy.log].public_key_pem.decode()}}
    else:
        authority["ctlog"] = {"enabled": False}
    if policy.tsa:
        authority["rfc3161timestamp"] = {"certChain": {"data": world.tsas[policy.tsa].decode()}}
    if policy.source:
        authority["source"] = [{"oci": setup.repository}]
    if policy.predicate_type:
        authority["attestations"] = [{"name": "wanted", "predicateType": policy.predicate_type}]
    return sigstore_policy(authority)


def cosign_verdict(world: World, setup: Setup, policy: Policy) -> Verdict:
    """`cosign verify` or `verify-attestation` with the flags saying the same."""
    tool = world.cosign
    flags: dict[str, Any] = {}
    if policy.key is not None:
        flags["key"] = world.keys[policy.key].public_path
        flags["signature_digest_algorithm"] = policy.hash_algorithm
    else:
        assert policy.ca is not None
        flags |= {
            "certificate_chain": world.ca_files[policy.ca],
            "certificate_identity": policy.subject,
            "certificate_identity_regexp": policy.subject_regexp,
            "certificate_oidc_issuer": policy.issuer,
            "certificate_oidc_issuer_regexp": policy.issuer_regexp,
            "insecure_ignore_sct": True,
        }
    if policy.log:
        tool = with_rekor_key(tool, world.logs[policy.log])
        flags |= {"insecure_ignore_tlog": False, "offline": True}
    if policy.tsa:
        flags |= {
            "timestamp_certificate_chain": world.tsa_files[policy.tsa],
            "use_signed_timestamps": True,
        }
    if setup.bundle:
        flags["new_bundle_format"] = True
    repository = setup.repository if policy.source else None
    ref = setup.image.digest_ref
    if policy.predicate_type:
        return tool.verify_attestation(
            ref, predicate_type=policy.predicate_type, repository=repository, **flags
        )
    return tool.verify(ref, referrers=setup.referrers, repository=repository, **flags)


def policy_tester_documents(
    world: World, setup: Setup, policy: Policy
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ClusterImagePolicy and, when it names one, the TrustRoot."""
    attestations = (
        [{"name": "wanted", "predicateType": policy.predicate_type}]
        if policy.predicate_type
        else []
    )
    if policy.key is not None:
        cip = keyed_policy(
            world.keys[policy.key].public_pem,
            attestations=attestations,
            repository=setup.repository if policy.source else None,
            hash_algorithm=policy.hash_algorithm,
        )
        authority = cip["spec"]["authorities"][0]
    else:
        authority = {
            "name": "keyless",
            "keyless": {
                "url": UNREACHABLE.format("fulcio"),
                "trustRootRef": TRUST_ROOT,
                "identities": [policy.identity()],
                "insecureIgnoreSCT": True,
            },
        }
        if policy.source:
            authority["source"] = [{"oci": setup.repository}]
        if attestations:
            authority["attestations"] = attestations
        cip = {
            "apiVersion": CIP_API_VERSION,
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "portieris-test"},
            "spec": {"images": [{"glob": "**"}], "authorities": [authority]},
        }
    if policy.log:
        authority["ctlog"] = {"url": UNREACHABLE.format("rekor"), "trustRootRef": TRUST_ROOT}
    if policy.tsa:
        authority["rfc3161timestamp"] = {"trustRootRef": TRUST_ROOT}
    if policy.key is not None and not (policy.log or policy.tsa):
        return cip, None
    return cip, trust_root(world, policy)


def trust_root(world: World, policy: Policy) -> dict[str, Any]:
    """policy-controller's TrustRoot holding the policy's CA, log key and TSA chain."""

    def authority(name: str, pem: bytes) -> dict[str, Any]:
        return {
            "subject": {"organization": "portieris tests", "commonName": name},
            "uri": UNREACHABLE.format(name),
            "certChain": base64.b64encode(pem).decode(),
        }

    keys: dict[str, Any] = {"certificateAuthorities": []}
    if policy.ca:
        keys["certificateAuthorities"] = [authority("fulcio", world.cas[policy.ca])]
    if policy.log:
        keys["tLogs"] = [
            {
                "baseURL": UNREACHABLE.format("rekor"),
                "hashAlgorithm": "sha-256",
                "publicKey": base64.b64encode(world.logs[policy.log].public_key_pem).decode(),
            }
        ]
    if policy.tsa:
        keys["timestampAuthorities"] = [authority("tsa", world.tsas[policy.tsa])]
    return {
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": TRUST_ROOT},
        "spec": {"sigstoreKeys": keys},
    }


def policy_tester_verdict(world: World, setup: Setup, policy: Policy) -> Verdict:
    cip, root = policy_tester_documents(world, setup, policy)
    return world.tester(cip, setup.image.digest_ref, trust_root=root)


# -- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    setup: str
    policy: Policy
    allowed: bool
    """The verdict all three must reach."""
    because: str = ""
    """What our deny message must say (the cause, not just any failure)."""
    tester: bool = True
    """Whether policy-tester can judge it (also false for placements it does not read)."""


def allow(setup: str, what: str, policy: Policy) -> Case:
    """`setup` is allowed by `policy` (`what` names the policy in the case's id)."""
    return Case(f"{setup}/{what}", setup, policy, True)


def deny(setup: str, what: str, policy: Policy, because: str, *, tester: bool = True) -> Case:
    """`setup` is denied by `policy`, our message saying `because`."""
    return Case(f"{setup}/{what}", setup, policy, False, because, tester)


SHA384 = SIGNING_DIGEST["ecdsa-p384"]
ONLINE = False
"""policy-tester would look the missing log entry up online (with a log, policy-controller
always makes a Rekor client): not judgeable here."""
BAD_KEY = "the signature does not verify with the authority's key"
NOT_ACCEPTED = "which is not an accepted identity"
NO_CHAIN = "does not chain to the configured roots"
EXPIRED = "cert is not valid at validation time"
NO_ATTESTATION = "no verified attestation of type"

CASES = [
    # keyed, no log, each placement
    allow("keyed", "its-key", keyed()),
    deny("keyed", "another-key", keyed("stranger"), BAD_KEY),
    allow("keyed-on-referrers-registry", "its-key", keyed()),
    deny(
        "keyed-on-referrers-registry",
        "another-key",
        keyed("stranger"),
        BAD_KEY,
    ),
    allow("keyed-bundle", "its-key", keyed()),
    deny("keyed-bundle", "another-key", keyed("stranger"), BAD_KEY),
    allow("keyed-legacy-referrer", "its-key", keyed()),
    deny("keyed-legacy-referrer", "another-key", keyed("stranger"), BAD_KEY),
    allow("keyed-bundle-by-referrers-tag", "its-key", keyed()),
    deny(
        "keyed-bundle-by-referrers-tag",
        "another-key",
        keyed("stranger"),
        BAD_KEY,
    ),
    allow(
        "keyed-legacy-referrer-by-referrers-tag",
        "its-key",
        keyed(),
    ),
    deny(
        "keyed-legacy-referrer-by-referrers-tag",
        "another-key",
        keyed("stranger"),
        BAD_KEY,
    ),
    allow("keyed-in-another-repository", "source", keyed(source=True)),
    deny(
        "keyed-in-another-repository",
        "no-source",
        keyed(),
        "no signature found",
    ),
    allow("p384", "sha384", keyed("p384", hash_algorithm=SHA384)),
    deny("p384", "sha256", keyed("p384"), BAD_KEY),
    allow("rsa", "its-key", keyed("rsa")),
    deny("rsa", "another-key", keyed(), BAD_KEY),
    deny("unsigned", "key", keyed(), "no signature found"),
    deny("tampered-payload", "its-key", keyed(), BAD_KEY),
    deny(
        "signature-of-another-digest",
        "its-key",
        keyed(),
        "signs sha256:",
    ),
    # keyed attestations
    allow("keyed-attestation", "its-type", keyed(predicate_type=PREDICATE)),
    deny(
        "keyed-attestation",
        "another-type",
        keyed(predicate_type=OTHER_PREDICATE),
        f"{NO_ATTESTATION} {OTHER_PREDICATE}",
    ),
    deny(
        "keyed-attestation",
        "another-key",
        keyed("stranger", predicate_type=PREDICATE),
        BAD_KEY,
    ),
    allow(
        "keyed-attestation-bundle",
        "its-type",
        keyed(predicate_type=PREDICATE),
    ),
    deny(
        "keyed-attestation-bundle",
        "another-type",
        keyed(predicate_type=OTHER_PREDICATE),
        f"{NO_ATTESTATION} {OTHER_PREDICATE}",
    ),
    deny(
        "attestation-of-another-subject",
        "its-type",
        keyed(predicate_type=PREDICATE),
        "attests to other subjects than",
    ),
    deny(
        "keyed",
        "attestation-required",
        keyed(predicate_type=PREDICATE),
        f"{NO_ATTESTATION} {PREDICATE}",
    ),
    # keyed, logged
    allow("keyed-logged", "its-log", keyed(log="rekor")),
    deny("keyed-logged", "another-log", keyed(log="stranger"), "not the configured log"),
    deny(
        "keyed",
        "log-required",
        keyed(log="rekor"),
        "carries no transparency log entry",
        tester=ONLINE,
    ),
    # keyed, timestamped
    allow("keyed-stamped", "its-tsa", keyed(tsa="tsa")),
    deny(
        "keyed-stamped",
        "another-tsa",
        keyed(tsa="stranger"),
        "the RFC 3161 timestamp does not verify",
    ),
    # keyless with a SET
    allow("keyless-logged", "alice", keyless(log="rekor")),
    deny(
        "keyless-logged",
        "mallory",
        keyless(subject="mallory@example.com", log="rekor"),
        NOT_ACCEPTED,
    ),
    deny(
        "keyless-logged",
        "another-issuer",
        keyless(issuer="https://accounts.example.com", log="rekor"),
        NOT_ACCEPTED,
    ),
    allow(
        "keyless-logged",
        "escaped-subject-regexp",
        keyless(subject_regexp=r"alice@example\.com", log="rekor"),
    ),
    allow(
        "keyless-logged",
        "domain-regexps",
        keyless(
            subject_regexp=r".*@example\.com",
            issuer_regexp=r"https://oidc\.portieris\..*",
            log="rekor",
        ),
    ),
    deny("keyless-logged", "another-ca", keyless(ca="stranger", log="rekor"), NO_CHAIN),
    deny(
        "keyless-logged",
        "another-log",
        keyless(log="stranger"),
        "not the configured log",
    ),
    allow(
        "keyless-workload-logged",
        "uri-identity",
        keyless(subject=WORKLOAD, issuer=GITHUB, log="rekor"),
    ),
    allow(
        "keyless-workload-logged",
        "uri-regexp",
        keyless(subject_regexp=r"https://github\.com/portieris/.*", issuer=GITHUB, log="rekor"),
    ),
    deny(
        "keyless-set-by-another-key",
        "alice",
        keyless(log="rekor"),
        "signed entry timestamp does not verify",
    ),
    deny(
        "keyless-entry-of-another-artifact",
        "alice",
        keyless(log="rekor"),
        "the log entry is for another payload",
    ),
    deny(
        "keyless-replayed-entry",
        "alice",
        keyless(log="rekor"),
        "the log entry is for another payload",
    ),
    allow(
        "keyless-expired-logged-in-time",
        "alice",
        keyless(log="rekor"),
    ),
    deny(
        "keyless-expired-logged-late",
        "alice",
        keyless(log="rekor"),
        EXPIRED,
    ),
    deny("keyless-untrusted-root", "alice", keyless(log="rekor"), NO_CHAIN),
    deny(
        "keyless-stamped",
        "log-required",
        keyless(log="rekor"),
        "carries no transparency log entry",
        tester=ONLINE,
    ),
    # keyless with an RFC 3161 timestamp
    allow("keyless-stamped", "alice", keyless(tsa="tsa")),
    deny(
        "keyless-stamped",
        "another-tsa",
        keyless(tsa="stranger"),
        "the RFC 3161 timestamp does not verify",
    ),
    deny(
        "keyless-stamped",
        "mallory",
        keyless(subject="mallory@example.com", tsa="tsa"),
        NOT_ACCEPTED,
    ),
    deny("keyless-expired-stamped", "alice", keyless(tsa="tsa"), EXPIRED),
    allow(
        "keyless-logged-and-stamped",
        "both",
        keyless(log="rekor", tsa="tsa"),
    ),
    # keyless attestations
    allow(
        "keyless-attestation-dsse",
        "its-type",
        keyless(log="rekor", predicate_type=PREDICATE),
    ),
    deny(
        "keyless-attestation-dsse",
        "another-type",
        keyless(log="rekor", predicate_type=OTHER_PREDICATE),
        f"{NO_ATTESTATION} {OTHER_PREDICATE}",
    ),
    deny(
        "keyless-attestation-dsse",
        "mallory",
        keyless(subject="mallory@example.com", log="rekor", predicate_type=PREDICATE),
        NOT_ACCEPTED,
    ),
    allow(
        "keyless-attestation-intoto",
        "its-type",
        keyless(log="rekor", predicate_type=PREDICATE),
    ),
    allow(
        "keyless-attestation-stamped",
        "its-type",
        keyless(tsa="tsa", predicate_type=PREDICATE),
    ),
]


@dataclass(frozen=True)
class Divergence:
    id: str
    setup: str
    policy: Policy
    because: str
    """What our deny message says."""
    reason: str
    """Why we deny where cosign accepts."""
    tester: bool = True


NO_TIMESTAMP = "carries no RFC 3161 timestamp"

DIVERGENCES = [
    Divergence(
        "unanchored-subject-regexp",
        "keyless-evil-subject",
        keyless(subject_regexp=ALICE, log="rekor"),
        NOT_ACCEPTED,
        "a regexp is matched against the whole subject: 'alice@example.com' does not accept "
        "alice@example.com.evil.net; cosign and policy-controller match it anywhere",
    ),
    Divergence(
        "unanchored-issuer-regexp",
        "keyless-evil-issuer",
        keyless(issuer_regexp=ISSUER, log="rekor"),
        NOT_ACCEPTED,
        "a regexp is matched against the whole issuer: the issuer "
        "https://oidc.portieris.test.evil.net is not https://oidc.portieris.test",
    ),
    Divergence(
        "docker-reference-of-another-repository",
        "copied-from-another-repository",
        keyed(),
        "signs repository",
        "the payload's critical.identity.docker-reference names the repository signed; "
        "cosign copy keeps it, and cosign compares only the digest",
    ),
    Divergence(
        "no-timestamp-clock-fallback",
        "keyless-unproven",
        keyless(tsa="tsa"),
        NO_TIMESTAMP,
        "with --use-signed-timestamps and no timestamp, cosign checks the certificate at the "
        "current time; we never take the clock for the signing time",
    ),
    Divergence(
        "set-only-with-a-tsa-policy",
        "keyless-logged",
        keyless(tsa="tsa"),
        NO_TIMESTAMP,
        "the policy names a timestamp authority and the signature carries no timestamp (only a "
        "log entry the policy does not name): cosign falls back to the clock, we deny",
    ),
    Divergence(
        "keyed-without-the-named-timestamp",
        "keyed",
        keyed(tsa="tsa"),
        NO_TIMESTAMP,
        "a timestamp authority in the policy is required of every signature; cosign accepts "
        "a keyed signature without a timestamp",
    ),
]


# -- the record ---------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What was judged, for the summary."""

    cases: int = 0
    cosign: int = 0
    tester_judged: int = 0
    tester: int = 0
    divergences: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        return [
            "sigstore differential: our verdict against cosign verify / verify-attestation "
            "(v2.6.5) and policy-controller's tester (v0.13.1)",
            f"cases: {self.cases}",
            f"agreements with cosign: {self.cosign} of {self.cases}",
            f"agreements with policy-tester: {self.tester} of the {self.tester_judged} it can "
            "judge",
            f"expected divergences (we deny, the tools accept): {len(self.divergences)}",
            *(f"  - {line}" for line in self.divergences),
        ]


@pytest.fixture(scope="module")
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """Counts of what was judged; written to SUMMARY and shown when the module ends."""
    record = Ledger()
    yield record
    summary = record.summary()
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text("\n".join(summary) + "\n")
    request.config.pluginmanager.register(_Summary(summary), "sigstore-differential-summary")


class _Summary:
    """Shows the summary in pytest's terminal summary (registered when the module ends)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("sigstore differential")
        for line in self.lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(written to {SUMMARY.relative_to(REPO_ROOT)})")


async def judge(world: World, case: Case | Divergence) -> tuple[Any, Verdict, Verdict | None]:
    """Our decision, cosign's and the tester's verdicts, the two tools run concurrently."""
    setup = world.setups[case.setup]
    tester = case.tester and setup.tester_reads
    decision, cosign_said, tester_said = await asyncio.gather(
        decide_sigstore(world.ca_file, ours(world, setup, case.policy), setup.image.ref),
        asyncio.to_thread(cosign_verdict, world, setup, case.policy),
        asyncio.to_thread(policy_tester_verdict, world, setup, case.policy)
        if tester
        else _nothing(),
    )
    return decision, cosign_said, tester_said


async def _nothing() -> None:
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_verdict_equals_cosign_and_policy_tester(
    world: World, ledger: Ledger, case: Case
) -> None:
    decision, cosign_said, tester_said = await judge(world, case)

    ledger.cases += 1
    assert decision.allowed is case.allowed, decision.reasons
    assert case.because in " ".join(decision.reasons), decision.reasons
    if decision.allowed:
        assert decision.patched_image == world.setups[case.setup].image.digest_ref
    assert cosign_said.verified is case.allowed, cosign_said.output
    ledger.cosign += 1
    if tester_said is not None:
        ledger.tester_judged += 1
        assert tester_said.verified is case.allowed, tester_said.output
        ledger.tester += 1


@pytest.mark.parametrize("case", DIVERGENCES, ids=[d.id for d in DIVERGENCES])
async def test_expected_divergence_we_deny_where_the_tools_accept(
    world: World, ledger: Ledger, case: Divergence
) -> None:
    decision, cosign_said, tester_said = await judge(world, case)

    assert not decision.allowed, f"{case.reason}: {decision}"
    assert case.because in " ".join(decision.reasons), decision.reasons
    assert cosign_said.verified, f"{case.reason}:\n{cosign_said.output}"
    if tester_said is not None:
        assert tester_said.verified, f"{case.reason}:\n{tester_said.output}"
    judged = "cosign and policy-tester accept" if tester_said else "cosign accepts"
    ledger.divergences.append(f"{case.id}: we deny, {judged}; {case.reason}")


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES + DIVERGENCES}) == len(CASES) + len(DIVERGENCES)
