"""The nesting limit of JSON from outside: measured exactly, refused with a PortierisError,
and pruned (not refused) where one object must not cost a whole list."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portieris_webhook.errors import PortierisError, TrustStateError
from portieris_webhook.kits import nesting

LIMIT = nesting.MAX_DEPTH


def depth_of(value):
    """The nesting depth of a decoded value (a scalar is 0), computed the slow, obvious way."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def chain(depth, leaf='"x"', kinds="[{"):
    """JSON nested `depth` levels, alternating the container kinds in `kinds`."""
    text = leaf
    for level in range(depth):
        text = f"[{text}]" if kinds[level % len(kinds)] == "[" else f'{{"k": {text}}}'
    return text.encode()


# Strings that look like brackets, quotes and escapes must never count as nesting.
tricky_text = st.text(alphabet='[]{}"\\ab\n', max_size=8)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), tricky_text)
documents = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(tricky_text, inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(document=documents, limit=st.integers(0, 12))
def test_too_deep_agrees_with_the_depth_of_the_decoded_document(document, limit):
    data = json.dumps(document).encode()
    assert nesting.too_deep(data, limit) == (depth_of(document) > limit)
    assert nesting.too_deep(data.decode(), limit) == (depth_of(document) > limit)


@pytest.mark.parametrize("kinds", ["[", "{", "[{", "{{["])
def test_the_limit_itself_is_accepted_and_one_more_level_is_not(kinds):
    assert not nesting.too_deep(chain(LIMIT, kinds=kinds))
    assert nesting.too_deep(chain(LIMIT + 1, kinds=kinds))
    assert nesting.too_deep(chain(3000, kinds=kinds))


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 3000,
        b'{"a":' * 3000,
        b"[" * 3000 + b'"' + b"]" * 3000,
        b"[" * 3000 + b"\\" + b"]" * 3000,
    ],
    ids=["unclosed-arrays", "unclosed-objects", "unterminated-string", "stray-backslash"],
)
def test_text_that_opens_too_many_brackets_is_too_deep_even_when_it_is_not_json(data):
    assert nesting.too_deep(data)
    with pytest.raises(PortierisError, match=f"nested deeper than {LIMIT} levels"):
        nesting.loads(data, "the answer")


def test_brackets_inside_strings_do_not_count():
    text = json.dumps(["[" * 5000, "{" * 5000, '\\"[[[', {"[[[[": "]]]]"}]).encode()
    assert not nesting.too_deep(text)
    assert nesting.loads(text, "the answer")[0] == "[" * 5000


def test_loads_names_what_and_raises_the_callers_error():
    with pytest.raises(TrustStateError, match=r"^trust state is nested deeper than 100 levels"):
        nesting.loads(chain(3000), "trust state", TrustStateError)
    with pytest.raises(TrustStateError, match=r"^trust state is not JSON"):
        nesting.loads(b"{", "trust state", TrustStateError)


def test_decode_pruned_keeps_every_shallow_object_and_marks_the_deep_one():
    deep = chain(3000).decode()
    page = f'{{"items": [{{"name": "a"}}, {{"name": "deep", "x": {deep}}}, {{"name": "c"}}]}}'
    document, pruned = nesting.decode_pruned(page.encode())
    assert pruned
    items = document["items"]
    assert [item["name"] for item in items] == ["a", "deep", "c"]
    assert [nesting.holds_pruned(item) for item in items] == [False, True, False]
    assert depth_of(document) <= LIMIT + 1


def test_decode_pruned_leaves_a_document_within_the_limit_untouched():
    data = chain(LIMIT)
    assert nesting.decode_pruned(data) == (json.loads(data), False)


def test_decode_pruned_of_unpaired_brackets_is_a_value_error():
    with pytest.raises(ValueError):
        nesting.decode_pruned(b"[" * 3000)
