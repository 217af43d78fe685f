"""The chart's ValidatingWebhookConfiguration: writes to the two CRDs sent to the webhook's
/validate-policy (which refuses an invalid policy at `kubectl apply`), through the Service and
CA bundle of the MutatingWebhookConfiguration, failing open, and switched off by a value."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from portieris_webhook.serving.server import POLICY_VALIDATION_PATH

from .test_chart import CHART, GROUP, kinds, one, render, render_error

NAME = "portieris-policy-validation"


def validation(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (hook,) = one(docs, "ValidatingWebhookConfiguration", NAME)["webhooks"]
    return dict(hook)


def mutation(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    return dict(hook)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render(namespace="secure")


def test_writes_to_both_policy_kinds_go_to_the_validation_endpoint(
    docs: list[dict[str, Any]],
) -> None:
    crds = [yaml.safe_load(path.read_text()) for path in sorted((CHART / "crds").glob("*.yaml"))]
    hook = validation(docs)
    (rule,) = hook["rules"]
    assert {**rule, "resources": sorted(rule["resources"])} == {
        "apiGroups": [GROUP],
        "apiVersions": [v["name"] for v in crds[0]["spec"]["versions"] if v["served"]],
        "resources": sorted(crd["spec"]["names"]["plural"] for crd in crds),
        "operations": ["CREATE", "UPDATE"],
        "scope": "*",
    }
    assert {crd["spec"]["group"] for crd in crds} == {GROUP}
    assert hook["name"] == "policies.portieris.cloud.ibm.com"
    assert (hook["sideEffects"], hook["admissionReviewVersions"]) == ("None", ["v1"])
    assert hook["matchPolicy"] == "Equivalent"
    assert "namespaceSelector" not in hook and "objectSelector" not in hook


def test_same_service_port_and_ca_bundle_as_the_mutating_webhook(
    docs: list[dict[str, Any]],
) -> None:
    client, mutating = validation(docs)["clientConfig"], mutation(docs)["clientConfig"]
    assert client["service"] == {**mutating["service"], "path": POLICY_VALIDATION_PATH}
    assert client["service"]["namespace"] == "secure"
    assert client["caBundle"] == mutating["caBundle"]
    secret = one(docs, "Secret", "portieris-certs")
    assert base64.b64decode(client["caBundle"]) == base64.b64decode(secret["data"]["ca.crt"])
    other_port = validation(render({"service": {"port": 8443}}))["clientConfig"]["service"]
    assert other_port["port"] == 8443


def test_it_fails_open_and_waits_briefly(docs: list[dict[str, Any]]) -> None:
    """Ignore: a policy written while no replica answers is stored unchecked and, if invalid,
    denies as it would without validation; with Fail, helm could not create the chart's own
    policies before its pods run. Ignore whatever webHooks.failurePolicy says."""
    assert validation(docs)["failurePolicy"] == "Ignore"
    assert validation(docs)["timeoutSeconds"] == 5
    strict = render({"webHooks": {"failurePolicy": "Fail"}, "platform": {"failurePolicy": "Fail"}})
    assert validation(strict)["failurePolicy"] == "Ignore"


def test_cert_manager_injects_the_ca_bundle() -> None:
    docs = render({"UseCertManager": True}, namespace="secure")
    configuration = one(docs, "ValidatingWebhookConfiguration", NAME)
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "secure/portieris-certs"
    }
    assert "caBundle" not in validation(docs)["clientConfig"]


def test_generated_certificates_give_the_ca_bundle() -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    values = {"UseGeneratedCerts": {"enabled": True, "tlsCert": "c", "tlsKey": "k", "caCert": ca}}
    docs = render(values)
    assert base64.b64decode(validation(docs)["clientConfig"]["caBundle"]).decode() == ca
    assert "annotations" not in one(docs, "ValidatingWebhookConfiguration", NAME)["metadata"]


def test_labels_are_the_charts(docs: list[dict[str, Any]]) -> None:
    labels = one(docs, "ValidatingWebhookConfiguration", NAME)["metadata"]["labels"]
    assert labels == one(docs, "MutatingWebhookConfiguration")["metadata"]["labels"]


def test_policy_validation_can_be_switched_off() -> None:
    docs = render({"policyValidation": {"enabled": False}})
    assert not kinds(docs, "ValidatingWebhookConfiguration")
    assert kinds(docs, "MutatingWebhookConfiguration")


@pytest.mark.parametrize(
    "values",
    [{"policyValidation": {"enabled": "no"}}, {"policyValidation": {"enable": False}}],
    ids=["not-a-boolean", "typo"],
)
def test_values_schema_refuses_mistakes(values: dict[str, Any]) -> None:
    assert "policyValidation" in render_error(values)
