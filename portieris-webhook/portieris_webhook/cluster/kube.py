"""Cluster mode: caches kept current by list+watch on the Kubernetes API, and owner lookups.

Everything here is asynchronous (aiohttp), so no API call ever blocks the
event loop. Each watched resource has an informer: list (paged), then watch
from the list's resourceVersion; on `410 Gone` list again; on any other
failure back off and retry. The webhook is ready once every informer has
listed once; afterwards it keeps answering from the last known state while a
lost watch reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from portieris_webhook.admission.owners import OwnerRef, template_images
from portieris_webhook.cluster.state import ADDED, DELETED, MemoryState
from portieris_webhook.errors import (
    ConfigurationError,
    PortierisError,
    RemoteError,
)
from portieris_webhook.kits import nesting
from portieris_webhook.kits.background import BackgroundTasks
from portieris_webhook.kits.bounded import BoundedDict
from portieris_webhook.policy.model import CLUSTER_IMAGE_POLICY, GROUP, IMAGE_POLICY, VERSION

LOG = logging.getLogger(__name__)

IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
WATCH_TIMEOUT_SECONDS = 290
PAGE_SIZE = 500
OWNER_CACHE_SECONDS = 30.0
OWNER_CACHE_MAX_ENTRIES = 1024
"""Owners whose template images are kept (least recently used forgotten first)."""
OWNER_CACHE_MAX_BYTES = 8 * 1024 * 1024
"""Text of the template images kept over all owners: templates may name many long images."""
OWNER_ENTRY_BYTES = 1024
"""What an owner entry is counted for besides its images (its key: names of at most 253)."""


@dataclass(frozen=True)
class Resource:
    kind: str
    path: str


WATCHED = (
    Resource(IMAGE_POLICY, f"/apis/{GROUP}/{VERSION}/imagepolicies"),
    Resource(CLUSTER_IMAGE_POLICY, f"/apis/{GROUP}/{VERSION}/clusterimagepolicies"),
    Resource("Secret", "/api/v1/secrets"),
    Resource("ServiceAccount", "/api/v1/serviceaccounts"),
)


class KubeApi:
    """A minimal async client: GET JSON, and stream watch events."""

    def __init__(
        self, server: str, ssl_context: ssl.SSLContext, token: str | None, token_file: str | None
    ) -> None:
        self.server = server.rstrip("/")
        self.ssl_context = ssl_context
        self._token, self._token_file = token, token_file
        self._token_read = 0.0
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context), trust_env=False
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        # Bound service-account tokens rotate: re-read the file at most once a minute.
        if self._token_file and time.monotonic() - self._token_read > 60:
            with contextlib.suppress(OSError), open(self._token_file, encoding="utf-8") as handle:
                self._token = handle.read().strip()
            self._token_read = time.monotonic()
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def get(
        self, path: str, query: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> Any:
        """GET a JSON document; None for 404; RemoteError for anything else that is not 200,
        or that nests deeper than nesting.MAX_DEPTH."""
        document, pruned = await self.get_pruned(path, query, timeout)
        if pruned:
            raise RemoteError(
                f"Kubernetes API GET {path}: the answer is nested deeper than "
                f"{nesting.MAX_DEPTH} levels"
            )
        return document

    async def get_pruned(
        self, path: str, query: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[Any, bool]:
        """As `get`, but what nests deeper than nesting.MAX_DEPTH is replaced by
        nesting.PRUNED (a list holding one such object is still read); whether it was."""
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        try:
            async with asyncio.timeout(timeout):
                async with self.session.get(url, headers=self._headers()) as resp:
                    if resp.status == 404:
                        return None, False
                    body = await resp.read()
                    if resp.status != 200:
                        raise RemoteError(
                            f"Kubernetes API GET {path}: HTTP {resp.status}: {body[:300]!r}"
                        )
                    return nesting.decode_pruned(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RemoteError(f"Kubernetes API GET {path} failed: {exc!r}") from exc

    async def put(
        self, path: str, body: Mapping[str, Any], timeout: float = 10.0
    ) -> tuple[int, Any]:
        """PUT (update) a JSON object; the status and the JSON answer (None if not JSON)."""
        url = self.server + path
        headers = {**self._headers(), "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(timeout):
                async with self.session.put(url, headers=headers, data=json.dumps(body)) as resp:
                    answer = await resp.read()
                    try:
                        return resp.status, nesting.loads(answer, "the answer", RemoteError)
                    except RemoteError:
                        return resp.status, None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteError(f"Kubernetes API PUT {path} failed: {exc!r}") from exc

    async def watch(
        self, path: str, resource_version: str, seconds: int = WATCH_TIMEOUT_SECONDS
    ) -> AsyncIterator[tuple[Any, bool]]:
        """Stream watch events, each with whether it held something nested deeper than
        nesting.MAX_DEPTH (replaced by nesting.PRUNED); the server ends the stream after
        `seconds`."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(seconds),
        }
        url = f"{self.server}{path}?{urlencode(query)}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=seconds + 30)
        async with self.session.get(url, headers=self._headers(), timeout=timeout) as resp:
            if resp.status != 200:
                raise RemoteError(f"Kubernetes API watch {path}: HTTP {resp.status}")
            async for line in resp.content:
                if line.strip():
                    yield nesting.decode_pruned(line)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def connect(kubeconfig: str | None) -> KubeApi:
    """A KubeApi from a kubeconfig file, or the in-cluster service account."""
    from kubernetes import client, config  # imported here: only cluster mode needs it

    configuration = client.Configuration()
    token_file = None
    try:
        if kubeconfig:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            token_file = IN_CLUSTER_TOKEN
    except (config.ConfigException, OSError, ValueError) as exc:
        where = kubeconfig or "the in-cluster service account"
        raise ConfigurationError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:
        LOG.warning("kubeconfig disables TLS verification of the API server")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    auth = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    token = auth.removeprefix("Bearer ").strip() if isinstance(auth, str) else None
    if token_file and not os.path.exists(token_file):
        token_file = None
    return KubeApi(configuration.host, context, token, token_file)


