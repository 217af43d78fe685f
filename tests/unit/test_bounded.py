"""The bounded LRU mapping behind every cache filled from request data."""

from __future__ import annotations

import pytest

from portieris_webhook.kits.bounded import BoundedDict, GenerationMemo

from tests.builders import ManualClock


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


def test_an_entry_older_than_max_age_is_never_returned_and_is_dropped() -> None:
    clock = ManualClock(0.0)
    cache: BoundedDict[str, int] = BoundedDict(10, max_age=30.0, clock=clock)
    cache.put("a", 1)
    clock.now = 29.9
    assert cache.get("a") == 1
    clock.now = 30.0
    assert cache.get("a") is None and len(cache) == 0


def test_expired_entries_are_swept_when_others_are_stored() -> None:
    clock = ManualClock(0.0)
    cache: BoundedDict[str, int] = BoundedDict(10, max_age=30.0, clock=clock)
    cache.put("old", 1)
    clock.now = 31.0
    assert cache.put("new", 2) == [1]
    assert len(cache) == 1


def test_values_stay_within_max_bytes_least_recently_used_dropped_first() -> None:
    cache: BoundedDict[str, bytes] = BoundedDict(10, max_bytes=10, size=len)
    cache.put("a", b"xxxx")
    cache.put("b", b"yyyy")
    cache.get("a")
    assert cache.put("c", b"zzzz") == [b"yyyy"]
    assert cache.bytes == 8
    cache.put("a", b"x")  # replacing a value counts its new size only
    assert cache.bytes == 5


def test_a_value_larger_than_max_bytes_is_not_kept() -> None:
    cache: BoundedDict[str, bytes] = BoundedDict(10, max_bytes=10, size=len)
    cache.put("small", b"s")
    assert cache.put("huge", b"h" * 11) == [b"s", b"h" * 11]
    assert cache.get("huge") is None and cache.bytes == 0


def test_keys_count_against_max_bytes_as_values_do() -> None:
    """A key that holds request text is memory too: a huge key cannot slip past the bound."""
    cache: BoundedDict[str, bytes] = BoundedDict(10, max_bytes=10, size=len, key_size=len)
    cache.put("aaa", b"x")
    assert cache.bytes == 4
    assert cache.put("bbbbbb", b"y") == [b"x"]
    assert cache.bytes == 7
    assert cache.put("k" * 11, b"") == [b"y", b""]  # larger than the bound alone
    assert cache.bytes == 0 and len(cache) == 0


def test_a_key_size_alone_bounds_the_keys() -> None:
    cache: BoundedDict[str, int] = BoundedDict(10, max_bytes=5, key_size=len)
    cache.put("abc", 1)
    assert cache.put("de", 2) == []
    assert cache.put("f", 3) == [1]
    assert cache.bytes == 3


def test_a_generation_memo_counts_its_keys() -> None:
    memo: GenerationMemo[str, str] = GenerationMemo(10, max_bytes=8, size=len, key_size=len)
    memo.put("ab", "cd", generation=1)
    memo.put("ef", "gh", generation=1)
    assert memo.bytes == 8
    memo.put("ij", "kl", generation=1)
    assert memo.bytes == 8 and memo.get("ab", 1) is None and memo.get("ij", 1) == "kl"


def test_max_bytes_needs_a_size_function() -> None:
    with pytest.raises(ValueError, match="size function"):
        BoundedDict(1, max_bytes=10)


def test_age_is_the_time_since_an_entry_was_stored() -> None:
    clock = ManualClock(0.0)
    cache: BoundedDict[str, int] = BoundedDict(10, clock=clock)
    assert cache.age("a") is None
    cache.put("a", 1)
    clock.now = 7.0
    assert cache.get("a") == 1  # a use does not make it younger
    assert cache.age("a") == 7.0


def test_a_generation_memo_answers_only_at_the_generation_a_value_was_derived_from() -> None:
    memo: GenerationMemo[str, int] = GenerationMemo(4)
    memo.put("a", 1, generation=7)
    assert memo.get("a", 7) == 1
    assert memo.get("a", 8) is None
    assert memo.get("a", 7) is None  # a newer generation was seen: everything was forgotten
    assert len(memo) == 0


def test_a_value_derived_at_an_older_generation_is_not_answered_at_the_newer_one() -> None:
    memo: GenerationMemo[str, int] = GenerationMemo(4)
    memo.put("new", 2, generation=8)
    memo.put("old", 1, generation=7)
    assert memo.get("old", 8) is None and memo.get("new", 8) is None


def test_a_generation_memo_is_bounded_in_entries_and_age() -> None:
    clock = ManualClock(0.0)
    memo: GenerationMemo[int, int] = GenerationMemo(2, max_age=10.0, clock=clock)
    for key in range(3):
        memo.put(key, key, generation=1)
    assert memo.get(0, 1) is None and memo.get(2, 1) == 2
    clock.now += 10.0
    assert memo.get(2, 1) is None


def test_peek_answers_without_counting_as_a_use() -> None:
    clock = ManualClock(0.0)
    cache: BoundedDict[str, int] = BoundedDict(2, max_age=30.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1 and "a" in cache
    assert cache.put("c", 3) == [1]  # "a" was still the least recently used
    clock.now = 30.0
    assert cache.peek("b") is None and "b" not in cache


def test_items_are_the_live_entries_least_recently_used_first() -> None:
    clock = ManualClock(0.0)
    cache: BoundedDict[str, int] = BoundedDict(3, max_age=30.0, clock=clock)
    cache.put("old", 0)
    clock.now = 10.0
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    clock.now = 30.0
    assert cache.items() == [("b", 2), ("a", 1)]


def test_keep_newest_keeps_the_entry_just_stored_whatever_its_size() -> None:
    cache: BoundedDict[str, bytes] = BoundedDict(10, max_bytes=4, size=len, keep_newest=True)
    cache.put("a", b"ab")
    assert cache.put("big", b"0123456789") == [b"ab"]
    assert cache.get("big") == b"0123456789" and len(cache) == 1
