"""The atomic container signature payload is parsed as strictly as containers/image does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portieris_webhook.simple.payload import InvalidPayload, SignaturePayload, parse_payload

DIGEST = "sha256:" + "a" * 64


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "critical": {
            "type": "atomic container signature",
            "image": {"docker-manifest-digest": DIGEST},
            "identity": {"docker-reference": "registry.local/team/app:v1"},
        },
        "optional": {"creator": "atomic 5.23.1", "timestamp": 1700000000},
    }
    doc.update(overrides)
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


PAYLOAD = SignaturePayload(DIGEST, "registry.local/team/app:v1")


def test_a_well_formed_payload_gives_digest_and_reference() -> None:
    assert parse_payload(encode(document())) == PAYLOAD


@pytest.mark.parametrize("optional", [{"x-extra": [1]}, {}], ids=["unknown-field", "empty"])
def test_unknown_optional_fields_are_ignored_and_optional_may_be_empty(
    optional: dict[str, Any],
) -> None:
    assert parse_payload(encode(document(optional=optional))) == PAYLOAD


def test_an_integral_float_timestamp_is_accepted() -> None:
    assert parse_payload(encode(document(optional={"timestamp": 5.0}))) == PAYLOAD


def _with_critical(**changes: Any) -> dict[str, Any]:
    doc = document()
    doc["critical"] = {**doc["critical"], **changes}
    return doc


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    doc = document()
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_with_critical(expires=123), "critical has unknown field(s) 'expires'"),
        (
            _with_critical(image={"docker-manifest-digest": DIGEST, "size": 1}),
            "critical.image has unknown field(s) 'size'",
        ),
        (
            _with_critical(identity={"docker-reference": "a/b:c", "x": 1}),
            "critical.identity has unknown field(s) 'x'",
        ),
        (document(extra={}), "the top level has unknown field(s) 'extra'"),
        (_without(("optional",)), "the top level lacks field(s) 'optional'"),
        (_without(("critical", "identity")), "critical lacks field(s) 'identity'"),
        (_without(("critical", "image", "docker-manifest-digest")), "lacks field(s)"),
        (_with_critical(type="simple signing"), "has type 'simple signing'"),
        (_with_critical(type=None), "critical.type must be a string"),
        (_with_critical(image={"docker-manifest-digest": 7}), "must be a string"),
        (_with_critical(identity=["a/b:c"]), "critical.identity must be a JSON object"),
        (document(optional={"timestamp": 1.5}), "optional.timestamp must be an integer"),
        (document(optional={"timestamp": True}), "optional.timestamp must be an integer"),
        (document(optional={"creator": 3}), "optional.creator must be a string"),
        (document(optional=[]), "optional must be a JSON object"),
        ([], "the top level must be a JSON object"),
    ],
)
def test_malformed_payloads_are_refused(doc: Any, message: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_payload(encode(doc))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "is not JSON"),
        (b"\xff\xfe", "is not UTF-8"),
        (b'{"critical": {}, "critical": {}, "optional": {}}', "the key 'critical' twice"),
        (b'{"critical": NaN, "optional": {}}', "NaN"),
    ],
)
def test_bytes_that_are_not_strict_json_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        parse_payload(raw)
