"""The import-linter layers name every module, so a new module must say where it sits."""

from __future__ import annotations

import ast
import pkgutil
import tomllib
from pathlib import Path

import portieris_webhook

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _layered() -> set[str]:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    [layers] = [c["layers"] for c in contracts if c["type"] == "layers"]
    return {name.strip() for layer in layers for name in layer.split("|")}


def _modules() -> list[str]:
    """Every module of the package but the folders' `__init__` (a docstring each: a folder
    split over two layers, as config/ and cluster/ are, places its modules one by one)."""
    prefix = portieris_webhook.__name__ + "."
    found = pkgutil.walk_packages(portieris_webhook.__path__, prefix)
    return [m.name for m in found if not m.ispkg]


def test_every_module_of_the_package_is_placed_in_a_layer():
    layered = _layered()

    def placed(module: str) -> bool:
        parts = module.split(".")
        return any(".".join(parts[:n]) in layered for n in range(2, len(parts) + 1))

    assert [m for m in _modules() if not placed(m)] == []


PARSERS = {"pod_spec", "workload_kind", "owner_refs", "parse_review", "parse_review_body", "read"}
"""What reads an AdmissionReview's documents (admission/)."""


def test_deciding_parses_nothing():
    """The readers hand the enforcer a complete request (its pod spec, or why it cannot be
    checked), so decide/ imports none of their parsing functions."""
    decide = Path(portieris_webhook.__file__).parent / "decide"
    imported = {
        (path.name, alias.name)
        for path in decide.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("portieris_webhook")
        for alias in node.names
    }
    assert [found for found in sorted(imported) if found[1] in PARSERS] == []
