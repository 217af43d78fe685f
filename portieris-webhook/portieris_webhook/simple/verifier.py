"""The `simple` verifier plugin: policy.simple.requirements (Red Hat simple signing).

Requirements are ANDed, as in containers-policy.json. `reject` denies,
`insecureAcceptAnything` accepts without pinning, and `signedBy` needs one
signature that passes every step, in containers/image's order:

1. the key secret exists and holds public keys (its own keyring);
2. the signature verifies with exactly one good signature by a primary key of that ring;
3. the payload is a strict atomic container signature;
4. its manifest digest is the image's digest (the registry's, for a tag);
5. its docker reference satisfies the requirement's signedIdentity.

The Verdict names the manifest digest, so the enforcer pins the image to it
and compares it with what Notary trust verified.

The warm path: which digest a tag names, and which signatures a store holds for a
digest, are reused for `Settings.simple_refresh` seconds (shared_answers.SharedAnswers),
keyed by the URL asked and the identity of the credentials used, so a pull secret's
answer is never handed to a request with other credentials; concurrent identical
reads share one call; failed reads are remembered for `simple_failure_ttl` seconds
(never refusals of the asking request's own credentials). What gpg said about a
signature is remembered by the key ring (keyring.py); steps 3-5 run every time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from portieris_webhook.cluster.state import StateView
from portieris_webhook.errors import RemoteError, SecretError, VerificationError
from portieris_webhook.policy.model import (
    INSECURE_ACCEPT_ANYTHING,
    REJECT,
    SIGNED_BY,
    Requirement,
)
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.client import (
    RegistryClient,
    ResolvedManifest,
    manifest_reference,
    manifest_url,
)
from portieris_webhook.registry.credentials import (
    RegistryCredential,
    credentials_for_host,
    credentials_identity,
)
from portieris_webhook.remote.outbound import waiting_for
from portieris_webhook.remote.shared_answers import FreshnessLimits, SharedAnswers
from portieris_webhook.simple.identity import DockerRef, identity_accepted, intended_reference
from portieris_webhook.simple.keyring import KeyRing, KeyRings, SignatureRejected
from portieris_webhook.simple.payload import parse_payload
from portieris_webhook.simple.stores import (
    LookasideStore,
    RegistryExtensionStore,
    SignatureStore,
    StoreCredentials,
)
from portieris_webhook.verify.contract import (
    ImageCheck,
    StateInput,
    Verdict,
    Verifier,
    VerifierContext,
    pull_credentials_input,
    secret_input,
)

ANSWERS_MAX_ENTRIES = 1000
"""Tags (and, separately, signature lists) whose answers are kept, least recently used
dropped first; failed reads are kept apart, as many at most."""
ANSWERS_MAX_BYTES = 16 * 1024 * 1024
"""Bytes of manifests (and, separately, of signatures) kept over all entries."""
AnswerKey = tuple[str, str]
"""(the URL asked, the identity of the credentials it was asked with)."""


def _manifest_size(manifest: ResolvedManifest) -> int:
    return len(manifest.body or b"") + len(manifest.digest) + len(manifest.media_type)


def _none_yet(signatures: tuple[bytes, ...]) -> bool:
    return not signatures


def _signatures_size(signatures: tuple[bytes, ...]) -> int:
    return sum(len(signature) for signature in signatures) + 1


def _late(host: str, url: str) -> Callable[[float], VerificationError]:
    def error(left: float) -> VerificationError:
        return RemoteError(
            f"{host}: no answer within the verification budget ({left:.3g}s left) (GET {url})"
        )

    return error


@dataclass(frozen=True)
class SignedByRequirement:
    """A signedBy requirement with its key ring loaded; `label` names it in messages."""

    label: str
    requirement: Requirement
    ring: KeyRing


def signature_problem(
    requirement: Requirement,
    manifest: ResolvedManifest,
    intended: DockerRef,
    verified_payload: bytes,
    fingerprint: str,
) -> str | None:
    """Steps 3-5 for a signature that verified: None if accepted, else why not."""
    try:
        payload = parse_payload(verified_payload)
    except VerificationError as exc:
        return str(exc)
    if not manifest.matches(payload.manifest_digest):
        return f"signature by {fingerprint} is for digest {payload.manifest_digest}, not {manifest.digest}"
    if not identity_accepted(requirement.signed_identity, intended, payload.docker_reference):
        return (
            f"signature by {fingerprint} is for identity {payload.docker_reference!r}, which "
            f"{requirement.signed_identity.type} does not accept for {intended}"
        )
    return None


def signature_store(
    auth: AuthenticatedClient,
    state: StateView,
    check: ImageCheck,
    credentials: Sequence[RegistryCredential],
) -> SignatureStore:
    """Where the signatures of `check`'s image are read: the policy's lookaside store (with
    the store secret's credentials), else the registry's signature extension."""
    simple = check.policy.simple
    if not simple.store_url:
        return RegistryExtensionStore(auth, credentials)
    return LookasideStore(auth, simple.store_url, store_credentials(state, check))


def store_credentials(state: StateView, check: ImageCheck) -> StoreCredentials | None:
    """The credentials the policy's store secret holds (None without one); SecretError if it
    is missing or does not hold them."""
    name = check.policy.simple.store_secret
    if not name:
        return None
    secret = state.secret(check.namespace, name)
    where = f"store secret {check.namespace}/{name}"
    if secret is None:
        raise SecretError(f"simple signing: {where} does not exist")
    username, password = secret.data.get("username"), secret.data.get("password")
    if not username or password is None:
        raise SecretError(f"simple signing: {where} must hold `username` and `password`")
    try:
        return StoreCredentials(username.decode(), password.decode())
    except UnicodeDecodeError as exc:
        raise SecretError(f"simple signing: {where}: `username`/`password` are not UTF-8") from exc


class SimpleVerifier(Verifier):
    name = "simple"

    def __init__(
        self, context: VerifierContext, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(context)
        self.auth = AuthenticatedClient(context.http)
        self.registry = RegistryClient(self.auth)
        self.keyrings = KeyRings(monotonic=monotonic)
        settings = context.settings
        limits = FreshnessLimits(
            settings.simple_refresh,
            settings.simple_failure_ttl,
            ANSWERS_MAX_ENTRIES,
            ANSWERS_MAX_BYTES,
        )
        self.manifests: SharedAnswers[AnswerKey, ResolvedManifest] = SharedAnswers(
            limits, size=_manifest_size, monotonic=monotonic
        )
        """Which manifest a tag (or digest) names, by manifest URL and pull credentials."""
        self.signature_lists: SharedAnswers[AnswerKey, tuple[bytes, ...]] = SharedAnswers(
            limits, size=_signatures_size, brief=_none_yet, monotonic=monotonic
        )
        """The signatures a store holds for a digest, by store URL and store credentials; an
        empty list only for --simple-failure-ttl, since signing often follows pushing."""

    async def close(self) -> None:
        await self.manifests.close()
        await self.signature_lists.close()
        await self.keyrings.close()

    def inputs(self, check: ImageCheck) -> tuple[StateInput, ...]:
        """The key secrets of signedBy requirements (each in its namespace), the store secret
        and the pull credentials for the registry host; nothing without a signedBy."""
        simple, state = check.policy.simple, self.context.state
        keys = [
            secret_input(state, r.key_secret_namespace or check.namespace, r.key_secret or "")
            for r in simple.requirements
            if r.type == SIGNED_BY
        ]
        if not keys:
            return ()
        if simple.store_url and simple.store_secret:
            keys.append(secret_input(state, check.namespace, simple.store_secret))
        return (*keys, pull_credentials_input(state, check))

    def max_age(self) -> float:
        """How long a passed check holds: the simple-signing window, within which the tag's
        digest and the store's signatures are not read again anyway."""
        return self.context.settings.simple_refresh

    def _timeout(self, check: ImageCheck) -> float:
        return max(0.001, min(self.context.settings.remote_timeout, check.remaining()))

    def _load_timeout(self, check: ImageCheck) -> float:
        """A shared read runs shielded for every request waiting on it, so its own deadline
        is the remote timeout, not what is left of the request that happened to start it."""
        if self.manifests.enabled:
            return self.context.settings.remote_timeout
        return self._timeout(check)

    async def verify(self, check: ImageCheck) -> Verdict:
        requirements = check.policy.simple.requirements
        for index, requirement in enumerate(requirements, 1):
            if requirement.type == REJECT:
                raise VerificationError(f"simple signing requirement {index} is 'reject'")
            if requirement.type not in (SIGNED_BY, INSECURE_ACCEPT_ANYTHING):
                raise VerificationError(f"unknown simple signing requirement {requirement.type!r}")
        signed_by = [(i, r) for i, r in enumerate(requirements, 1) if r.type == SIGNED_BY]
        if not signed_by:
            return Verdict(self.name, None, "insecureAcceptAnything")
        credentials = credentials_for_host(
            self.context.state, check.namespace, check.pull_secrets, check.image.domain
        )
        store = signature_store(self.auth, self.context.state, check, credentials)
        loaded = await asyncio.gather(*(self._load(check, i, r) for i, r in signed_by))
        manifest, manifest_age = await self._resolve(check, credentials)
        signatures, signatures_age = await self._signatures(check, store, manifest.digest)
        intended = intended_reference(check.image)
        outcomes = await asyncio.gather(
            *(self._requirement(item, signatures, manifest, intended, store) for item in loaded)
        )
        failures = [reason for reason in outcomes if reason]
        if failures:
            raise VerificationError("; ".join(failures))
        accepted = ", ".join(item.label for item in loaded)
        detail = f"simple signing: {accepted} satisfied"
        return Verdict(self.name, manifest.digest, detail, age=max(manifest_age, signatures_age))

    async def _resolve(
        self, check: ImageCheck, credentials: Sequence[RegistryCredential]
    ) -> tuple[ResolvedManifest, float]:
        """The manifest the image names, read from the registry at most once per window, and
        how long it has been remembered."""
        image = check.image
        url = manifest_url(image, manifest_reference(image))
        key = (url, credentials_identity(credentials))

        async def load() -> ResolvedManifest:
            return await self.registry.resolve(
                image,
                credentials=credentials,
                timeout=self._load_timeout(check),
                budget=check.reads,
            )

        host = urlsplit(url).netloc
        with waiting_for(host, url):
            manifest = await self.manifests.get(
                key, load, timeout=check.remaining(), late=_late(host, url)
            )
        return manifest, self.manifests.age(key)

    async def _signatures(
        self, check: ImageCheck, store: SignatureStore, digest: str
    ) -> tuple[tuple[bytes, ...], float]:
        """The signatures of `digest`, read from the store at most once per window, and how
        long they have been remembered."""

        async def load() -> tuple[bytes, ...]:
            found = await store.signatures(
                check.image, digest, timeout=self._load_timeout(check), budget=check.reads
            )
            return tuple(found)

        url = store.first_url(check.image, digest)
        host = urlsplit(url).netloc
        key = store.answer_key(check.image, digest)
        with waiting_for(host, url):
            signatures = await self.signature_lists.get(
                key, load, timeout=check.remaining(), late=_late(host, url)
            )
        return signatures, self.signature_lists.age(key)

    async def _load(
        self, check: ImageCheck, index: int, requirement: Requirement
    ) -> SignedByRequirement:
        namespace = requirement.key_secret_namespace or check.namespace
        source = f"key secret {namespace}/{requirement.key_secret}"
        label = f"requirement {index} (signedBy {source})"
        secret = self.context.state.secret(namespace, requirement.key_secret or "")
        if secret is None:
            raise SecretError(f"simple signing {label}: the secret does not exist")
        armored = secret.data.get("key")
        if not armored:
            raise SecretError(f"simple signing {label}: the secret has no `key` field")
        try:
            ring = await self.keyrings.ring(armored, source)
        except SecretError as exc:
            raise SecretError(f"simple signing {label}: {exc}") from exc
        return SignedByRequirement(label, requirement, ring)

    async def _requirement(
        self,
        item: SignedByRequirement,
        signatures: Sequence[bytes],
        manifest: ResolvedManifest,
        intended: DockerRef,
        store: SignatureStore,
    ) -> str | None:
        """None if one signature satisfies `item`, else the reason (every signature's)."""
        if not signatures:
            return (
                f"simple signing {item.label}: a signature was required, but "
                f"{store.describe()} has none for {manifest.digest}"
            )
        reasons: list[str] = []
        for number, signature in enumerate(signatures, 1):
            try:
                verified = await item.ring.verify(signature)
            except SignatureRejected as exc:
                reasons.append(f"signature {number}: {exc}")
                continue
            problem = signature_problem(
                item.requirement,
                manifest,
                intended,
                verified.payload,
                verified.fingerprint,
            )
            if problem is None:
                return None
            reasons.append(f"signature {number}: {problem}")
        return f"simple signing {item.label}: no signature was accepted: {'; '.join(reasons)}"
