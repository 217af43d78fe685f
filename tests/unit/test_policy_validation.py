"""Policy writes validated at `kubectl apply` (/validate-policy): the pure verdict, the reader
and the answer, then the endpoint over real HTTPS with its limits and metrics."""

import copy
import json
import logging
from typing import Any

import aiohttp
import pytest

from portieris_webhook.admission.policy_write import (
    PolicyWrite,
    parse_policy_write,
    validation_review,
)
from portieris_webhook.admission.review import parse_review
from portieris_webhook.decide.policy_writes import PolicyCheck, judge_policy_write, log_verdict
from portieris_webhook.errors import InvalidAdmissionReview, InvalidPolicy
from portieris_webhook.policy.model import parse_policy_object

from tests.builders import ACCEPT, cluster_policy, image_policy, pod_spec, review, workload
from tests.fixtures.webhook import MAX_BODY, metric_samples, serving

SIGNED_BY = {"simple": {"requirements": [{"type": "signedBy", "keySecret": "release-key"}]}}


def _ip(policy: dict[str, Any], pattern: str = "registry.example.com/team-a/*") -> dict[str, Any]:
    return image_policy("web", "team-a", (pattern, policy))


def _cip(policy: dict[str, Any]) -> dict[str, Any]:
    return cluster_policy("cluster", ("registry.example.com/*", policy))


INVALID: dict[str, dict[str, Any]] = {
    # a typo of a known field, at each level of the trust and simple parts
    "typo enable": _ip({"trust": {"enable": True}}),
    "typo requirement": _ip({"simple": {"requirement": [{"type": "reject"}]}}),
    "typo signedIdentity": _ip(
        {"simple": {"requirements": [{"type": "reject", "signedIdentities": {}}]}}
    ),
    # a field IBM Portieris defines that this webhook does not implement
    "vulnerability": _ip({"vulnerability": {"ICCRVA": {"enabled": True, "account": "1"}}}),
    # wrong types
    "mutateImage string": _ip({"mutateImage": "false"}),
    "trustServer number": _ip({"trust": {"trustServer": 5}}),
    "requirements not a list": _ip({"simple": {"requirements": {"type": "reject"}}}),
    # required fields and values of a closed set
    "signedBy without key": _ip({"simple": {"requirements": [{"type": "signedBy"}]}}),
    "unknown requirement type": _ip({"simple": {"requirements": [{"type": "trustMe"}]}}),
    "unknown identity type": _ip(
        {
            "simple": {
                "requirements": [
                    {"type": "signedBy", "keySecret": "k", "signedIdentity": {"type": "any"}}
                ]
            }
        }
    ),
    "signer without name": _ip({"trust": {"enabled": True, "signerSecrets": [{}]}}),
    # patterns the matcher cannot honour
    "empty tag": _ip({}, pattern="registry.example.com/team-a/web:"),
    "whitespace": _ip({}, pattern="registry.example.com/team a/*"),
    # the sigstore part
    "sigstore typo": _ip({"sigstore": {"authorites": []}}),
    # the object itself
    "unknown top-level field": {**_cip({}), "specs": {}},
    "repositories not a list": {**_cip({}), "spec": {"repositories": {"name": "*"}}},
    "cluster policy typo": _cip({"simpel": {}}),
}


def write(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    kind: dict[str, str] | None = None,
    sub_resource: str = "",
) -> PolicyWrite:
    document = review_of(obj, operation=operation, old=old, kind=kind, sub_resource=sub_resource)
    return parse_policy_write(json.dumps(document).encode())


def review_of(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    kind: dict[str, str] | None = None,
    sub_resource: str = "",
    uid: str = "uid-1",
) -> dict[str, Any]:
    """The AdmissionReview an apiserver sends for a write of `obj` (or of `old`, on DELETE)."""
    shown = obj if obj is not None else old
    assert shown is not None
    document = review(shown, uid=uid, operation=operation)
    request = document["request"]
    if kind is not None:
        request["kind"] = kind
    if shown["kind"] == "ClusterImagePolicy":
        del request["namespace"]  # cluster-scoped: the apiserver sends none
    if obj is None:
        del request["object"]
    if old is not None:
        request["oldObject"] = old
    if sub_resource:
        request["subResource"] = sub_resource
    return document


def parser_message(obj: dict[str, Any]) -> str:
    with pytest.raises(InvalidPolicy) as raised:
        parse_policy_object(obj)
    return str(raised.value)