def parse_object_name(value: str, option: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` as (namespace, name), or ConfigurationError naming `option`."""
    namespace, _, name = value.partition("/")
    if not (_OBJECT_NAME.match(namespace) and _OBJECT_NAME.match(name)):
        raise ConfigurationError(f"{option} {value!r}: expected NAMESPACE/NAME")
    return namespace, name


_API_VERSION = re.compile(r"^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$")
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def owner_path(namespace: str, owner: OwnerRef) -> str | None:
    """API path of an owner object, or None when the reference cannot name a real object.

    ownerReferences are written by whoever creates the pod: a name such as
    `x/../../other-namespace/...` must never steer the lookup to another object.
    """
    if not (_API_VERSION.match(owner.api_version) and _OBJECT_NAME.match(owner.name)):
        return None
    if not (_OBJECT_NAME.match(namespace) and len(owner.name) <= 253):
        return None
    plural = owner.kind.lower() + "s"
    base = f"/apis/{owner.api_version}" if owner.group else f"/api/{owner.api_version}"
    return f"{base}/namespaces/{namespace}/{plural}/{owner.name}"


def _owner_entry_size(images: frozenset[str]) -> int:
    return OWNER_ENTRY_BYTES + sum(len(image) for image in images)


class ClusterState(MemoryState):
    """MemoryState fed by informers; owner existence asked of the API (cached)."""

    def __init__(
        self,
        api: KubeApi,
        owner_cache_max_entries: int = OWNER_CACHE_MAX_ENTRIES,
        owner_cache_max_bytes: int = OWNER_CACHE_MAX_BYTES,
    ) -> None:
        super().__init__()
        self.api = api
        self.informers: list[Informer] = []
        self.background = BackgroundTasks()
        self.unusable: dict[str, int] = {}
        """Objects an informer could not use (recorded as unusable), by kind."""
        self.owners: BoundedDict[tuple[str, str, str, str, str], frozenset[str]] = BoundedDict(
            owner_cache_max_entries,
            max_age=OWNER_CACHE_SECONDS,
            max_bytes=owner_cache_max_bytes,
            size=_owner_entry_size,
        )
        """Owners found, with their template images, for a short while (templates can
        change); bounded, so that owners never used again are forgotten."""

    def not_ready(self) -> str | None:
        """Why the cluster's state cannot be trusted to be current, or None."""
        stopped = self.background.problem()
        return None if stopped is None else f"is stale: {stopped}"

    async def owner_images(self, namespace: str, owner: OwnerRef) -> frozenset[str] | None:
        key = (namespace, owner.group, owner.kind, owner.name, owner.uid)
        cached = self.owners.get(key)
        if cached is not None:
            return cached
        path = owner_path(namespace, owner)
        if path is None:
            LOG.warning("owner reference %r is malformed: not treated as an owner", owner)
            return None
        found = await self.api.get(path)
        images = template_images(found, owner) if isinstance(found, dict) else None
        if images is not None:
            self.owners.put(key, images)
        return images

    def record_unusable(self, obj: Mapping[str, Any], why: str) -> None:
        """Count an object an informer cannot use, and make sure nothing of it (or of an
        earlier version) is trusted: see MemoryState.refuse."""
        kind = str(obj.get("kind"))
        self.unusable[kind] = self.unusable.get(kind, 0) + 1
        namespace, name = _names(obj)
        LOG.warning("%s %s/%s cannot be used: %s", kind, namespace, name, why)
        try:
            self.refuse(obj, why)
        except Exception:  # no name to record it under: nothing of it is stored either
            LOG.exception("%s %s/%s: cannot record it as unusable", kind, namespace, name)


def _names(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _apply(state: ClusterState, event: str, obj: Any, pruned: bool) -> None:
    """Apply one listed or watched object; one that cannot be used is recorded as such
    (ClusterState.record_unusable) and never stops the objects after it."""
    if not isinstance(obj, Mapping):
        state.unusable["?"] = state.unusable.get("?", 0) + 1
        LOG.warning("%s event without an object (%r): skipped", event, type(obj).__name__)
        return
    if pruned and event != DELETED and nesting.holds_pruned(obj):
        state.record_unusable(obj, f"it is nested deeper than {nesting.MAX_DEPTH} levels")
        return
    try:
        state.apply(event, obj)
    except PortierisError as exc:
        # Stored as invalid (policies) or skipped (secrets); images it governs are denied.
        namespace, name = _names(obj)
        LOG.warning("%s %s/%s: %s", obj.get("kind"), namespace, name, exc)
    except Exception as exc:  # an object no rule foresaw: never a stalled informer
        state.record_unusable(obj, f"it cannot be read ({type(exc).__name__}: {exc})")


class Informer:
    def __init__(
        self,
        api: KubeApi,
        resource: Resource,
        state: ClusterState,
        watch_seconds: int = WATCH_TIMEOUT_SECONDS,
    ) -> None:
        self.api, self.resource, self.state = api, resource, state
        self.watch_seconds = watch_seconds
        self.synced = asyncio.Event()
        self.relists = 0
        self.watches = 0

    async def _list(self) -> str:
        items: list[tuple[Any, bool]] = []
        query = {"limit": str(PAGE_SIZE)}
        while True:
            page, pruned = await self.api.get_pruned(self.resource.path, query, timeout=60)
            if not isinstance(page, dict):
                raise RemoteError(
                    f"Kubernetes API {self.resource.path}: not found (is the CRD installed?)"
                )
            items.extend((item, pruned) for item in page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            query = {"limit": str(PAGE_SIZE), "continue": meta["continue"]}
        self.state.clear(self.resource.kind)
        api_version = page.get("apiVersion", "v1")
        for item, pruned in items:
            if isinstance(item, dict):
                item.setdefault("kind", self.resource.kind)
                item.setdefault("apiVersion", api_version)
            _apply(self.state, ADDED, item, pruned)
        self.relists += 1
        LOG.info("listed %d %s objects", len(items), self.resource.kind)
        return str(meta.get("resourceVersion") or "")

    async def _watch(self, resource_version: str) -> None:
        while True:
            self.watches += 1
            stream = self.api.watch(self.resource.path, resource_version, self.watch_seconds)
            async for event, pruned in stream:
                event_type, obj = _event_parts(event)
                if event_type == "ERROR":
                    LOG.info(
                        "watch of %s ended: %s; listing again",
                        self.resource.kind,
                        obj.get("message") if isinstance(obj, Mapping) else obj,
                    )
                    return
                if isinstance(obj, dict):
                    meta = obj.get("metadata")
                    found = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
                    resource_version = str(found or resource_version)
                    obj.setdefault("kind", self.resource.kind)
                if event_type != "BOOKMARK":
                    _apply(self.state, event_type, obj, pruned)

    async def run(self) -> None:
        """List and watch until cancelled, retrying every failure with a backoff."""
        backoff = 0.5
        while True:
            try:
                version = await self._list()
                self.synced.set()
                backoff = 0.5
                await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: retry with backoff
                LOG.warning(
                    "informer for %s failed (%s); retrying in %.1fs",
                    self.resource.kind,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


def _event_parts(event: Any) -> tuple[str, Any]:
    """A watch event's type and object (a type of "?" for what is no event)."""
    if not isinstance(event, Mapping):
        return "?", None
    return str(event.get("type")), event.get("object")


@contextlib.asynccontextmanager
async def cluster_state(
    kubeconfig: str | None,
    watch_seconds: int = WATCH_TIMEOUT_SECONDS,
    owner_cache_max_entries: int = OWNER_CACHE_MAX_ENTRIES,
) -> AsyncIterator[ClusterState]:
    """Start the informers; the state turns ready once all have listed; stop them on exit."""
    api = connect(kubeconfig)
    state = ClusterState(api, owner_cache_max_entries)
    informers = [Informer(api, resource, state, watch_seconds) for resource in WATCHED]
    state.informers = informers
    for informer in informers:
        state.background.start(f"informer-{informer.resource.kind}", informer.run())

    async def mark_ready() -> None:
        await asyncio.gather(*(i.synced.wait() for i in informers))
        state.mark_ready()
        LOG.info("caches synced: ready")

    ready = asyncio.create_task(mark_ready())
    try:
        yield state
    finally:
        ready.cancel()
        await state.background.cancel()
        await asyncio.gather(ready, return_exceptions=True)
        await api.close()
