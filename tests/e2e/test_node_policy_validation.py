"""On a real node: the chart's ValidatingWebhookConfiguration reaches the webhook's pods through
the chart's Service and CA bundle, and `kubectl apply` of a policy with a typo is refused with
the parser's message while a valid one is stored."""

from __future__ import annotations

import urllib.request

import pytest
import yaml

from .conftest import Cluster
from .node_fixtures import Release
from .test_node_admission import webhook_pods
from tests.builders import image_policy

pytestmark = pytest.mark.e2e

DENIED = 'admission webhook "policies.portieris.cloud.ibm.com" denied the request: '


def validations(release: Release, result: str) -> float:
    """`portieris_policy_validations_total{result}` summed over the webhook's pods."""
    total = 0.0
    for pod in webhook_pods(release):
        url = f"http://{pod['status']['podIP']}:8080/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(f'portieris_policy_validations_total{{result="{result}"}}'):
                    total += float(line.rsplit(" ", 1)[1])
    return total


def test_kubectl_apply_refuses_a_typo_with_the_parsers_message_and_stores_a_valid_policy(
    portieris: Release, node_ns: Cluster
) -> None:
    invalid_before = validations(portieris, "invalid")
    typo = image_policy(
        "web", node_ns.namespace, ("registry.example.com/*", {"trust": {"enable": True}})
    )
    refused = node_ns.apply(typo)
    assert refused.returncode != 0
    assert (
        f"{DENIED}ImagePolicy {node_ns.namespace}/web: spec.repositories[0].policy.trust.enable: "
        "unknown field (known fields: enabled, signerSecrets, trustServer)"
    ) in refused.stderr, refused.stderr
    missing = node_ns.plane.kubectl("get", "imagepolicy", "web", "-n", node_ns.namespace)
    assert missing.returncode != 0
    assert validations(portieris, "invalid") == invalid_before + 1

    valid = image_policy(
        "web", node_ns.namespace, ("registry.example.com/*", {"trust": {"enabled": True}})
    )
    stored = node_ns.apply(valid)
    assert stored.returncode == 0, stored.stderr
    assert node_ns.get("imagepolicy", "web")["spec"] == valid["spec"]
    rendered = yaml.safe_dump(valid)  # the same again: an unchanged write is valid too
    again = node_ns.plane.kubectl("apply", "-n", node_ns.namespace, "-f", "-", input=rendered)
    assert again.returncode == 0, again.stderr
