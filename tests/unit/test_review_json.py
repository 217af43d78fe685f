"""The review's JSON reads and writes as the standard library's json does.

msgspec is the fast path; every document it refuses goes to the standard library, whose
verdict and message stand. These cases are where the two codecs differ on their own.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import msgspec
import pytest

from portieris_webhook.admission import review as review_module
from portieris_webhook.admission.review import (
    AdmissionResponse,
    PatchOperation,
    dump_json,
    load_json,
)
from portieris_webhook.errors import InvalidAdmissionReview

DOCUMENTS = [
    b'{"a": 1, "a": 2}',  # the last duplicate wins
    b"123456789012345678901234567890",  # an integer past 64 bits stays an integer
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1e400",  # infinity for json, out of range for msgspec
    b"-0.0",
    b"5e-324",
    b"NaN",
    b"[Infinity, -Infinity]",
    b'"\\ud800"',  # a lone surrogate
    b'{"image": "caf\\u00e9 \xe5\x90\x8d"}',
    b' {"a": [1, 2.5, true, null, "x"]}\n',
]

REFUSED = [
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b'{"a": 1} x',
    b'"\xff"',
    b"1" * 5000,  # past json's integer digit limit
    b"[" * 100_000 + b"]" * 100_000,
    b"",
    b"{",
]


class Refusing:
    """Stands in for msgspec's decoder and encoder, refusing every document: the standard
    library then reads and writes alone."""

    def decode(self, data: bytes) -> Any:
        raise msgspec.DecodeError("refused")

    def encode(self, document: Any) -> bytes:
        raise msgspec.EncodeError("refused")


def standard(data: bytes) -> Any:
    """What the standard library alone makes of `data` (what msgspec refuses goes there)."""
    return json.loads(data.decode("utf-8"))


def same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    return type(left) is type(right) and repr(left) == repr(right)


@pytest.mark.parametrize("data", DOCUMENTS, ids=repr)
def test_a_document_reads_as_the_standard_library_reads_it(data: bytes) -> None:
    assert same(load_json(data), standard(data))


@pytest.mark.parametrize("data", REFUSED, ids=lambda d: repr(d[:20]))
def test_a_document_json_refuses_is_refused_with_the_standard_librarys_message(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidAdmissionReview) as fast:
        load_json(data)
    monkeypatch.setattr(review_module, "_DECODER", Refusing())
    with pytest.raises(InvalidAdmissionReview) as plain:
        load_json(data)
    assert str(fast.value) == str(plain.value)


@pytest.mark.parametrize("data", DOCUMENTS, ids=repr)
def test_what_msgspec_refuses_the_standard_library_reads(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review_module, "_DECODER", Refusing())
    assert same(load_json(data), standard(data))


def answers() -> list[dict[str, Any]]:
    patch = (PatchOperation("/spec/containers/0/image", "reg.io/app@sha256:" + "a" * 64),)
    return [
        AdmissionResponse("uid-1", True, patch=patch).to_review(),
        AdmissionResponse("uid-2", False, "image é 名前 \n denied").to_review(),
        AdmissionResponse("uid-3", False, "a lone surrogate \ud800 from the request").to_review(),
        {"error": "malformed AdmissionReview: request.uid is required"},
    ]


@pytest.mark.parametrize("document", answers(), ids=lambda d: str(d)[:30])
def test_an_answer_is_written_as_json_that_reads_back_the_same(document: dict[str, Any]) -> None:
    assert json.loads(dump_json(document)) == document


@pytest.mark.parametrize("document", answers(), ids=lambda d: str(d)[:30])
def test_what_msgspec_refuses_to_write_the_standard_library_writes(
    document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review_module, "_ENCODER", Refusing())
    assert dump_json(document) == json.dumps(document).encode()


def test_the_patch_is_base64_json_of_replace_operations() -> None:
    patch = (PatchOperation("/spec/containers/0/image", "reg.io/app@sha256:" + "b" * 64),)
    answer = json.loads(dump_json(AdmissionResponse("u", True, patch=patch).to_review()))
    assert answer["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": patch[0].value}
    ]
