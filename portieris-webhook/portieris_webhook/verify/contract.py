"""The interface every verifier plugin implements, and which plugin checks which part of a policy.

`CONTRACT` is the one place that says which verifier a policy needs: the enforcer runs
exactly those, denies when one of them is not installed, and admits with no checks an
image whose policy needs none (an empty policy). How plugins are found is plugins.py;
this module imports no HTTP library and no plugin machinery.

A verifier also says what its verdicts depend on, so the enforcer can answer a repeated
check from its decision cache (decide/cache.py) without running it: `inputs` names every
piece of cluster state a check reads, by content, and `max_age` how long a passed check
stays true. The defaults make a verifier's verdicts uncacheable.
"""

from __future__ import annotations

import abc
import asyncio
import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from portieris_webhook.cluster.state import StateView
from portieris_webhook.config.settings import Settings
from portieris_webhook.images import ImageReference
from portieris_webhook.policy.model import Policy
from portieris_webhook.registry.credentials import (
    RegistryCredential,
    credentials_for_host,
    credentials_identity,
)
from portieris_webhook.remote.outbound import IMAGE_READ_BYTES, ReadBudget, Transport


def _trust_enabled(policy: Policy) -> bool:
    return policy.trust.enabled


def _simple_requirements(policy: Policy) -> bool:
    return bool(policy.simple.requirements)


def _sigstore_authorities(policy: Policy) -> bool:
    return bool(policy.sigstore.authorities)


CONTRACT: Mapping[str, Callable[[Policy], bool]] = {
    "trust": _trust_enabled,
    "simple": _simple_requirements,
    "sigstore": _sigstore_authorities,
}
"""Verifier plugin (by entry-point name) -> whether a policy gives it something to check:
`trust` checks Notary v1 trust (policy.trust.enabled), `simple` simple signing
(policy.simple.requirements), `sigstore` cosign signatures (policy.sigstore.authorities)."""


def required_verifiers(policy: Policy) -> tuple[str, ...]:
    """The verifiers `policy` needs, in CONTRACT order; none for an empty policy."""
    return tuple(name for name, needs in CONTRACT.items() if needs(policy))


@dataclass(frozen=True)
class ImageCheck:
    """One image to verify under one policy."""

    image: ImageReference
    policy: Policy
    namespace: str
    pull_secrets: tuple[str, ...]
    deadline: float
    """Absolute event-loop time by which the answer is due."""
    reads: ReadBudget = field(default_factory=lambda: ReadBudget(IMAGE_READ_BYTES, "one image"))
    """Bytes registries and signature stores may still send for this image."""

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


@dataclass(frozen=True)
class Verdict:
    """A passed check. `digest` is the manifest digest the check vouches for, if any."""

    verifier: str
    digest: str | None
    detail: str = ""
    age: float = 0.0
    """Seconds the remote answers this verdict relied on had already been remembered when it
    was given: a decision made of it is reused only for what is left of the verifier's
    max_age, so stacked caches never stretch how stale an answer can be."""
    valid_until: datetime.datetime | None = None
    """When what the check relied on expires (UTC), if it does: a cached verdict is never
    used past it (by the verifier's clock, see Verifier.holds), however young."""


SECRET = "Secret"
REGISTRY_CREDENTIALS = "RegistryCredentials"
ABSENT = "absent"


@dataclass(frozen=True, order=True)
class StateInput:
    """One piece of cluster state a check reads, named and fingerprinted by its content.

    Two checks of the same image under the same policy whose inputs are equal get the
    same verdict; a secret rotated, created or deleted changes its fingerprint.
    """

    kind: str
    """SECRET, or REGISTRY_CREDENTIALS (the pull credentials for one registry host)."""
    namespace: str
    name: str
    """The secret's name, or the registry host."""
    fingerprint: str
    """sha256 (hex) of the content, or ABSENT."""


def secret_input(state: StateView, namespace: str, name: str) -> StateInput:
    """The secret `namespace/name` as a check reads it (ABSENT if there is none)."""
    secret = state.secret(namespace, name)
    fingerprint = ABSENT if secret is None else secret.fingerprint
    return StateInput(SECRET, namespace, name, fingerprint)


def credentials_input(credentials: Iterable[RegistryCredential], host: str) -> StateInput:
    """The pull credentials a check uses for `host`, in the order they are tried.

    Only the credentials for that host count: rotating a pull secret's entry for another
    registry changes nothing here. Equal credentials in two namespaces are one input.
    """
    return StateInput(REGISTRY_CREDENTIALS, "", host, credentials_identity(credentials))


@dataclass
class VerifierContext:
    """What a verifier may use: settings, cluster state, the shared outbound HTTP transport."""

    settings: Settings
    state: StateView
    http: Transport


class Verifier(abc.ABC):
    """Verifies the part of a policy CONTRACT gives it under `name`; raise VerificationError
    to deny."""

    name: ClassVar[str]

    def __init__(self, context: VerifierContext) -> None:
        self.context = context

    @abc.abstractmethod
    async def verify(self, check: ImageCheck) -> Verdict:
        """Check the image; return a Verdict or raise VerificationError with the deny reason."""

    def inputs(self, check: ImageCheck) -> tuple[StateInput, ...] | None:
        """Every piece of cluster state `verify(check)` reads, or None if unknown.

        Besides the image as written, the policy and the settings, a verdict may depend
        only on what this names (a namespace matters only through the inputs named in it).
        None, the default, makes this verifier's verdicts uncacheable. The enforcer asks
        once per image, policy, namespace and pull secrets and reuses the answer until the
        cluster state changes (StateView.generation), so it must depend on nothing else
        (not on the check's deadline or read budget, not on the time).
        """
        return None

    def max_age(self) -> float:
        """Seconds a passed check may be reused before it must run again (0, the default:
        never)."""
        return 0.0

    def holds(self, verdict: Verdict) -> bool:
        """Whether `verdict`, given by this verifier, still holds by this verifier's clock:
        not past its `valid_until`."""
        until = verdict.valid_until
        return until is None or datetime.datetime.now(datetime.UTC) < until

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources at shutdown."""


def pull_credentials_input(state: StateView, check: ImageCheck) -> StateInput:
    """The pull credentials `check` uses for its image's registry, as an input."""
    host = check.image.domain
    found = credentials_for_host(state, check.namespace, check.pull_secrets, host)
    return credentials_input(found, host)
