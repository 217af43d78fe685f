"""Offline mode: a directory of Kubernetes manifests stands in for the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from portieris_webhook.errors import InvalidPolicy, ManifestError, StateConflict, TrustStateError
from portieris_webhook.state import ADDED, MemoryState
from portieris_webhook.trust.state_store import Stored

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(paths: Iterable[str]) -> list[Path]:
    """Every manifest file under `paths` (files or directories), in a stable order."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(f"--manifests {entry}: no such file or directory")
    return files


def _documents(path: Path) -> Iterator[Mapping[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    except RecursionError as exc:  # PyYAML composes recursively
        raise ManifestError(f"{path}: cannot read manifest: it is nested too deeply") from exc
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{path}: document {index + 1} is not a Kubernetes object")
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
            for item in doc.get("items") or []:
                if isinstance(item, Mapping):
                    yield item
        else:
            yield doc


def load_into(state: MemoryState, paths: Iterable[str]) -> int:
    """Load every object under `paths` into `state`; return how many objects were read."""
    count = 0
    for path in manifest_files(paths):
        for obj in _documents(path):
            _store(state, path, obj)
            count += 1
    return count


def load_manifests(paths: Iterable[str]) -> MemoryState:
    state = MemoryState()
    load_into(state, paths)
    state.mark_ready()
    return state


def _store(state: MemoryState, path: Path, obj: Mapping[str, Any]) -> None:
    kind = obj.get("kind")
    if not isinstance(kind, str) or not isinstance(obj.get("metadata"), Mapping):
        raise ManifestError(f"{path}: an object without kind or metadata")
    try:
        state.apply(ADDED, obj)
    except (InvalidPolicy, ManifestError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc


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
