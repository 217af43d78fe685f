"""AdmissionReview parsing and responses; where each workload keeps its images."""

import base64
import json

import pytest

from portieris_webhook.admission.review import AdmissionResponse, PatchOperation, parse_review
from portieris_webhook.admission.workloads import pod_spec, workload_kind
from portieris_webhook.errors import InvalidAdmissionReview, UncheckableObject

from tests.builders import GROUP_OF, review, workload
from tests.builders import pod_spec as spec_of


@pytest.mark.parametrize("kind", sorted(GROUP_OF))
def test_every_workload_kind_yields_its_images_with_pointers(kind):
    obj = workload(kind, spec_of("app:1", init=("init:1",), ephemeral=("debug:1",)))
    request = parse_review(review(obj))
    spec = pod_spec(request.object, workload_kind(request.group, request.version, request.kind))
    prefix = {"Pod": "/spec", "CronJob": "/spec/jobTemplate/spec/template/spec"}.get(
        kind, "/spec/template/spec"
    )
    assert [(c.image, c.pointer) for c in spec.images] == [
        ("init:1", f"{prefix}/initContainers/0/image"),
        ("app:1", f"{prefix}/containers/0/image"),
        ("debug:1", f"{prefix}/ephemeralContainers/0/image"),
    ]


@pytest.mark.parametrize(
    ("group", "version", "kind", "message"),
    [
        ("apps", "v1beta1", "Deployment", "version v1beta1 is not supported"),
        ("batch", "v1beta1", "CronJob", "version v1beta1 is not supported"),
        ("", "v1", "Service", "not a workload portieris checks"),
        ("example.com", "v1", "Pod", "not a workload portieris checks"),
    ],
)
def test_unsupported_kinds_are_named(group, version, kind, message):
    with pytest.raises(UncheckableObject, match=message):
        workload_kind(group, version, kind)


def test_pull_secrets_and_service_account_are_read():
    obj = workload("Deployment", spec_of("a", pull_secrets=("s1", "s2"), service_account="sa"))
    spec = pod_spec(obj, workload_kind("apps", "v1", "Deployment"))
    assert spec.image_pull_secrets == ("s1", "s2") and spec.service_account == "sa"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o["spec"].pop("template"), "has no spec.template.spec"),
        (lambda o: o["spec"]["template"]["spec"].update(containers={}), "containers is not a list"),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"].append("x"),
            r"containers\[1\] is not an object",
        ),
    ],
)
def test_malformed_pod_specs_are_explained(mutate, message):
    obj = workload("Deployment", spec_of("a"))
    mutate(obj)
    with pytest.raises(InvalidAdmissionReview, match=message):
        pod_spec(obj, workload_kind("apps", "v1", "Deployment"))


def test_review_fields_are_extracted():
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1"}
    request = parse_review(review(workload("Pod", spec_of("a"), namespace="ns", owners=[owner])))
    assert (request.uid, request.group, request.version, request.kind) == ("uid-1", "", "v1", "Pod")
    assert (request.namespace, request.name, request.operation) == ("ns", "demo", "CREATE")
    assert request.owners[0].group == "apps" and request.owners[0].uid == "u-1"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "AdmissionReview must be an object"),
        (
            {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"},
            "expected apiVersion",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            "request must be an object",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}},
            "request.uid is required",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u",
                    "kind": {"version": "v1", "kind": "Pod"},
                    "operation": "CREATE",
                },
            },
            "request.object is required",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 5}},
            "request.uid must be a string",
        ),
    ],
)
def test_malformed_reviews_are_explained(document, message):
    with pytest.raises(InvalidAdmissionReview, match=message):
        parse_review(document)


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE", "CONNECT"])
def test_every_admission_operation_is_accepted(operation):
    assert parse_review(review(workload("Pod", spec_of("a")), operation=operation)).operation == (
        operation
    )


@pytest.mark.parametrize("operation", ["create", "PATCH", "Create", "CREATE ", "", "GET", 5])
def test_an_unknown_operation_is_malformed(operation):
    document = review(workload("Pod", spec_of("a")))
    document["request"]["operation"] = operation
    with pytest.raises(InvalidAdmissionReview, match=r"request\.operation"):
        parse_review(document)


def test_malformed_owner_reference_is_explained():
    obj = workload("Pod", spec_of("a"), owners=[{"kind": "ReplicaSet", "name": "x"}])
    with pytest.raises(InvalidAdmissionReview, match=r"ownerReferences\[0\].apiVersion"):
        parse_review(review(obj))


def test_allow_response_with_patch_echoes_uid():
    out = AdmissionResponse(
        "u-9", True, patch=(PatchOperation("/spec/containers/0/image", "a@sha256:x"),)
    )
    response = out.to_review()["response"]
    assert response["uid"] == "u-9" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "a@sha256:x"}
    ]


def test_deny_response_carries_message_and_no_patch():
    response = AdmissionResponse("u", False, "image x: no policy").to_review()
    assert response["apiVersion"] == "admission.k8s.io/v1" and response["kind"] == "AdmissionReview"
    assert response["response"]["status"] == {
        "code": 403,
        "reason": "Forbidden",
        "message": "image x: no policy",
    }
    assert "patch" not in response["response"]