# ----------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize(
    "obj",
    [
        _ip({}),
        _ip(SIGNED_BY),
        _ip({"trust": {"enabled": True, "signerSecrets": [{"name": "release"}]}}),
        _cip(ACCEPT),
        cluster_policy("empty"),
    ],
    ids=["empty-policy", "signed-by", "trust", "cluster", "no-repositories"],
)
def test_a_valid_policy_is_allowed_on_create_and_update(obj):
    for operation in ("CREATE", "UPDATE"):
        old = copy.deepcopy(obj) if operation == "UPDATE" else None
        verdict = judge_policy_write(write(obj, operation=operation, old=old))
        assert verdict.check is PolicyCheck.VALID and verdict.allowed
        assert verdict.refusal is None and verdict.warnings == ()


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_policy_is_refused_with_the_parsers_message(case):
    obj = INVALID[case]
    expected = parser_message(obj)
    verdict = judge_policy_write(write(obj))
    assert verdict.check is PolicyCheck.INVALID and not verdict.allowed
    assert verdict.refusal == expected
    # an update that makes a valid policy invalid is refused the same way
    valid = _cip({}) if obj["kind"] == "ClusterImagePolicy" else _ip({})
    updated = judge_policy_write(write(obj, operation="UPDATE", old=valid))
    assert updated.check is PolicyCheck.INVALID and updated.refusal == expected


def test_the_message_names_the_object_and_the_field():
    verdict = judge_policy_write(write(INVALID["typo enable"]))
    assert verdict.refusal == (
        "ImagePolicy team-a/web: spec.repositories[0].policy.trust.enable: unknown field "
        "(known fields: enabled, signerSecrets, trustServer)"
    )
    vulnerability = judge_policy_write(write(INVALID["vulnerability"])).refusal
    assert vulnerability is not None
    assert "spec.repositories[0].policy.vulnerability: not implemented by this webhook" in (
        vulnerability
    )


def test_an_invalid_policy_whose_update_changes_only_metadata_is_kept_with_a_warning():
    """A policy stored before validation (or while the webhook was down) can still be
    labelled and lose its finalizers; it keeps denying as before."""
    old = copy.deepcopy(INVALID["vulnerability"])
    old["metadata"]["finalizers"] = ["example.com/hold"]
    new = copy.deepcopy(INVALID["vulnerability"])
    new["metadata"]["labels"] = {"team": "a"}
    verdict = judge_policy_write(write(new, operation="UPDATE", old=old))
    assert verdict.check is PolicyCheck.KEPT_INVALID and verdict.allowed
    assert verdict.refusal is None
    [warning] = verdict.warnings
    assert warning.startswith(parser_message(new)) and "until it is fixed" in warning
    # any change beyond metadata is judged: still invalid, refused
    edited = copy.deepcopy(new)
    edited["spec"]["repositories"].append({"name": "other/*", "policy": {}})
    refused = judge_policy_write(write(edited, operation="UPDATE", old=old))
    assert refused.check is PolicyCheck.INVALID


def test_an_update_without_old_object_is_judged_on_its_own():
    verdict = judge_policy_write(write(INVALID["typo enable"], operation="UPDATE"))
    assert verdict.check is PolicyCheck.INVALID


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_unchecked_even_of_an_invalid_policy(operation):
    verdict = judge_policy_write(write(None, operation=operation, old=INVALID["typo enable"]))
    assert verdict.check is PolicyCheck.UNCHECKED and verdict.allowed
    assert verdict.message == f"operation {operation} not checked"


@pytest.mark.parametrize(
    ("obj", "kind", "sub_resource"),
    [
        (workload("Pod", pod_spec("registry.example.com/team-a/web:1")), None, ""),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}},
            None,
            "",
        ),
        (
            INVALID["typo enable"],
            {"group": "example.com", "version": "v1", "kind": "ImagePolicy"},
            "",
        ),
        (
            INVALID["typo enable"],
            {"group": "portieris.cloud.ibm.com", "version": "v2", "kind": "ImagePolicy"},
            "",
        ),
        (INVALID["typo enable"], None, "status"),
    ],
    ids=["pod", "configmap", "other-group", "other-version", "subresource"],
)
def test_other_kinds_versions_and_subresources_are_allowed_unchecked(obj, kind, sub_resource):
    verdict = judge_policy_write(write(obj, kind=kind, sub_resource=sub_resource))
    assert verdict.check is PolicyCheck.UNCHECKED and verdict.allowed
    assert "is not a policy" in verdict.message


