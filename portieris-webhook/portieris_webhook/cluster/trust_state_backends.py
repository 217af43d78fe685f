"""Where the persisted trust state (trust on first use, see trust/state_store.py) is kept:
a ConfigMap in cluster mode, a file in offline mode. Both guard a write with the version
of what was read, so replicas and processes sharing one state merge instead of overwriting."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from portieris_webhook.cluster.kube import KubeApi
from portieris_webhook.errors import StateConflict, TrustStateError
from portieris_webhook.trust.state_store import Stored

TRUST_STATE_KEY = "trust-state.json"


class ConfigMapBackend:
    """The persisted trust state in one ConfigMap (key `trust-state.json`), which the chart
    creates; written with update only, guarded by its resourceVersion."""

    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        self.api = api
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        self.where = f"ConfigMap {namespace}/{name}"
        self._object: dict[str, Any] | None = None

    async def load(self) -> Stored:
        found = await self.api.get(self.path)
        if not isinstance(found, dict):
            self._object = None
            return Stored(None, None)
        self._object = found
        data = found.get("data") or {}
        version = (found.get("metadata") or {}).get("resourceVersion")
        return Stored(data.get(TRUST_STATE_KEY), str(version) if version else None)

    async def save(self, text: str, version: str | None) -> str:
        if self._object is None:
            raise TrustStateError(
                f"{self.where} does not exist (the chart creates it): trust on first use is "
                "kept in this process only until it does"
            )
        body = dict(self._object)
        metadata = {
            k: v for k, v in self._object.get("metadata", {}).items() if k != "managedFields"
        }
        body["metadata"] = {**metadata, "resourceVersion": version}
        body["data"] = {**(self._object.get("data") or {}), TRUST_STATE_KEY: text}
        status, answer = await self.api.put(self.path, body)
        if status == 409:
            raise StateConflict(f"{self.where} changed since it was read")
        if status != 200 or not isinstance(answer, dict):
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise TrustStateError(f"cannot update {self.where}: HTTP {status}: {message}")
        self._object = answer
        return str(answer.get("metadata", {}).get("resourceVersion", ""))


class FileBackend:
    """The persisted trust state in a file (offline mode, `--trust-state-file`): replaced
    atomically (write a temporary file beside it, then rename), guarded by the hash of what
    was read, under an advisory lock on `PATH.lock` so processes sharing it merge."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.where = f"trust state file {path}"

    async def load(self) -> Stored:
        return await asyncio.to_thread(self._load)

    async def save(self, text: str, version: str | None) -> str:
        return await asyncio.to_thread(self._save, text, version)

    def _load(self) -> Stored:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Stored(None, None)
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustStateError(f"cannot read {self.where}: {exc}") from exc
        return Stored(text, hashlib.sha256(text.encode()).hexdigest())

    def _save(self, text: str, version: str | None) -> str:
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            with open(lock, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                if self._load().version != version:
                    raise StateConflict(f"{self.where} changed since it was read")
                self._replace(text)
        except OSError as exc:
            raise TrustStateError(f"cannot write {self.where}: {exc}") from exc
        return hashlib.sha256(text.encode()).hexdigest()

    def _replace(self, text: str) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
