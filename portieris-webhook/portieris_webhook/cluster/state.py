"""The cluster as the webhook sees it: policies, secrets, service accounts, owners.

`MemoryState` is one in-memory store filled either from manifest files
(offline mode) or by watches on the Kubernetes API (cluster mode). The request
path only reads it, so a decision never waits on the API server except for an
owner lookup the cache cannot answer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from portieris_webhook.admission.owners import OwnerRef, api_group, template_images
from portieris_webhook.errors import InvalidPolicy, ManifestError
from portieris_webhook.policy.model import (
    CLUSTER_IMAGE_POLICY,
    IMAGE_POLICY,
    POLICY_KINDS,
    InvalidPolicyRecord,
    PolicyObject,
    parse_policy_object,
)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
WATCH_EVENTS = (ADDED, MODIFIED, DELETED)
"""What can happen to an object, named as Kubernetes watch events name it."""


@dataclass(frozen=True)
class Secret:
    namespace: str
    name: str
    type: str
    data: Mapping[str, bytes]

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the type and data, over length-prefixed parts so no two different
        contents collide: computed once per stored version (a change stores a new object)."""
        hasher = hashlib.sha256()
        for part in self._parts():
            hasher.update(len(part).to_bytes(8, "big"))
            hasher.update(part)
        return hasher.hexdigest()

    def _parts(self) -> Iterator[bytes]:
        yield self.type.encode()
        for key in sorted(self.data):
            yield key.encode()
            yield self.data[key]


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str
    image_pull_secrets: tuple[str, ...]


class StateView(Protocol):
    """What the request path may ask of the cluster."""

    def is_ready(self) -> bool: ...

    def generation(self) -> int:
        """A number that changes whenever a policy, secret or service account changes:
        whatever is derived from those alone may be reused while it stays the same."""
        ...

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


READ_BY_REQUESTS = frozenset({*POLICY_KINDS, "Secret", "ServiceAccount"})
"""The kinds whose every change moves MemoryState.generation (owners are looked up apart)."""
PolicyKey = tuple[str, str | None, str]
ObjectKey = tuple[str, str, str, str]
"""An object by API group, kind, namespace, name."""
K = TypeVar("K")
V = TypeVar("V")


class MemoryState:
    """In-memory cluster state, written only through `apply` (and `clear` before a relist)
    by the manifest loader and the kube informers alike."""

    def __init__(self) -> None:
        self._policies: dict[PolicyKey, PolicyObject] = {}
        self._invalid: dict[PolicyKey, InvalidPolicyRecord] = {}
        self._secrets: dict[tuple[str, str], Secret] = {}
        self._service_accounts: dict[tuple[str, str], ServiceAccount] = {}
        self._objects: dict[ObjectKey, Mapping[str, Any]] = {}
        self._ready = False
        self._generation = 0

    # --- readers -----------------------------------------------------------
    def is_ready(self) -> bool:
        return self._ready

    def generation(self) -> int:
        return self._generation

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

    def apply(self, event: str, obj: Mapping[str, Any]) -> None:
        """Record what `event` did to `obj`: store it (ADDED, MODIFIED) or forget it (DELETED).

        Policies, Secrets and ServiceAccounts are kept as what the request path reads; any
        other object as it is, a possible owner. Raises InvalidPolicy for a policy that cannot
        be honoured (kept as invalid: the images it could govern are denied) and ManifestError
        for a Secret whose data is not base64 (not stored, and an earlier version of it is
        forgotten: a key replaced with garbage must not stay trusted).
        """
        if event not in WATCH_EVENTS:
            raise ValueError(f"watch event {event!r} is not one of {', '.join(WATCH_EVENTS)}")
        kind = str(obj.get("kind"))
        deleted = event == DELETED
        if kind in READ_BY_REQUESTS:
            self._generation += 1  # first: a refused object still forgets what it replaces
        if kind in POLICY_KINDS:
            self._apply_policy(obj, deleted)
        elif kind == "Secret":
            key = _namespaced_name(obj)
            self._secrets.pop(key, None)
            _store(self._secrets, key, None if deleted else _secret(obj))
        elif kind == "ServiceAccount":
            account = None if deleted else _service_account(obj)
            _store(self._service_accounts, _namespaced_name(obj), account)
        else:
            _store(self._objects, _object_key(obj), None if deleted else obj)

    def _apply_policy(self, obj: Mapping[str, Any], deleted: bool) -> None:
        key = _policy_key(obj)
        self._policies.pop(key, None)
        self._invalid.pop(key, None)
        if deleted:
            return
        try:
            self._policies[key] = parse_policy_object(obj)
        except InvalidPolicy as exc:
            self._invalid[key] = InvalidPolicyRecord(*key, str(exc))
            raise

    def refuse(self, obj: Mapping[str, Any], why: str) -> None:
        """Record that `obj` cannot be used (`why`), under the name its metadata gives: a
        policy is kept as invalid (the images it could govern are denied), any other object
        is forgotten, so an earlier version of it never stays trusted."""
        kind = str(obj.get("kind"))
        if kind in READ_BY_REQUESTS:
            self._generation += 1
        if kind in POLICY_KINDS:
            key = _policy_key(obj)
            self._policies.pop(key, None)
            self._invalid[key] = InvalidPolicyRecord(*key, f"{kind} {key[2]}: {why}")
        elif kind == "Secret":
            self._secrets.pop(_namespaced_name(obj), None)
        elif kind == "ServiceAccount":
            self._service_accounts.pop(_namespaced_name(obj), None)
        else:
            self._objects.pop(_object_key(obj), None)

    def clear(self, kind: str) -> None:
        """Forget every object of `kind` (before a full relist from the API server)."""
        if kind in READ_BY_REQUESTS:
            self._generation += 1
        if kind in POLICY_KINDS:
            for store in (self._policies, self._invalid):
                for key in [k for k in store if k[0] == kind]:
                    del store[key]
        elif kind == "Secret":
            self._secrets.clear()
        elif kind == "ServiceAccount":
            self._service_accounts.clear()
        else:
            for owner in [k for k in self._objects if k[1] == kind]:
                del self._objects[owner]


def _store(store: dict[K, V], key: K, value: V | None) -> None:
    """Keep `value` under `key`, or forget `key` when there is no value."""
    if value is None:
        store.pop(key, None)
    else:
        store[key] = value


def _namespaced_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name"))


def _policy_key(obj: Mapping[str, Any]) -> PolicyKey:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind"))
    namespace = meta.get("namespace") if kind == IMAGE_POLICY else None
    return (kind, namespace, str(meta.get("name")))


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    group = api_group(str(obj.get("apiVersion") or ""))
    return (group, str(obj.get("kind")), *_namespaced_name(obj))


def _secret(obj: Mapping[str, Any]) -> Secret:
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
    namespace, name = _namespaced_name(obj)
    return Secret(namespace, name, str(obj.get("type") or "Opaque"), data)


def _service_account(obj: Mapping[str, Any]) -> ServiceAccount:
    names = tuple(
        str(ref.get("name")) for ref in (obj.get("imagePullSecrets") or []) if ref.get("name")
    )
    return ServiceAccount(*_namespaced_name(obj), names)
