"""Strict, typed reading of one level of a policy object (the parser's one tool).

Every level says which fields it may carry (`Fields`); a field a level does not name is
refused whatever its value, null included, and every failure names the object and the
field, so a user can fix the policy from the message alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portieris_webhook.errors import InvalidPolicy


@dataclass(frozen=True)
class Fields:
    """The fields one level of a policy object may carry."""

    known: frozenset[str]
    unsupported: Mapping[str, str] = field(default_factory=dict)
    """Fields IBM Portieris defines that this webhook refuses, with the reason."""


class Reader:
    """Typed access to one level of a policy object, raising InvalidPolicy that names the field.

    `level` is the key of FIELDS that says which fields this level may carry; a
    field it does not name is refused whatever its value, null included.
    """

    def __init__(
        self, where: str, path: str, level: str, data: Any, levels: Mapping[str, Fields]
    ) -> None:
        if not isinstance(data, Mapping):
            raise InvalidPolicy(f"{where}: {path} must be an object")
        self.where, self.path, self.data, self.levels = where, path, data, levels
        self._check_fields(levels[level])

    def _at(self, key: object) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def _check_fields(self, fields: Fields) -> None:
        problems = []
        for key in self.data:
            if key in fields.unsupported:
                problems.append(f"{self._at(key)}: {fields.unsupported[key]}")
            elif key not in fields.known:
                known = ", ".join(sorted(fields.known))
                problems.append(f"{self._at(key)}: unknown field (known fields: {known})")
        if problems:
            raise InvalidPolicy(f"{self.where}: " + "; ".join(problems))

    def fail(self, key: str, what: str) -> InvalidPolicy:
        return InvalidPolicy(f"{self.where}: {self._at(key)} {what}")

    def child(self, key: str) -> Reader:
        """The object under `key` (unset or null: empty); its level in FIELDS is `key`."""
        value = self.data.get(key)
        return Reader(self.where, self._at(key), key, {} if value is None else value, self.levels)

    def has(self, key: str) -> bool:
        """Whether `key` is set (to anything but null)."""
        return self.data.get(key) is not None

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise self.fail(key, "is required")
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {value!r}")
        return value

    def items(self, key: str) -> list[Reader]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        return [
            Reader(self.where, f"{self._at(key)}[{i}]", f"{key}[]", item, self.levels)
            for i, item in enumerate(value)
        ]