def test_the_name_and_namespace_of_the_request_stand_in_for_missing_metadata():
    obj = _ip({"trust": {"enable": True}})
    obj["metadata"] = {"generateName": "web-"}
    document = review_of(obj)
    document["request"].update(namespace="team-b", name="web-x1")
    verdict = judge_policy_write(parse_policy_write(json.dumps(document).encode()))
    assert verdict.refusal is not None
    assert verdict.refusal.startswith("ImagePolicy team-b/web-x1: ")
    valid = _ip({})
    del valid["metadata"]["namespace"]
    document = review_of(valid)
    assert judge_policy_write(parse_policy_write(json.dumps(document).encode())).allowed


def test_each_write_is_one_line_of_the_decision_log(caplog):
    caplog.set_level(logging.INFO, logger="portieris_webhook.decision")
    for obj in (INVALID["typo enable"], _cip({})):
        read = write(obj)
        log_verdict(read, judge_policy_write(read))
    invalid, valid = (record.getMessage() for record in caplog.records)
    assert invalid.startswith(
        "namespace=team-a object=ImagePolicy/web operation=CREATE result=invalid "
        "reason='ImagePolicy team-a/web: spec.repositories[0].policy.trust.enable: unknown field"
    )
    assert (
        valid
        == "namespace=- object=ClusterImagePolicy/cluster operation=CREATE result=valid reason=''"
    )


# ----------------------------------------------------------------------------- the reader


def test_the_reader_is_admits_reader_plus_the_old_object():
    old = _ip({})
    document = review_of(_ip(SIGNED_BY), operation="UPDATE", old=old)
    read = parse_policy_write(json.dumps(document).encode())
    assert read.request == parse_review(document)
    assert read.old_object == old


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not JSON"),
        (b"[" * 200 + b"]" * 200, "nested deeper than 100 levels"),
        (
            json.dumps(review_of(_ip({})))
            .replace('"spec"', '"deep": ' + "[" * 150 + "]" * 150 + ', "spec"', 1)
            .encode(),
            "nested deeper than 100 levels",
        ),
        (json.dumps({"kind": "AdmissionReview"}).encode(), "expected apiVersion"),
        (
            json.dumps(review_of(None, operation="UPDATE", old=_ip({}))).encode(),
            "request.object is required for UPDATE",
        ),
    ],
    ids=["not-json", "nested", "nested-in-policy", "not-a-review", "update-without-object"],
)
def test_malformed_reviews_are_refused_as_admit_refuses_them(body, message):
    with pytest.raises(InvalidAdmissionReview, match=message):
        parse_policy_write(body)


def test_an_old_object_that_is_not_an_object_is_refused():
    document = review_of(_ip({}), operation="UPDATE")
    document["request"]["oldObject"] = ["not", "an", "object"]
    with pytest.raises(InvalidAdmissionReview, match=r"request\.oldObject must be an object"):
        parse_policy_write(json.dumps(document).encode())


# ----------------------------------------------------------------------------- the answer


def test_the_answer_refuses_as_kubernetes_validation_does():
    assert validation_review("u", "ImagePolicy a/b: spec.x: unknown field") == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "u",
            "allowed": False,
            "status": {
                "status": "Failure",
                "code": 422,
                "reason": "Invalid",
                "message": "ImagePolicy a/b: spec.x: unknown field",
            },
        },
    }
    assert validation_review("u")["response"] == {"uid": "u", "allowed": True}
    kept = validation_review("u", None, ["still invalid"])["response"]
    assert kept == {"uid": "u", "allowed": True, "warnings": ["still invalid"]}
    error = validation_review("u", "boom", internal_error=True)["response"]["status"]
    assert (error["code"], error["reason"]) == (500, "InternalError")


# ----------------------------------------------------------------------------- the endpoint


@pytest.fixture
async def served(tmp_path):
    async with serving(tmp_path) as served:
        yield served


