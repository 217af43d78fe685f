"""The common case of an AdmissionReview read in one typed pass (msgspec.convert).

A review from an API server that creates or updates a workload portieris checks has one
shape; msgspec converts the decoded document into the structs below in compiled code, and
`read` builds from them what review.parse_review would (the request with its pod spec),
with the same defaulting helpers (request_namespace, request_name, service_account, the
JSON pointers of workloads.py) and the same reading of owner references
(owners.owner_refs). Anything else (another operation or kind, a field of the wrong type,
a required field missing, a container without an image) makes `read` return None, and the
field-by-field reader decides, with its own messages: so the typed pass never changes an
answer, it only skips work when there is nothing to say (tests/unit/test_typed_review.py
checks both agree).
"""

from __future__ import annotations

from typing import Any

import msgspec

from portieris_webhook.admission.owners import owner_refs
from portieris_webhook.admission.request import (
    API_VERSION,
    CHECKED_OPERATIONS,
    KIND,
    AdmissionRequest,
    request_name,
    request_namespace,
)
from portieris_webhook.admission.workloads import (
    CONTAINER_FIELDS,
    PodImage,
    PodSpec,
    WorkloadKind,
    container_image_pointer,
    service_account,
    volume_image_pointer,
    workload_kind,
)
from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject


class _Container(msgspec.Struct):
    name: str | None = None
    image: str | None = None


class _ImageSource(msgspec.Struct):
    reference: str | None = None


class _Volume(msgspec.Struct):
    name: str | None = None
    image: _ImageSource | None = None


class _Named(msgspec.Struct):
    name: str | None = None


class _PodSpec(msgspec.Struct):
    initContainers: list[_Container] | None = None
    containers: list[_Container] | None = None
    ephemeralContainers: list[_Container] | None = None
    volumes: list[_Volume] | None = None
    imagePullSecrets: list[_Named] | None = None
    serviceAccountName: str | None = None
    serviceAccount: str | None = None


class _Template(msgspec.Struct):
    spec: _PodSpec | None = None


class _JobSpec(msgspec.Struct):
    template: _Template | None = None


class _JobTemplate(msgspec.Struct):
    spec: _JobSpec | None = None


class _ObjectSpec(_PodSpec):
    """A Pod's spec, or the spec of a workload holding a pod template (or a job template)."""

    template: _Template | None = None
    jobTemplate: _JobTemplate | None = None


class _Metadata(msgspec.Struct):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None


class _Object(msgspec.Struct):
    metadata: _Metadata | None = None
    spec: _ObjectSpec | None = None


class _Kind(msgspec.Struct):
    group: str | None = None
    version: str | None = None
    kind: str | None = None


class _Request(msgspec.Struct):
    uid: str | None = None
    kind: _Kind | None = None
    namespace: str | None = None
    name: str | None = None
    operation: str | None = None
    subResource: str | None = None
    object: _Object | None = None


class _Review(msgspec.Struct):
    apiVersion: str | None = None
    kind: str | None = None
    request: _Request | None = None


class _Unread(Exception):
    """The typed pass stops: the field-by-field reader decides."""


def read(document: Any) -> AdmissionRequest | None:
    """The request of a well-formed review creating or updating a checked workload, with
    its pod spec; None for anything else."""
    if type(document) is not dict:
        return None
    try:
        review = msgspec.convert(document, _Review)
    except msgspec.ValidationError:
        return None
    request = review.request
    if review.apiVersion != API_VERSION or review.kind != KIND or request is None:
        return None
    gvk, obj = request.kind, request.object
    if (
        not request.uid
        or request.operation not in CHECKED_OPERATIONS
        or obj is None
        or gvk is None
        or not gvk.version
        or not gvk.kind
    ):
        return None
    raw_object = document["request"]["object"]
    # The owner references are read from the document, by the field-by-field reader's helper.
    raw_owners = raw_object["metadata"].get("ownerReferences") if obj.metadata else None
    metadata = obj.metadata or _Metadata()
    group = gvk.group or ""
    try:
        owners = owner_refs(raw_owners)
        spec = _pod_spec(obj, workload_kind(group, gvk.version, gvk.kind))
    except (InvalidAdmissionReview, UncheckableObject, _Unread):
        return None
    return AdmissionRequest(
        uid=request.uid,
        group=group,
        version=gvk.version,
        kind=gvk.kind,
        namespace=request_namespace(request.namespace, metadata.namespace),
        name=request_name(request.name, metadata.name, metadata.generateName),
        operation=request.operation,
        object=raw_object,
        owners=owners,
        sub_resource=request.subResource or "",
        spec=spec,
    )


def _pod_spec(obj: _Object, workload: WorkloadKind) -> PodSpec:
    spec = _at_path(obj, workload.pod_spec_path)
    pointer = workload.pod_spec_pointer
    images = []
    for field in CONTAINER_FIELDS:
        for index, container in enumerate(getattr(spec, field) or ()):
            if not container.image:
                raise _Unread
            images.append(PodImage(container.image, container_image_pointer(pointer, field, index)))
    for index, volume in enumerate(spec.volumes or ()):
        if volume.image is None:
            continue
        if not volume.image.reference:
            raise _Unread
        images.append(PodImage(volume.image.reference, volume_image_pointer(pointer, index)))
    secrets = tuple(ref.name for ref in spec.imagePullSecrets or () if ref.name)
    account = service_account(spec.serviceAccountName, spec.serviceAccount)
    return PodSpec(tuple(images), secrets, account)


def _at_path(obj: _Object, path: tuple[str, ...]) -> _PodSpec:
    """The pod spec at `path` (`spec`, `spec.template.spec` or
    `spec.jobTemplate.spec.template.spec`)."""
    node: Any = obj
    for step in path:
        node = getattr(node, step, None)
        if node is None:
            raise _Unread
    if not isinstance(node, _PodSpec):
        raise _Unread
    return node
