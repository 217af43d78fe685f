"""The cluster as the webhook sees it: policies, secrets, service accounts, owners.

`MemoryState` is one in-memory store filled either from manifest files
(offline mode) or by watches on the Kubernetes API (cluster mode). The request
path only reads it, so a decision never waits on the API server except for an
owner lookup the cache cannot answer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from portieris_webhook.admission.workloads import pod_spec, workload_kind
from portieris_webhook.errors import (
    InvalidAdmissionReview,
    InvalidPolicy,
    ManifestError,
    UncheckableObject,
)
from portieris_webhook.policy.model import (
    CLUSTER_IMAGE_POLICY,
    IMAGE_POLICY,
    InvalidPolicyRecord,
    PolicyObject,
    parse_policy_object,
)


@dataclass(frozen=True)
class Secret:
    namespace: str
    name: str
    type: str
    data: Mapping[str, bytes]


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str
    image_pull_secrets: tuple[str, ...]


@dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""


class StateView(Protocol):
    """What the request path may ask of the cluster."""

    def is_ready(self) -> bool: ...

    def image_policies(self) -> list[PolicyObject]:
        """Every valid ImagePolicy, of every namespace."""
        ...

    def cluster_image_policies(self) -> list[PolicyObject]: ...

    def invalid_policies(self) -> list[InvalidPolicyRecord]:
        """Every ImagePolicy (of every namespace) and ClusterImagePolicy that is invalid."""
        ...

    def secret(self, namespace: str, name: str) -> Secret | None: ...

    def service_account(self, namespace: str, name: str) -> ServiceAccount | None: ...

    async def owner_images(self, namespace: str, owner: OwnerRef) -> frozenset[str] | None:
        """The images of the owner's pod template, or None if no such owner (same uid) exists."""
        ...


PolicyKey = tuple[str, str | None, str]


class MemoryState:
    """In-memory cluster state. Writers: manifest loader, kube watchers."""

    def __init__(self) -> None:
        self._policies: dict[PolicyKey, PolicyObject] = {}
        self._invalid: dict[PolicyKey, InvalidPolicyRecord] = {}
        self._secrets: dict[tuple[str, str], Secret] = {}
        self._service_accounts: dict[tuple[str, str], ServiceAccount] = {}
        self._objects: dict[tuple[str, str, str, str], Mapping[str, Any]] = {}
        self._ready = False

    # --- readers -----------------------------------------------------------
    def is_ready(self) -> bool:
        return self._ready

    def image_policies(self) -> list[PolicyObject]:
        return [p for (kind, _, _), p in self._policies.items() if kind == IMAGE_POLICY]

    def cluster_image_policies(self) -> list[PolicyObject]:
        return [p for (kind, _, _), p in self._policies.items() if kind == CLUSTER_IMAGE_POLICY]

    def invalid_policies(self) -> list[InvalidPolicyRecord]:
        return list(self._invalid.values())

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self._secrets.get((namespace, name))

    def service_account(self, namespace: str, name: str) -> ServiceAccount | None:
        return self._service_accounts.get((namespace, name))

    async def owner_images(self, namespace: str, owner: OwnerRef) -> frozenset[str] | None:
        found = self._objects.get((owner.group, owner.kind, namespace, owner.name))
        return template_images(found, owner) if found is not None else None

    # --- writers -----------------------------------------------------------
    def mark_ready(self, ready: bool = True) -> None:
        self._ready = ready

    def put_policy(self, obj: Mapping[str, Any]) -> PolicyObject:
        """Store a policy object; an invalid one is kept as a record and re-raised."""
        key = _policy_key(obj)
        self._policies.pop(key, None)
        self._invalid.pop(key, None)
        try:
            policy = parse_policy_object(obj)
        except InvalidPolicy as exc:
            self._invalid[key] = InvalidPolicyRecord(key[0], key[1], key[2], str(exc))
            raise
        self._policies[key] = policy
        return policy

    def delete_policy(self, obj: Mapping[str, Any]) -> None:
        key = _policy_key(obj)
        self._policies.pop(key, None)
        self._invalid.pop(key, None)

    def put_secret(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        data: dict[str, bytes] = {}
        for key, value in (obj.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ManifestError(
                    f"Secret {meta.get('namespace')}/{meta.get('name')}: data.{key} is not base64"
                ) from exc
        for key, value in (obj.get("stringData") or {}).items():
            data[key] = str(value).encode()
        secret = Secret(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name")),
            type=str(obj.get("type") or "Opaque"),
            data=data,
        )
        self._secrets[(secret.namespace, secret.name)] = secret

    def delete_secret(self, namespace: str, name: str) -> None:
        self._secrets.pop((namespace, name), None)

    def put_service_account(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        names = tuple(
            str(ref.get("name")) for ref in (obj.get("imagePullSecrets") or []) if ref.get("name")
        )
        account = ServiceAccount(
            str(meta.get("namespace") or "default"), str(meta.get("name")), names
        )
        self._service_accounts[(account.namespace, account.name)] = account

    def delete_service_account(self, namespace: str, name: str) -> None:
        self._service_accounts.pop((namespace, name), None)

    def clear(self, kind: str) -> None:
        """Forget every object of `kind` (before a full relist from the API server)."""
        if kind in (IMAGE_POLICY, CLUSTER_IMAGE_POLICY):
            for store in (self._policies, self._invalid):
                for key in [k for k in store if k[0] == kind]:
                    del store[key]
        elif kind == "Secret":
            self._secrets.clear()
        elif kind == "ServiceAccount":
            self._service_accounts.clear()

    def put_object(self, obj: Mapping[str, Any]) -> None:
        """Record any other object (a possible owner) by group, kind, namespace, name -> uid."""
        meta = obj.get("metadata") or {}
        api_version = str(obj.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        key = (
            group,
            str(obj.get("kind")),
            str(meta.get("namespace") or "default"),
            str(meta.get("name")),
        )
        self._objects[key] = obj


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


def _policy_key(obj: Mapping[str, Any]) -> PolicyKey:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind"))
    namespace = meta.get("namespace") if kind == IMAGE_POLICY else None
    return (kind, namespace, str(meta.get("name")))
