"""The bounded LRU mapping behind every cache filled from request data."""

from __future__ import annotations

import pytest

from portieris_webhook.bounded import BoundedDict


def test_keeps_at_most_max_entries_and_returns_what_it_dropped() -> None:
    cache: BoundedDict[int, str] = BoundedDict(3)
    dropped = [cache.put(i, f"v{i}") for i in range(5)]
    assert len(cache) == 3
    assert dropped == [[], [], [], ["v0"], ["v1"]]
    assert cache.get(0) is None and cache.get(4) == "v4"


def test_a_read_makes_an_entry_the_most_recently_used() -> None:
    cache: BoundedDict[str, int] = BoundedDict(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    assert cache.put("c", 3) == [2]
    assert cache.get("a") == 1 and cache.get("c") == 3


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedDict(0)


def test_pop_forgets_a_key_and_returns_its_value() -> None:
    cache: BoundedDict[str, int] = BoundedDict(2)
    cache.put("a", 1)
    assert cache.pop("a") == 1
    assert cache.pop("a") is None
    assert len(cache) == 0 and cache.get("a") is None
