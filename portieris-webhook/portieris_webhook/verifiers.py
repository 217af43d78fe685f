"""The interface every verifier plugin implements, and how plugins are found.

Plugins are registered under the entry-point group `portieris_webhook.verifiers`
(stevedore). A policy that needs a verifier that is not installed is denied.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from stevedore import ExtensionManager

from portieris_webhook.http import HttpClient
from portieris_webhook.images import ImageReference
from portieris_webhook.outbound import IMAGE_READ_BYTES, ReadBudget
from portieris_webhook.policy.model import Policy
from portieris_webhook.settings import Settings
from portieris_webhook.state import StateView

LOG = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "portieris_webhook.verifiers"


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
    """What a verifier may use: settings, cluster state, the shared HTTP client."""

    settings: Settings
    state: StateView
    http: HttpClient


class Verifier(abc.ABC):
    """Verifies one aspect of an image; raise VerificationError to deny."""

    name: ClassVar[str]

    def __init__(self, context: VerifierContext) -> None:
        self.context = context

    @abc.abstractmethod
    def applies(self, policy: Policy) -> bool:
        """Whether this verifier has anything to check under `policy`."""

    @abc.abstractmethod
    async def verify(self, check: ImageCheck) -> Verdict:
        """Check the image; return a Verdict or raise VerificationError with the deny reason."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources at shutdown."""


# Which verifier a policy section needs; used to deny clearly when it is missing.
def _needs_trust(policy: Policy) -> bool:
    return policy.trust.enabled


def _needs_simple(policy: Policy) -> bool:
    return bool(policy.simple.requirements)


REQUIRED_BY: dict[str, Callable[[Policy], bool]] = {"trust": _needs_trust, "simple": _needs_simple}


def load_verifiers(context: VerifierContext) -> dict[str, Verifier]:
    """Instantiate every installed verifier plugin."""
    found: dict[str, Verifier] = {}

    def failed(_manager: object, entry_point: object, exc: BaseException) -> None:
        LOG.error("verifier plugin %s failed to load: %s", entry_point, exc)

    manager: ExtensionManager[Verifier] = ExtensionManager(
        namespace=ENTRY_POINT_GROUP,
        invoke_on_load=True,
        invoke_args=(context,),
        on_load_failure_callback=failed,
    )
    for extension in manager:
        if isinstance(extension.obj, Verifier):
            found[extension.name] = extension.obj
        else:
            LOG.error("entry point %s is not a Verifier; ignored", extension.name)
    LOG.info("verifiers loaded: %s", ", ".join(sorted(found)) or "none")
    return found
