"""The AdmissionReview of a write to a policy object, for the validating endpoint, and its answer.

The review is read by the reader of /admit (`review.load_json`, with its nesting limit, then
`review.parse_review`, with its checks and messages), so both endpoints refuse the same
malformed bodies the same way; the one field only a validation reads, `request.oldObject`, is
read here. The answer refuses as Kubernetes' own validation does: `status.code` 422,
`reason: Invalid`, and no `details`, so that kubectl prints the message (with details and no
causes it prints only `The ImagePolicy "x" is invalid`):
`The request is invalid: error when creating "FILE": admission webhook "..." denied the
request: MESSAGE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from portieris_webhook.admission.request import API_VERSION, KIND, AdmissionRequest
from portieris_webhook.admission.review import load_json, parse_review
from portieris_webhook.errors import InvalidAdmissionReview

INVALID_CODE = 422
"""HTTP status of a refused write: Kubernetes' code for an object that fails validation."""
INVALID_REASON = "Invalid"
"""Kubernetes' StatusReason of an object that fails validation (kubectl prints it)."""
ERROR_CODE = 500
ERROR_REASON = "InternalError"


class PolicyWrite(NamedTuple):
    """A create, update, delete or connect request of any kind, as /admit reads it, and the
    object as it was before an UPDATE."""

    request: AdmissionRequest
    old_object: Mapping[str, Any] | None = None


def parse_policy_write(body: bytes) -> PolicyWrite:
    """The request of the AdmissionReview in `body`, or InvalidAdmissionReview saying why
    it cannot be read (as /admit would say it)."""
    document = load_json(body)
    request = parse_review(document)  # a mapping with a mapping `request`, once this returns
    old = document["request"].get("oldObject")
    if old is not None and not isinstance(old, Mapping):
        raise InvalidAdmissionReview("request.oldObject must be an object")
    return PolicyWrite(request, old)


def validation_review(
    uid: str,
    refusal: str | None = None,
    warnings: Sequence[str] = (),
    *,
    internal_error: bool = False,
) -> dict[str, Any]:
    """The AdmissionReview answering a validation: allowed when `refusal` is None, else
    refused with it as the message (422 Invalid, or 500 InternalError when the webhook
    failed rather than the object); `warnings` are shown to the client either way."""
    response: dict[str, Any] = {"uid": uid, "allowed": refusal is None}
    if refusal is not None:
        code, reason = (
            (ERROR_CODE, ERROR_REASON) if internal_error else (INVALID_CODE, INVALID_REASON)
        )
        response["status"] = {
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": refusal,
        }
    if warnings:
        response["warnings"] = list(warnings)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
