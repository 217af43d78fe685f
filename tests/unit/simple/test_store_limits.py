"""The extension API signature list: how many signatures and how large, and what is not JSON."""

from __future__ import annotations

import base64
import json

import pytest

from portieris_webhook.errors import RemoteError
from portieris_webhook.simple.stores import (
    MAX_SIGNATURE_BYTES,
    MAX_SIGNATURES,
    parse_signature_list,
)

URL = "https://reg.io/extensions/v2/team/app/signatures/sha256:" + "a" * 64


def listing(*contents: bytes, **extra: object) -> bytes:
    entries = [
        {"version": 2, "type": "atomic", "name": f"n{i}", "content": base64.b64encode(c).decode()}
        for i, c in enumerate(contents)
    ]
    return json.dumps({"signatures": entries, **extra}).encode()


def test_the_most_signatures_portieris_reads_are_all_returned() -> None:
    body = listing(*(b"sig%d" % i for i in range(MAX_SIGNATURES)))
    assert parse_signature_list(body, URL) == [b"sig%d" % i for i in range(MAX_SIGNATURES)]


def test_one_signature_more_is_refused_naming_the_limit_and_the_server() -> None:
    body = listing(*(b"sig" for _ in range(MAX_SIGNATURES + 1)))
    with pytest.raises(
        RemoteError, match=rf"^{URL}: the signature list has more than {MAX_SIGNATURES} signatures"
    ):
        parse_signature_list(body, URL)


def test_a_signature_over_the_size_limit_is_refused() -> None:
    body = listing(b"ok", b"x" * (MAX_SIGNATURE_BYTES + 1))
    with pytest.raises(
        RemoteError, match=rf"^{URL}: signature 2 is larger than {MAX_SIGNATURE_BYTES} bytes"
    ):
        parse_signature_list(body, URL)


def test_a_signature_at_the_size_limit_is_read() -> None:
    assert parse_signature_list(listing(b"x" * MAX_SIGNATURE_BYTES), URL) == [
        b"x" * MAX_SIGNATURE_BYTES
    ]


def test_deeply_nested_json_is_not_a_signature_list() -> None:
    with pytest.raises(RemoteError, match="signature list is nested deeper than 100 levels"):
        parse_signature_list(b"[" * 100_000 + b"]" * 100_000, URL)
