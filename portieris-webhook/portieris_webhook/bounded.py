"""A mapping that keeps at most a fixed number of entries, dropping the least recently used.

Every cache filled from request data (tokens, challenges, verified signatures, key rings)
is one of these, so no client can grow the webhook's memory by naming new things.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(Generic[K, V]):
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        """The value of `key` (now the most recently used), or None."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> list[V]:
        """Store `value`; return the values dropped to stay within the bound (oldest first)."""
        self._data[key] = value
        self._data.move_to_end(key)
        dropped = []
        while len(self._data) > self.max_entries:
            dropped.append(self._data.popitem(last=False)[1])
        return dropped

    def pop(self, key: K) -> V | None:
        """Forget `key`; its value, or None."""
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
