"""Offline mode: a directory of Kubernetes manifests stands in for the cluster."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from portieris_webhook.cluster.state import ADDED, MemoryState
from portieris_webhook.errors import InvalidPolicy, ManifestError

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
