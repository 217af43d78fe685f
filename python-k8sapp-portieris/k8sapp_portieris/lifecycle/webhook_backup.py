"""The webhook configuration a platform backup removes, kept so that it can be re-created.

A backup must not capture the MutatingWebhookConfiguration: a restored cluster would then refuse
pods (failurePolicy Fail) until the webhook's own pods run again. Pre-backup keeps a copy in a
Secret of the release namespace and deletes it; post-backup and post-restore create it again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from k8sapp_portieris.common import constants
from k8sapp_portieris.common.errors import OverridesError

_KEPT_METADATA = ("name", "labels", "annotations")
_NAME_LABEL = "app.kubernetes.io/name"


def backup_document(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as it can be created again (no uid, resourceVersion or status)."""
    metadata = configuration.get("metadata") or {}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {k: metadata[k] for k in _KEPT_METADATA if metadata.get(k)},
        "webhooks": list(configuration.get("webhooks") or []),
    }


def backup_secret(configuration: Mapping[str, Any]) -> dict[str, Any]:
    document = json.dumps(backup_document(configuration), sort_keys=True).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": constants.WEBHOOK_BACKUP_SECRET,
            "namespace": constants.HELM_NS_PORTIERIS,
        },
        "data": {constants.WEBHOOK_BACKUP_KEY: base64.b64encode(document).decode()},
    }


def restorable(secret_data: Mapping[str, str] | None) -> dict[str, Any]:
    """The configuration kept in the backup Secret, checked to be the chart's own.

    Only the chart's webhook configuration is ever created from it, whatever the Secret holds.
    """
    where = f"Secret {constants.HELM_NS_PORTIERIS}/{constants.WEBHOOK_BACKUP_SECRET}"
    try:
        raw = base64.b64decode((secret_data or {})[constants.WEBHOOK_BACKUP_KEY], validate=True)
        document = json.loads(raw)
    except (KeyError, ValueError) as exc:
        raise OverridesError(f"{where} holds no webhook configuration: {exc}") from exc
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if (
        not isinstance(metadata, dict)
        or document.get("kind") != "MutatingWebhookConfiguration"
        or metadata.get("name") != constants.WEBHOOK_CONFIGURATION
        or (metadata.get("labels") or {}).get(_NAME_LABEL) != constants.HELM_APP_PORTIERIS
        or not document.get("webhooks")
    ):
        raise OverridesError(
            f"{where} does not hold the portieris chart's webhook configuration "
            f"({constants.WEBHOOK_CONFIGURATION}): re-apply the portieris application"
        )
    return backup_document(document)
