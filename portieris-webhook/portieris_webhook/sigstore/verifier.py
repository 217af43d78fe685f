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
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

from portieris_webhook.errors import InvalidImageReference, RemoteError, VerificationError
from portieris_webhook.images import ImageReference, parse_image
from portieris_webhook.policy.sigstore_part import Authority, Material, SignatureSource
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.client import RegistryClient, manifest_reference, manifest_url
from portieris_webhook.registry.credentials import RegistryCredential, credentials_for_host
from portieris_webhook.registry.oci import OciClient, Reads
from portieris_webhook.remote.outbound import waiting_for
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

    def __init__(self, context: VerifierContext) -> None:
        super().__init__(context)
        self.auth = AuthenticatedClient(context.http)
        self.registry = RegistryClient(self.auth)
        self.oci = OciClient(self.auth)
        self.trust = TrustLoader(context.state)

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

    async def verify(self, check: ImageCheck) -> Verdict:
        authorities = check.policy.sigstore.authorities
        credentials = credentials_for_host(
            self.context.state, check.namespace, check.pull_secrets, check.image.domain
        )
        url = manifest_url(check.image, manifest_reference(check.image))
        with waiting_for(urlsplit(url).netloc, url):
            manifest = await self.registry.resolve(
                check.image,
                credentials=credentials,
                timeout=self._timeout(check),
                budget=check.reads,
            )
        subject = Subject(check.image, manifest.digest)
        reads = Reads(credentials, self._timeout(check), check.reads)
        found: dict[SignatureSource | None, list[Evidence | Unreadable]] = {}
        for source in {a.source for a in authorities}:
            found[source] = await self._evidence(check, source, subject.digest, reads)
        outcomes: list[Outcome] = []
        for authority in authorities:
            try:
                trust = self.trust.load(authority, check.namespace)
            except VerificationError as exc:
                outcomes.append(Outcome(authority.name, False, (str(exc),)))
                continue
            outcome = evaluate(trust, found[authority.source], subject)
            if outcome.passed:
                return Verdict(self.name, subject.digest, outcome.describe())
            outcomes.append(outcome)
        reasons = " | ".join(o.describe() for o in outcomes)
        raise VerificationError(f"no authority is satisfied for {subject.digest}: {reasons}")

    async def _evidence(
        self, check: ImageCheck, source: SignatureSource | None, digest: str, reads: Reads
    ) -> list[Evidence | Unreadable]:
        repository = check.image
        if source is not None:
            repository = _source_repository(source)
            _, credentials = self._source_credentials(check, source)
            reads = Reads(credentials, reads.timeout, reads.budget)
        where = f"signatures of {digest} in {repository.repository}"
        with waiting_for(repository.domain, where):
            try:
                return await asyncio.wait_for(
                    find_evidence(self.oci, repository, digest, reads), timeout=check.remaining()
                )
            except TimeoutError:
                raise RemoteError(
                    f"{repository.domain}: no answer within the verification budget ({where})"
                ) from None

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
