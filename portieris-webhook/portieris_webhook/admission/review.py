"""AdmissionReview v1: parse the request, build the response."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from portieris_webhook.admission import typed
from portieris_webhook.admission.owners import owner_refs
from portieris_webhook.admission.request import (
    API_VERSION,
    CHECKED_OPERATIONS,
    KIND,
    OPERATIONS,
    AdmissionRequest,
    request_name,
    request_namespace,
)
from portieris_webhook.admission.workloads import PodSpec, pod_spec, workload_kind
from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject
from portieris_webhook.kits.nesting import check_depth


@dataclass(frozen=True)
class PatchOperation:
    path: str
    value: str


class AdmissionResponse(NamedTuple):
    """The answer to one AdmissionReview (a NamedTuple, as AdmissionRequest)."""

    uid: str
    allowed: bool
    message: str = ""
    patch: Sequence[PatchOperation] = ()
    encoded_patch: str = ""
    """`patch` as the review carries it (base64 of the JSON patch), when already encoded."""

    def encoded_patch_text(self) -> str:
        """`patch` as the review carries it: base64 of the JSON patch ("" if none)."""
        if self.encoded_patch or not self.patch:
            return self.encoded_patch
        ops = [{"op": "replace", "path": p.path, "value": p.value} for p in self.patch]
        return base64.b64encode(dump_json(ops)).decode()

    def to_review(self) -> dict[str, Any]:
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = self.encoded_patch_text()
        if not self.allowed:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": self.message}
        elif self.message:
            response["status"] = {"code": 200, "message": self.message}
        return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


def load_json(data: bytes | str, what: str = "request body") -> Any:
    """Decode JSON (UTF-8, as RFC 8259 requires) or raise InvalidAdmissionReview saying why not.

    msgspec decodes first: what it accepts it reads exactly as `json` does (integers of any
    size stay integers). Whatever it refuses (`NaN`, a lone surrogate, an integer over
    `json`'s digit limit, bad UTF-8) goes to `json`, whose verdict and message stand, so the
    answer is always the standard library's. A document nested deeper than
    nesting.MAX_DEPTH is refused first.
    """
    check_depth(data, what, InvalidAdmissionReview)
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):
        pass  # the standard library reads it, or says why not
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidAdmissionReview(f"{what} is not JSON: it is not UTF-8 ({exc})") from exc
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise InvalidAdmissionReview(f"{what} is nested too deeply to be read") from exc
    except ValueError as exc:  # includes over-long integers
        raise InvalidAdmissionReview(f"{what} is not JSON: {exc}") from exc


def parse_review_body(body: bytes) -> AdmissionRequest:
    return parse_review(load_json(body))


def dump_json(document: Any) -> bytes:
    """`document` as UTF-8 JSON (msgspec; the standard library for what msgspec refuses)."""
    try:
        return _ENCODER.encode(document)
    except (msgspec.EncodeError, TypeError, ValueError):  # a lone surrogate: json escapes it
        return json.dumps(document).encode()


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidAdmissionReview(f"{what} must be an object")
    return value


def _string(data: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidAdmissionReview(f"{what}.{key} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidAdmissionReview(f"{what}.{key} must be a string")
    return value


def parse_review(document: Any) -> AdmissionRequest:
    """Validate an AdmissionReview v1 document and extract what a decision needs, with the
    pod spec of a checked operation's object or the reason it cannot be checked.

    InvalidAdmissionReview for a malformed review, and for a malformed pod spec: only a
    document that did not come from an API server has one.
    """
    # `typed` is None only where tests/unit/test_typed_review.py reads field by field alone.
    read = typed.read(document) if typed is not None else None
    if read is not None:
        return read
    request = _request(document)
    uid = _string(request, "uid", "request")
    gvk = _mapping(request.get("kind"), "request.kind")
    operation = _string(request, "operation", "request")
    if operation not in OPERATIONS:
        raise InvalidAdmissionReview(
            f"request.operation {operation!r} is not one of {', '.join(OPERATIONS)}"
        )
    obj = _object(request, operation)
    metadata = _mapping(obj.get("metadata") or {}, "request.object.metadata") if obj else {}
    namespace = _string(request, "namespace", "request", required=False)
    name = _string(request, "name", "request", required=False)
    group = _string(gvk, "group", "request.kind", required=False)
    version = _string(gvk, "version", "request.kind")
    kind = _string(gvk, "kind", "request.kind")
    namespace = request_namespace(namespace, metadata.get("namespace"))
    name = request_name(name, metadata.get("name"), metadata.get("generateName"))
    owners = owner_refs(metadata.get("ownerReferences"))
    sub_resource = _string(request, "subResource", "request", required=False)
    spec, uncheckable = None, ""
    if obj is not None and operation in CHECKED_OPERATIONS:
        spec, uncheckable = _pod_spec_or_why(obj, group, version, kind)
    return AdmissionRequest(
        uid=uid,
        group=group,
        version=version,
        kind=kind,
        namespace=namespace,
        name=name,
        operation=operation,
        object=obj,
        owners=owners,
        sub_resource=sub_resource,
        spec=spec,
        uncheckable=uncheckable,
    )


def _request(document: Any) -> Mapping[str, Any]:
    """The request of an AdmissionReview v1 document."""
    review = _mapping(document, "AdmissionReview")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        raise InvalidAdmissionReview(
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"{review.get('apiVersion')!r} {review.get('kind')!r}"
        )
    return _mapping(review.get("request"), "request")


def _object(request: Mapping[str, Any], operation: str) -> Mapping[str, Any] | None:
    """The request's object, which a checked operation must have."""
    obj = request.get("object")
    if obj is not None:
        return _mapping(obj, "request.object")
    if operation in CHECKED_OPERATIONS:
        raise InvalidAdmissionReview(f"request.object is required for {operation}")
    return None


def _pod_spec_or_why(
    obj: Mapping[str, Any], group: str, version: str, kind: str
) -> tuple[PodSpec | None, str]:
    """The pod spec of `obj`, or why it cannot be checked (a kind portieris does not know,
    a container without an image); InvalidAdmissionReview if it is malformed."""
    try:
        return pod_spec(obj, workload_kind(group, version, kind)), ""
    except UncheckableObject as exc:
        return None, str(exc)
