"""The interface every verifier plugin implements, and which plugin checks which part of a policy.

`CONTRACT` is the one place that says which verifier a policy needs: the enforcer runs
exactly those, denies when one of them is not installed, and admits with no checks an
image whose policy needs none (an empty policy). How plugins are found is plugins.py;
this module imports no HTTP library and no plugin machinery.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from portieris_webhook.images import ImageReference
from portieris_webhook.outbound import IMAGE_READ_BYTES, ReadBudget, Transport
from portieris_webhook.policy.model import Policy
from portieris_webhook.settings import Settings
from portieris_webhook.state import StateView


def _trust_enabled(policy: Policy) -> bool:
    return policy.trust.enabled


def _simple_requirements(policy: Policy) -> bool:
    return bool(policy.simple.requirements)


CONTRACT: Mapping[str, Callable[[Policy], bool]] = {
    "trust": _trust_enabled,
    "simple": _simple_requirements,
}
"""Verifier plugin (by entry-point name) -> whether a policy gives it something to check:
`trust` checks Notary v1 trust (policy.trust.enabled), `simple` simple signing
(policy.simple.requirements)."""


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

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources at shutdown."""
