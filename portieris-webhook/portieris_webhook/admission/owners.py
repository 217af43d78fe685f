"""Owner references, and the images an owner's pod template vouches for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.admission.workloads import pod_spec, workload_kind
from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject


def api_group(api_version: str) -> str:
    """The group of an apiVersion: `apps` of `apps/v1`, "" (the core group) of `v1`."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str

    @property
    def group(self) -> str:
        return api_group(self.api_version)


def template_images(obj: Mapping[str, Any], owner: OwnerRef) -> frozenset[str] | None:
    """Every image `obj`'s pod template names (containers and image volumes) if `obj` is the
    owner `owner` names (kind and uid); None if it is not, or its template cannot be read."""
    meta = obj.get("metadata") or {}
    if obj.get("kind") != owner.kind or not owner.uid or meta.get("uid") != owner.uid:
        return None
    version = owner.api_version.rpartition("/")[2]
    try:
        spec = pod_spec(obj, workload_kind(owner.group, version, owner.kind))
    except (InvalidAdmissionReview, UncheckableObject):
        return None
    return frozenset(c.image for c in spec.images)
