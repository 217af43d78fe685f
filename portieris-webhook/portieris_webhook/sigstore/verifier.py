"""The `sigstore` verifier plugin: policy.sigstore.authorities (cosign signatures and
attestations).

For one image: resolve the digest the registry serves (computed from the manifest body),
load each authority's trust (keys, roots, log keys, timestamp chains; from the policy or
Secrets), read the signatures and attestations stored for that digest (in the image's
repository, or the authority's `source`), and pass when at least one authority is
satisfied (authority.py says what satisfies one). The Verdict names the digest, so the
enforcer pins the image to it and compares it with what other verifiers verified.

Nothing is fetched from a public Sigstore service: everything comes from the registry and
from keys the operator configured, so an air-gapped cluster verifies the same way.

The warm path, as for simple signing: which digest a tag names and what a repository holds
for a digest are reused for `Settings.simple_refresh` seconds (remote/shared_answers.py),
keyed by what was asked and the identity of the credentials used; concurrent identical
reads share one call; failed reads are remembered for `simple_failure_ttl` seconds (never
the asking request's own refusals). Parsed trust material is remembered by its text
(trust_material.py). The checks themselves (authority.py) run every time: a fraction of a
millisecond for a key, a few for a keyless chain, and the enforcer's decision cache
answers a repeated admission without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlsplit

from portieris_webhook.errors import InvalidImageReference, RemoteError, VerificationError
from portieris_webhook.images import ImageReference, parse_image
from portieris_webhook.policy.sigstore_part import Authority, Material, SignatureSource
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
from portieris_webhook.registry.oci import OciClient, Reads
from portieris_webhook.remote.outbound import waiting_for
from portieris_webhook.remote.shared_answers import FreshnessLimits, SharedAnswers
from portieris_webhook.sigstore.authority import Outcome, Subject, evaluate
from portieris_webhook.sigstore.discovery import find_evidence
from portieris_webhook.sigstore.evidence import Evidence, Unreadable
from portieris_webhook.sigstore.trust_material import TrustLoader
from portieris_webhook.verify.contract import (
    ImageCheck,
    StateInput,
    Verdict,
    Verifier,
    VerifierContext,
    credentials_input,
    pull_credentials_input,
    secret_input,
)

ANSWERS_MAX_ENTRIES = 1000
"""Tags (and, separately, signature lists) whose answers are kept, least recently used
dropped first; failed reads are kept apart, as many at most."""
ANSWERS_MAX_BYTES = 16 * 1024 * 1024
"""Bytes of manifests (and, separately, of signatures) kept over all entries."""
AnswerKey = tuple[str, str]
"""(what was asked, the identity of the credentials it was asked with)."""


def _manifest_size(manifest: ResolvedManifest) -> int:
    return len(manifest.body or b"") + len(manifest.digest) + len(manifest.media_type)


def _evidence_size(found: tuple[Evidence | Unreadable, ...]) -> int:
    size = 1
    for item in found:
        if isinstance(item, Unreadable):
            size += len(item.where) + len(item.reason)
            continue
        size += len(item.statement) + len(item.signed) + len(item.signature)
        size += len(item.document) + len(item.timestamp or b"") + len(item.certificate or b"")
        size += sum(len(c) for c in item.chain)
        size += len(item.log_entry.body) if item.log_entry else 0
    return size


def _none_yet(found: tuple[Evidence | Unreadable, ...]) -> bool:
    return not found


def _late(host: str, what: str) -> Callable[[float], VerificationError]:
    def error(left: float) -> VerificationError:
        return RemoteError(
            f"{host}: no answer within the verification budget ({left:.3g}s left) ({what})"
        )

    return error


def _materials(authority: Authority) -> Iterator[Material]:
    if authority.key is not None:
        yield authority.key.key
    if authority.keyless is not None:
        yield authority.keyless.ca_cert
    if authority.ctlog.key is not None:
        yield authority.ctlog.key
    if authority.timestamp is not None:
        yield authority.timestamp.cert_chain


class SigstoreVerifier(Verifier):
    name = "sigstore"

    def __init__(
        self, context: VerifierContext, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(context)
        self.auth = AuthenticatedClient(context.http)
        self.registry = RegistryClient(self.auth)
        self.oci = OciClient(self.auth)
        self.trust = TrustLoader(context.state)
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
        self.signatures: SharedAnswers[AnswerKey, tuple[Evidence | Unreadable, ...]] = (
            SharedAnswers(limits, size=_evidence_size, brief=_none_yet, monotonic=monotonic)
        )
        """What a repository holds for a digest, by repository, digest and credentials; an
        empty answer only for --simple-failure-ttl, since signing often follows pushing."""

    async def close(self) -> None:
        await self.manifests.close()
        await self.signatures.close()

    def inputs(self, check: ImageCheck) -> tuple[StateInput, ...]:
        """Every Secret an authority names, the signature sources' pull credentials and the
        image's pull credentials."""
        state, found = self.context.state, set()
        for authority in check.policy.sigstore.authorities:
            for material in _materials(authority):
                if material.secret_name:
                    namespace = material.secret_namespace or check.namespace
                    found.add(secret_input(state, namespace, material.secret_name))
            if authority.source is not None:
                host, credentials = self._source_credentials(check, authority.source)
                found.add(credentials_input(credentials, host))
        found.add(pull_credentials_input(state, check))
        return tuple(sorted(found))

    def max_age(self) -> float:
        """A passed check holds for the registry freshness window: a tag may move, and
        signatures may be removed."""
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
        authorities = check.policy.sigstore.authorities
        credentials = credentials_for_host(
            self.context.state, check.namespace, check.pull_secrets, check.image.domain
        )
        manifest, manifest_age = await self._resolve(check, credentials)
        subject = Subject(check.image, manifest.digest)
        reads = Reads(credentials, self._load_timeout(check), check.reads)
        found: dict[SignatureSource | None, tuple[Evidence | Unreadable, ...]] = {}
        ages = [manifest_age]
        for source in {a.source for a in authorities}:
            found[source], age = await self._evidence(check, source, subject.digest, reads)
            ages.append(age)
        outcomes: list[Outcome] = []
        for authority in authorities:
            try:
                trust = self.trust.load(authority, check.namespace)
            except VerificationError as exc:
                outcomes.append(Outcome(authority.name, False, (str(exc),)))
                continue
            outcome = evaluate(trust, found[authority.source], subject)
            if outcome.passed:
                return Verdict(self.name, subject.digest, outcome.describe(), age=max(ages))
            outcomes.append(outcome)
        reasons = " | ".join(o.describe() for o in outcomes)
        raise VerificationError(f"no authority is satisfied for {subject.digest}: {reasons}")

    async def _resolve(
        self, check: ImageCheck, credentials: Sequence[RegistryCredential]
    ) -> tuple[ResolvedManifest, float]:
        """The manifest the image names, read at most once per window, and how long it has
        been remembered."""
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

    async def _evidence(
        self, check: ImageCheck, source: SignatureSource | None, digest: str, reads: Reads
    ) -> tuple[tuple[Evidence | Unreadable, ...], float]:
        """What the signature repository holds for `digest`, read at most once per window,
        and how long it has been remembered."""
        repository = check.image
        if source is not None:
            repository = _source_repository(source)
            _, credentials = self._source_credentials(check, source)
            reads = Reads(credentials, reads.timeout, reads.budget)
        where = f"signatures of {digest} in {repository.repository}"
        key = (f"{repository.repository}@{digest}", credentials_identity(reads.credentials))

        async def load() -> tuple[Evidence | Unreadable, ...]:
            return tuple(await find_evidence(self.oci, repository, digest, reads))

        with waiting_for(repository.domain, where):
            found = await self.signatures.get(
                key, load, timeout=check.remaining(), late=_late(repository.domain, where)
            )
        return found, self.signatures.age(key)

    def _source_credentials(
        self, check: ImageCheck, source: SignatureSource
    ) -> tuple[str, list[RegistryCredential]]:
        repository = _source_repository(source)
        secrets = source.pull_secrets or check.pull_secrets
        credentials = credentials_for_host(
            self.context.state, check.namespace, secrets, repository.domain
        )
        return repository.domain, credentials


def _source_repository(source: SignatureSource) -> ImageReference:
    try:
        return parse_image(source.repository)
    except InvalidImageReference as exc:
        raise VerificationError(f"sigstore: source {source.repository!r}: {exc}") from None
