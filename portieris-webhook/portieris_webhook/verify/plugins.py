"""Finding the installed verifier plugins (stevedore).

Plugins are registered under the entry-point group `portieris_webhook.verifiers`, each
under the name verifiers.CONTRACT gives the part of a policy it checks. A policy that
needs a verifier that is not installed is denied (decide/outcome.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from stevedore import NamedExtensionManager

from portieris_webhook.verify.contract import CONTRACT, Verifier, VerifierContext

LOG = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "portieris_webhook.verifiers"


def load_verifiers(context: VerifierContext) -> dict[str, Verifier]:
    """Instantiate the installed plugin of every verifier the contract names."""
    found: dict[str, Verifier] = {}

    def failed(_manager: object, entry_point: object, exc: BaseException) -> None:
        LOG.error("verifier plugin %s failed to load: %s", entry_point, exc)

    def missing(names: Iterable[str]) -> None:
        LOG.warning("no verifier plugin %s is installed", ", ".join(sorted(names)))

    manager: NamedExtensionManager[Verifier] = NamedExtensionManager(
        namespace=ENTRY_POINT_GROUP,
        names=list(CONTRACT),
        invoke_on_load=True,
        invoke_args=(context,),
        on_load_failure_callback=failed,
        on_missing_entrypoints_callback=missing,
    )
    unknown = {ep.name for ep in manager.list_entry_points()} - set(CONTRACT)
    for name in sorted(unknown):
        LOG.error("entry point %s names no verifier of the policy contract; ignored", name)
    for extension in manager:
        if isinstance(extension.obj, Verifier):
            found[extension.name] = extension.obj
        else:
            LOG.error("entry point %s is not a Verifier; ignored", extension.name)
    LOG.info("verifiers loaded: %s", ", ".join(sorted(found)) or "none")
    return found
