"""A mapping that keeps at most a fixed number of entries, dropping the least recently used.

Every cache filled from request data (tokens, challenges, verified signatures, key rings,
answers of registries and signature stores) is one of these, so no client can grow the
webhook's memory by naming new things. Optionally an entry also expires `max_age` seconds
after it was stored (it is then never returned, and is dropped when met), and the entries
together may hold at most `max_bytes` as measured by `size` (of a value) plus `key_size` (of
its key): a key that holds request text counts as much as a value does. A cache whose entries
must live `max_age` from their last use, or be measured again after they change, stores them
again on each use (as trust/cache.py does).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class _Slot(Generic[V]):
    value: V
    stored_at: float
    size: int


class BoundedDict(Generic[K, V]):
    def __init__(
        self,
        max_entries: int,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        size: Callable[[V], int] | None = None,
        key_size: Callable[[K], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        keep_newest: bool = False,
    ) -> None:
        """`keep_newest`: the entry just stored is never the one dropped, even when it alone
        is over `max_bytes` (for values that cannot simply be loaded again)."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_bytes is not None and size is None and key_size is None:
            raise ValueError("max_bytes needs a size function")
        self.max_entries = max_entries
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._size = size
        self._key_size = key_size
        self._clock = clock
        self._floor = 1 if keep_newest else 0
        self._data: OrderedDict[K, _Slot[V]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Whether `key` is kept and not expired (does not count as a use)."""
        slot = self._data.get(key)  # type: ignore[arg-type]
        return slot is not None and not self._expired(slot, self._clock())

    @property
    def bytes(self) -> int:
        """The size of every entry kept, as measured by `size` and `key_size` (0 without)."""
        return self._bytes

    def _expired(self, slot: _Slot[V], now: float) -> bool:
        return self.max_age is not None and now - slot.stored_at >= self.max_age

    def get(self, key: K) -> V | None:
        """The value of `key` (now the most recently used), or None when absent or expired."""
        slot = self._data.get(key)
        if slot is None:
            return None
        if self._expired(slot, self._clock()):
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return slot.value

    def peek(self, key: K) -> V | None:
        """The value of `key`, or None when absent or expired; unlike `get`, not a use: its
        place among the least recently used stays."""
        slot = self._data.get(key)
        if slot is None or self._expired(slot, self._clock()):
            return None
        return slot.value

    def items(self) -> list[tuple[K, V]]:
        """The entries not expired, least recently used first (not a use)."""
        now = self._clock()
        return [(k, slot.value) for k, slot in self._data.items() if not self._expired(slot, now)]

    def put(self, key: K, value: V) -> list[V]:
        """Store `value`; return the values dropped to stay within the bounds (oldest first).

        An entry larger than `max_bytes` on its own is not kept (its value is returned as
        dropped), unless the dict was made to `keep_newest`.
        """
        if key in self._data:
            self._remove(key)
        now = self._clock()
        size = self._size(value) if self._size is not None else 0
        if self._key_size is not None:
            size += self._key_size(key)
        self._data[key] = _Slot(value, now, size)
        self._bytes += size
        dropped = []
        while len(self._data) > self._floor and (
            len(self._data) > self.max_entries
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
            or self._expired(next(iter(self._data.values())), now)
        ):
            dropped.append(self._remove(next(iter(self._data))))
        return dropped

    def age(self, key: K) -> float | None:
        """Seconds since `key` was stored, or None when absent (does not count as a use)."""
        slot = self._data.get(key)
        return None if slot is None else self._clock() - slot.stored_at

    def pop(self, key: K) -> V | None:
        """Remove `key`; its value, or None."""
        return self._remove(key) if key in self._data else None

    def _remove(self, key: K) -> V:
        slot = self._data.pop(key)
        self._bytes -= slot.size
        return slot.value

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0


class GenerationMemo(Generic[K, V]):
    """Values derived from a source that numbers its versions (`generation`), kept only
    while the source is at the version they were derived from, and bounded as BoundedDict.

    Any change of the generation forgets every value at once: a value can never outlive
    a change of what it was derived from, whatever part of the source changed.
    """

    def __init__(
        self,
        max_entries: int,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        size: Callable[[V], int] | None = None,
        key_size: Callable[[K], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._values: BoundedDict[K, V] = BoundedDict(
            max_entries,
            max_age=max_age,
            max_bytes=max_bytes,
            size=size,
            key_size=key_size,
            clock=clock,
        )
        self._generation: int | None = None

    def __len__(self) -> int:
        return len(self._values)

    @property
    def bytes(self) -> int:
        """The size of every entry kept, as measured by `size` and `key_size` (0 without)."""
        return self._values.bytes

    def _at(self, generation: int) -> BoundedDict[K, V]:
        if generation != self._generation:
            self._values.clear()
            self._generation = generation
        return self._values

    def get(self, key: K, generation: int) -> V | None:
        """The value derived for `key` at `generation`, or None."""
        return self._at(generation).get(key)

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep `value`, derived for `key` from the source at `generation`."""
        self._at(generation).put(key, value)