async def post(served, body, path="/validate-policy"):
    connector = aiohttp.TCPConnector(ssl=served.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        # kube-apiserver calls webhooks with a query (?timeout=10s): the path alone routes.
        async with session.post(f"{served.url}{path}?timeout=10s", data=body) as resp:
            return resp.status, await resp.json()


async def test_the_endpoint_answers_valid_invalid_kept_and_unchecked_writes(served):
    valid = review_of(_ip(SIGNED_BY), uid="u-valid")
    status, answer = await post(served, json.dumps(valid))
    assert status == 200 and answer["response"] == {"uid": "u-valid", "allowed": True}

    invalid = review_of(INVALID["vulnerability"], uid="u-invalid")
    status, answer = await post(served, json.dumps(invalid))
    assert status == 200 and answer["response"]["uid"] == "u-invalid"
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"] == {
        "status": "Failure",
        "code": 422,
        "reason": "Invalid",
        "message": parser_message(INVALID["vulnerability"]),
    }

    relabelled = copy.deepcopy(INVALID["vulnerability"])
    relabelled["metadata"]["labels"] = {"a": "b"}
    kept = review_of(relabelled, operation="UPDATE", old=INVALID["vulnerability"], uid="u-kept")
    status, answer = await post(served, json.dumps(kept))
    assert answer["response"]["allowed"] is True and "warnings" in answer["response"]

    deleted = review_of(None, operation="DELETE", old=INVALID["vulnerability"], uid="u-del")
    status, answer = await post(served, json.dumps(deleted))
    assert answer["response"] == {"uid": "u-del", "allowed": True}
    pod = review(workload("Pod", pod_spec("other/app:1")), uid="u-pod")
    status, answer = await post(served, json.dumps(pod))
    assert answer["response"] == {"uid": "u-pod", "allowed": True}

    samples = await metric_samples(served)
    assert samples['portieris_policy_validations_total{result="valid"}'] == 1
    assert samples['portieris_policy_validations_total{result="invalid"}'] == 1
    assert samples['portieris_policy_validations_total{result="kept_invalid"}'] == 1
    assert samples['portieris_policy_validations_total{result="unchecked"}'] == 2
    assert samples['portieris_policy_validations_total{result="error"}'] == 0
    # a policy write is no pod admission
    assert samples["portieris_pod_admission_decision_allow_count"] == 0
    assert samples["portieris_pod_admission_decision_deny_count"] == 0


def huge_policy(size):
    """A valid ClusterImagePolicy review of many repositories, padded to exactly `size` bytes."""
    rules = [(f"registry.example.com/team-{i:07d}/*", {}) for i in range(size // 70)]
    body = json.dumps(review_of(cluster_policy("huge", *rules))).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def test_the_endpoint_reads_a_body_up_to_the_limit_and_refuses_beyond(served):
    status, answer = await post(served, huge_policy(MAX_BODY))
    assert status == 200 and answer["response"]["allowed"] is True
    status, answer = await post(served, huge_policy(MAX_BODY) + b" ")
    assert status == 400 and f"larger than {MAX_BODY} bytes" in answer["error"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,
        json.dumps(review_of(_ip({})))
        .replace('"spec"', '"deep": ' + "{" * 20_000 + "}" * 20_000 + ', "spec"', 1)
        .encode(),
    ],
    ids=["arrays", "inside-a-policy"],
)
async def test_the_endpoint_refuses_deeply_nested_bodies_with_400(served, body):
    status, answer = await post(served, body)
    assert status == 400 and "nested deeper than 100 levels" in answer["error"]
    samples = await metric_samples(served)
    assert samples["portieris_admission_bad_requests_total"] == 1
    assert samples['portieris_policy_validations_total{result="invalid"}'] == 0


async def test_the_endpoint_refuses_malformed_reviews_and_other_methods(served):
    status, answer = await post(served, json.dumps({"kind": "AdmissionReview"}))
    assert status == 400 and "malformed AdmissionReview: expected apiVersion" in answer["error"]
    connector = aiohttp.TCPConnector(ssl=served.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{served.url}/validate-policy") as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "POST"


async def test_an_internal_error_refuses_with_a_readable_500_status_not_a_500_answer(
    served, monkeypatch
):
    def explode(_write):
        raise RuntimeError("parser exploded")

    monkeypatch.setattr("portieris_webhook.serving.server.judge_policy_write", explode)
    status, answer = await post(served, json.dumps(review_of(_ip({}), uid="u-x")))
    assert status == 200 and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 500
    assert (
        "internal error: RuntimeError('parser exploded')"
        in (answer["response"]["status"]["message"])
    )
    samples = await metric_samples(served)
    assert samples['portieris_policy_validations_total{result="error"}'] == 1
