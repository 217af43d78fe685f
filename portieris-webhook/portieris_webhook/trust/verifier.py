"""The `trust` verifier plugin: Notary v1 / Docker Content Trust (policy.trust).

An image passes when verified trust data from the notary server signs its tag
(in `targets/releases`, else anywhere under `targets`, as Docker looks) or,
for a digest reference, signs a target with that digest; the Verdict carries
that digest so the image is pinned to it. Every `signerSecrets` entry must be
a key of `targets/<name>` whose signature on that role is valid, and that
role must sign the same digest.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from portieris_webhook.errors import ConfigurationError, RemoteError, SecretError
from portieris_webhook.images import DEFAULT_DOMAIN, ImageReference
from portieris_webhook.registry.auth import AuthenticatedClient
from portieris_webhook.registry.credentials import RegistryCredential, credentials_for_host
from portieris_webhook.trust.cache import CacheLimits, TrustCache
from portieris_webhook.trust.client import DOCKER_HUB_NOTARY, NotaryClient, normalise_server
from portieris_webhook.trust.errors import TrustError
from portieris_webhook.trust.keys import load_pem_public
from portieris_webhook.trust.lookup import (
    SignedTarget,
    allowed,
    delegated_keys,
    find_digest,
    find_tag,
    outside_paths,
)
from portieris_webhook.trust.trusted_set import RootPin, TrustData
from portieris_webhook.trust.updater import GunState, refresh
from portieris_webhook.verify.contract import (
    ImageCheck,
    StateInput,
    Verdict,
    Verifier,
    VerifierContext,
    pull_credentials_input,
    secret_input,
)

_KEY_ID = re.compile(r"^[0-9a-f]{64}$")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Signer:
    """A signer the policy requires, from a secret with `name` and `publicKey`."""

    secret: str
    name: str
    spki: bytes

    @property
    def role(self) -> str:
        return f"targets/{self.name}"


def parse_pins(entries: Iterable[str]) -> dict[str, RootPin]:
    """`SERVER=KEYID` or `SERVER=CERTFILE` options as root pins by normalised server URL."""
    pins: dict[str, RootPin] = {}
    for entry in entries:
        server, sep, value = entry.rpartition("=")
        if not sep or not server or not value:
            raise ConfigurationError(f"--pinned-trust-root {entry!r}: expected SERVER=ROOT")
        key = normalise_server(server)
        old = pins.get(key, RootPin())
        if _KEY_ID.match(value.lower()):
            new = RootPin(old.keyids | {value.lower()}, old.certificates)
        else:
            new = RootPin(old.keyids, old.certificates + _certificates(value))
        described = ", ".join(
            sorted(new.keyids) + [c.subject.rfc4514_string() for c in new.certificates]
        )
        pins[key] = RootPin(new.keyids, new.certificates, described)
    return pins


def _certificates(path: str) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"--pinned-trust-root: {path} is neither a 64-hex key ID nor a readable PEM "
            f"certificate file: {exc}"
        ) from exc


class TrustVerifier(Verifier):
    name = "trust"

    def __init__(
        self,
        context: VerifierContext,
        *,
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        super().__init__(context)
        self.clock = clock
        self.client = NotaryClient(AuthenticatedClient(context.http))
        settings = context.settings
        limits = CacheLimits(
            settings.trust_cache_max_entries,
            settings.trust_cache_max_bytes,
            settings.trust_cache_max_age,
            settings.trust_failure_ttl,
        )
        self.cache = TrustCache(settings.trust_refresh_interval, self._now, limits)
        self.pins = parse_pins(context.settings.pinned_trust_roots)

    def _now(self) -> datetime.datetime:
        # Looked up at call time so tests can move the clock after construction.
        return self.clock()

    async def verify(self, check: ImageCheck) -> Verdict:
        server = self.trust_server(check)
        gun = check.image.repository
        signers = self.signers(check)
        data = await self.trust_data(server, gun, check)
        target = self.signed_target(data, check.image, server)
        for signer in signers:
            self.check_signer(data, target, signer, check.image)
        digest = target.digest
        assert digest is not None
        by = f" and {', '.join(s.name for s in signers)}" if signers else ""
        detail = f"signed in {target.role}{by} ({server})"
        age = self.cache.age(server, gun)
        return Verdict(self.name, digest, detail, valid_until=data.expires, age=age)

    def inputs(self, check: ImageCheck) -> tuple[StateInput, ...]:
        """The signer secrets (in the image's namespace) and the pull credentials for the
        registry host, which the notary server's token service may ask for."""
        state = self.context.state
        signers = (
            secret_input(state, check.namespace, s) for s in check.policy.trust.signer_secrets
        )
        return (*signers, pull_credentials_input(state, check))

    def max_age(self) -> float:
        """A verdict is as fresh as the trust data it used: one refresh interval."""
        return self.context.settings.trust_refresh_interval

    def holds(self, verdict: Verdict) -> bool:
        """Until the trust data it used expires, by the clock that checks the data."""
        return verdict.valid_until is None or self._now() < verdict.valid_until

    # --- inputs --------------------------------------------------------------
    def trust_server(self, check: ImageCheck) -> str:
        configured = check.policy.trust.trust_server or self.context.settings.default_trust_server
        if configured:
            return normalise_server(configured)
        if check.image.domain == DEFAULT_DOMAIN:
            return DOCKER_HUB_NOTARY
        raise TrustError(
            f"no trust server is known for {check.image.domain}: set trust.trustServer in the "
            "policy or --default-trust-server"
        )

    def signers(self, check: ImageCheck) -> list[Signer]:
        found = []
        for secret_name in check.policy.trust.signer_secrets:
            where = f"signer secret {check.namespace}/{secret_name}"
            secret = self.context.state.secret(check.namespace, secret_name)
            if secret is None:
                raise SecretError(f"{where} does not exist")
            name, pem = secret.data.get("name"), secret.data.get("publicKey")
            if not name or not pem:
                raise SecretError(f"{where} must hold data keys 'name' and 'publicKey'")
            try:
                spki = load_pem_public(pem)
            except ValueError as exc:
                raise SecretError(
                    f"{where}: publicKey is not a PEM certificate or public key"
                ) from exc
            found.append(Signer(secret_name, name.decode().strip(), spki))
        return found

    def credentials(self, check: ImageCheck) -> list[RegistryCredential]:
        return credentials_for_host(
            self.context.state, check.namespace, check.pull_secrets, check.image.domain
        )

    # --- trust data ----------------------------------------------------------
    async def trust_data(self, server: str, gun: str, check: ImageCheck) -> TrustData:
        cached = self.cache.fresh(server, gun)
        if cached is not None:
            return cached
        credentials = self.credentials(check)
        pin = self.pins.get(server)

        async def fetch(role: str, max_bytes: int) -> bytes | None:
            timeout = min(self.context.settings.remote_timeout, check.remaining())
            if timeout <= 0:
                raise RemoteError(f"verification budget used up before {role} of {gun} arrived")
            return await self.client.fetch(
                server, gun, role, credentials=credentials, timeout=timeout, max_bytes=max_bytes
            )

        async def load(state: GunState, now: datetime.datetime) -> TrustData:
            try:
                return await refresh(gun, state, fetch, now, pin)
            except TrustError as exc:
                # Whatever the role found wrong, the operator must know which server said it.
                if server in str(exc):
                    raise
                raise type(exc)(f"{exc} (trust data from {server})") from None

        return await self.cache.get(server, gun, load, check.remaining())

    # --- decisions -----------------------------------------------------------
    def signed_target(self, data: TrustData, image: ImageReference, server: str) -> SignedTarget:
        if image.digest:
            algorithm, _, hexpart = image.digest.partition(":")
            if algorithm != "sha256":
                raise TrustError(f"{image.digest}: notary trust data records sha256 digests only")
            wanted = bytes.fromhex(hexpart)
            found = find_digest(data, wanted)
            if not found:
                raise TrustError(
                    f"no signed tag of {data.gun} has digest {image.digest} ({server})"
                )
            return found[0]
        tag = image.effective_tag
        assert tag is not None
        target = find_tag(data, tag)
        if target is None:
            why = outside_paths(data, tag) + [
                f"{role} was left out: {reason}" for role, reason in data.skipped.items()
            ]
            detail = f": {'; '.join(why)}" if why else ""
            raise TrustError(f"tag {tag!r} of {data.gun} is not signed ({server}){detail}")
        if target.digest is None:
            raise TrustError(
                f"signed tag {tag!r} of {data.gun} in {target.role} has no sha256 hash"
            )
        return target

    def check_signer(
        self, data: TrustData, target: SignedTarget, signer: Signer, image: ImageReference
    ) -> None:
        who = f"signer {signer.name!r} (secret {signer.secret})"
        if signer.spki not in delegated_keys(data, signer.role):
            if not delegated_keys(data, signer.role):
                raise TrustError(f"{who}: {data.gun} has no delegation {signer.role}")
            raise TrustError(f"{who}: the key in the secret is not a key of {signer.role}")
        if signer.role in data.skipped:
            raise TrustError(f"{who}: {signer.role} was left out: {data.skipped[signer.role]}")
        if signer.role not in data.roles:
            raise TrustError(f"{who}: {signer.role} of {data.gun} has no signed targets")
        if signer.spki not in data.signers.get(signer.role, frozenset()):
            raise TrustError(f"{who}: {signer.role} is not signed with the signer's key")
        if not _role_signed(data, signer.role, target, image):
            raise TrustError(
                f"{who} did not sign {target.name!r} as {target.digest} in {signer.role}"
            )


def _role_signed(data: TrustData, role: str, target: SignedTarget, image: ImageReference) -> bool:
    assert target.sha256 is not None
    if image.digest:
        return bool(find_digest(data, target.sha256, roles=(role,)))
    meta = data.roles[role].targets.get(target.name)
    return (
        meta is not None
        and allowed(data.chains[role], target.name)
        and meta.hashes.get("sha256") == target.sha256
    )


__all__ = ["Signer", "TrustVerifier", "parse_pins"]
