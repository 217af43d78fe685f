"""The payload of a simple signature: the "atomic container signature" JSON, parsed strictly.

Parsing follows containers/image's `untrustedSignature.strictUnmarshalJSON`:
the top level has exactly `critical` and `optional`; `critical` has exactly
`type`, `image` and `identity`; `image` exactly `docker-manifest-digest`;
`identity` exactly `docker-reference`. Anything unknown in `critical` is a
field whose meaning we would ignore, so the signature is refused. `optional`
may hold anything, but `creator` must be a string and `timestamp` an integer.
Duplicate keys are refused, so two parsers can never read different values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portieris_webhook.errors import VerificationError
from portieris_webhook.kits.nesting import check_depth

SIGNATURE_TYPE = "atomic container signature"


class InvalidPayload(VerificationError):
    """A signed payload that is not a well-formed atomic container signature."""


@dataclass(frozen=True)
class SignaturePayload:
    """What a signer vouched for: a manifest digest under a docker reference."""

    manifest_digest: str
    docker_reference: str


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidPayload(f"signature payload has the key {key!r} twice")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidPayload(f"signature payload holds {name}, which is not JSON")


def _exact_fields(value: Any, where: str, fields: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPayload(f"signature payload: {where} must be a JSON object")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InvalidPayload(
            f"signature payload: {where} has unknown field(s) {', '.join(map(repr, unknown))}"
        )
    missing = [f for f in fields if f not in value]
    if missing:
        raise InvalidPayload(
            f"signature payload: {where} lacks field(s) {', '.join(map(repr, missing))}"
        )
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidPayload(f"signature payload: {where} must be a string")
    return value


def _check_optional(value: Any) -> None:
    """Nothing in `optional` is used, but its known fields must have the right types."""
    if not isinstance(value, dict):
        raise InvalidPayload("signature payload: optional must be a JSON object")
    if "creator" in value:
        _string(value["creator"], "optional.creator")
    if "timestamp" in value:
        raw = value["timestamp"]
        integral = isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer())
        if isinstance(raw, bool) or not integral:
            raise InvalidPayload("signature payload: optional.timestamp must be an integer")


def parse_payload(data: bytes) -> SignaturePayload:
    """Parse and validate signed bytes; raise InvalidPayload saying what is wrong."""
    check_depth(data, "signature payload", InvalidPayload)
    try:
        document = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError as exc:
        raise InvalidPayload("signature payload is not UTF-8") from exc
    except ValueError as exc:  # json.JSONDecodeError; our hooks raise InvalidPayload
        raise InvalidPayload(f"signature payload is not JSON: {exc}") from exc
    top = _exact_fields(document, "the top level", ("critical", "optional"))
    critical = _exact_fields(top["critical"], "critical", ("type", "image", "identity"))
    kind = _string(critical["type"], "critical.type")
    if kind != SIGNATURE_TYPE:
        raise InvalidPayload(f"signature payload has type {kind!r}, not {SIGNATURE_TYPE!r}")
    image = _exact_fields(critical["image"], "critical.image", ("docker-manifest-digest",))
    identity = _exact_fields(critical["identity"], "critical.identity", ("docker-reference",))
    _check_optional(top["optional"])
    return SignaturePayload(
        manifest_digest=_string(
            image["docker-manifest-digest"], "critical.image.docker-manifest-digest"
        ),
        docker_reference=_string(
            identity["docker-reference"], "critical.identity.docker-reference"
        ),
    )
