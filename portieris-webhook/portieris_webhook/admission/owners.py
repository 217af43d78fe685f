"""Owner references (read here for both readers), and the images an owner's pod template
vouches for."""

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

    @property
    def version(self) -> str:
        """The version of `api_version`: `v1` of `apps/v1` and of `v1`."""
        return self.api_version.rpartition("/")[2]


def owner_refs(refs: Any) -> tuple[OwnerRef, ...]:
    """The owner references of an object (its `metadata.ownerReferences`: none when absent or
    empty), as both readers read them; InvalidAdmissionReview, naming the field, unless it
    is a list of objects each naming apiVersion, kind, name and uid."""
    if not refs:
        return ()
    if not isinstance(refs, list):
        raise InvalidAdmissionReview("metadata.ownerReferences must be a list")
    found = []
    for index, ref in enumerate(refs):
        if type(ref) is dict:  # as decoded: read at once, no message built (the typed fast path)
            api_version, kind, name, uid = (
                ref.get("apiVersion"),
                ref.get("kind"),
                ref.get("name"),
                ref.get("uid"),
            )
            if (
                type(api_version) is str
                and type(kind) is str
                and type(name) is str
                and type(uid) is str
                and api_version
                and kind
                and name
                and uid
            ):
                found.append(OwnerRef(api_version, kind, name, uid))
                continue
        found.append(_checked_owner_ref(ref, f"metadata.ownerReferences[{index}]"))
    return tuple(found)


def _checked_owner_ref(ref: Any, what: str) -> OwnerRef:
    """An owner reference read field by field, raising InvalidAdmissionReview naming the
    first field that is wrong (the fast reading in owner_refs found one)."""
    if not isinstance(ref, Mapping):
        raise InvalidAdmissionReview(f"{what} must be an object")
    api_version, kind, name, uid = (
        _required_string(ref, key, what) for key in ("apiVersion", "kind", "name", "uid")
    )
    return OwnerRef(api_version, kind, name, uid)


def _required_string(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise InvalidAdmissionReview(f"{what}.{key} is required")
    if not isinstance(value, str):
        raise InvalidAdmissionReview(f"{what}.{key} must be a string")
    return value


def template_images(obj: Mapping[str, Any], owner: OwnerRef) -> frozenset[str] | None:
    """Every image `obj`'s pod template names (containers and image volumes) if `obj` is the
    owner `owner` names (kind and uid); None if it is not, or its template cannot be read."""
    meta = obj.get("metadata") or {}
    if obj.get("kind") != owner.kind or not owner.uid or meta.get("uid") != owner.uid:
        return None
    try:
        spec = pod_spec(obj, workload_kind(owner.group, owner.version, owner.kind))
    except (InvalidAdmissionReview, UncheckableObject):
        return None
    return frozenset(c.image for c in spec.images)
