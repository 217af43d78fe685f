"""The chart's `platform` values (written by the StarlingX application's helm plugin as system
overrides) and the StarlingX component label the application's lifecycle reads.

Operators set TrustedCACert, webHooks.excludedNamespaces and webHooks.failurePolicy; sysinv merges
their user overrides over the plugin's system overrides, so the plugin writes its own values
beside them instead of over them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .test_chart import (
    CHART,
    NS,
    arg_values,
    one,
    render,
    render_error,
    run_helm,
    webhook,
)

PEM_A = "-----BEGIN CERTIFICATE-----\nMIIBplatformA\n-----END CERTIFICATE-----\n"
PEM_B = "-----BEGIN CERTIFICATE-----\nMIIBoperatorB\n-----END CERTIFICATE-----\n"
NAME_KEY = "kubernetes.io/metadata.name"


def excluded(docs: list[dict[str, Any]]) -> list[str]:
    selector = webhook(docs).get("namespaceSelector") or {}
    (expression,) = [e for e in selector.get("matchExpressions", []) if e["key"] == NAME_KEY]
    assert expression["operator"] == "NotIn"
    return list(expression["values"])


def trusted_ca(docs: list[dict[str, Any]]) -> str:
    (value,) = one(docs, "ConfigMap", "portieris-trusted-ca")["data"].values()
    return str(value)


def checksum(docs: list[dict[str, Any]]) -> str:
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return str(annotations["checksum/trusted-ca"])


def test_platform_ca_bundle_is_the_trusted_bundle_and_replaces_trusted_ca_cert() -> None:
    # The plugin's bundle already holds the operator's TrustedCACert certificates (decoded,
    # checked and deduplicated), so it is used alone when set.
    docs = render({"TrustedCACert": PEM_B, "platform": {"trustedCACerts": PEM_A + PEM_B}})
    assert trusted_ca(docs).strip() == (PEM_A + PEM_B).strip()
    assert arg_values(docs, "ca-file")


def test_trusted_ca_cert_is_used_when_the_platform_gives_no_bundle() -> None:
    docs = render({"TrustedCACert": PEM_B, "platform": {"trustedCACerts": ""}})
    assert trusted_ca(docs).strip() == PEM_B.strip()


def test_platform_ca_bundle_alone_mounts_the_ca_file() -> None:
    docs = render({"platform": {"trustedCACerts": PEM_A}})
    assert trusted_ca(docs).strip() == PEM_A.strip()
    assert arg_values(docs, "ca-file")


def test_pods_restart_when_the_platform_ca_bundle_changes() -> None:
    first = checksum(render({"platform": {"trustedCACerts": PEM_A}}))
    assert checksum(render({"platform": {"trustedCACerts": PEM_A + PEM_B}})) != first


def test_platform_namespaces_join_the_operators_and_the_release_namespace() -> None:
    docs = render(
        {
            "webHooks": {"excludedNamespaces": ["team-tools"]},
            "platform": {"excludedNamespaces": ["kube-system", "cert-manager", NS]},
        }
    )
    assert excluded(docs) == [NS, "team-tools", "kube-system", "cert-manager"]


def test_operator_exclusions_do_not_drop_the_platform_namespaces() -> None:
    # sysinv's merge replaces lists: an operator's list must add to the platform's, not replace it.
    docs = render(
        {
            "webHooks": {"excludedNamespaces": []},
            "platform": {"excludedNamespaces": ["kube-system"]},
        }
    )
    assert "kube-system" in excluded(docs)


def test_platform_failure_policy_takes_precedence_while_set() -> None:
    values = {"webHooks": {"failurePolicy": "Fail"}, "platform": {"failurePolicy": "Ignore"}}
    assert webhook(render(values))["failurePolicy"] == "Ignore"


def test_empty_platform_failure_policy_leaves_the_operators() -> None:
    values = {"webHooks": {"failurePolicy": "Ignore"}, "platform": {"failurePolicy": ""}}
    assert webhook(render(values))["failurePolicy"] == "Ignore"
    assert webhook(render({"platform": {"failurePolicy": ""}}))["failurePolicy"] == "Fail"


@pytest.mark.parametrize("component", ["platform", "application"])
def test_starlingx_component_label_value_is_accepted(component: str) -> None:
    assert render({"app.starlingx.io/component": component})


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"platform": {"failurePolicy": "Never"}}, "failurePolicy"),
        ({"platform": {"excludedNamespaces": [""]}}, "excludedNamespaces"),
        ({"platform": {"trustedCACerts": 3}}, "trustedCACerts"),
        ({"platform": {"caBundle": PEM_A}}, "caBundle"),
        ({"app.starlingx.io/component": "cheap"}, "component"),
    ],
)
def test_values_schema_rejects_platform_mistakes(values: dict[str, Any], complaint: str) -> None:
    assert complaint in render_error(values)


def test_helm_lint_strict_passes_with_platform_values() -> None:
    values = {
        "app.starlingx.io/component": "application",
        "platform": {
            "trustedCACerts": PEM_A,
            "excludedNamespaces": ["kube-system"],
            "failurePolicy": "Ignore",
        },
    }
    proc = run_helm("lint", "--strict", str(CHART), values=values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
