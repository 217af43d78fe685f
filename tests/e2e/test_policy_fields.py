"""End to end: a policy field the webhook cannot honour reaches it through the real apiserver.

With a purely structural CRD schema the apiserver prunes fields it does not
know, silently for every client that does not ask for strict field validation
(helm, client libraries, `kubectl apply --validate=false`), and also when it
reads back objects stored under another schema (IBM Portieris' CRD). A pruned
`requirement:` or `vulnerability:` would leave an allow-everything rule. The
chart's CRDs keep unknown fields in the policy part, so the webhook sees them
and denies the images the policy governs, naming the field.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import Cluster
from .test_cluster_admission import eventually, k8s_workload
from tests.builders import image_policy

pytestmark = pytest.mark.e2e

IMAGE = "registry.invalid/team/app:1.0"

CASES: dict[str, tuple[dict[str, Any], str]] = {
    "vulnerability": (
        {"vulnerability": {"ICCRVA": {"enabled": True, "account": "123"}}},
        "policy.vulnerability: not implemented by this webhook",
    ),
    "requirement typo": (
        {"simple": {"requirement": [{"type": "reject"}]}},
        "policy.simple.requirement: unknown field",
    ),
}


def stored_policy(cluster: Cluster) -> dict[str, Any]:
    return cluster.get("imagepolicy", "policy")["spec"]["repositories"][0]["policy"]


@pytest.mark.parametrize("validate", ["false", "strict"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_unhonoured_field_is_kept_by_the_apiserver_and_denies_naming_it(
    cluster: Cluster, case: str, validate: str
) -> None:
    policy, named = CASES[case]
    obj = image_policy("policy", cluster.namespace, ("registry.invalid/*", policy))
    cluster.plane.kubectl(
        "apply",
        f"--validate={validate}",
        "-n",
        cluster.namespace,
        "-f",
        "-",
        input=yaml.safe_dump(obj),
        check=True,
    )
    assert stored_policy(cluster) == policy

    def denied_naming_the_field() -> bool:
        result = cluster.create(k8s_workload("Pod", IMAGE))
        return result.returncode != 0 and named in result.stderr

    assert eventually(denied_naming_the_field)
    result = cluster.create(k8s_workload("Pod", IMAGE))
    assert "ImagePolicy" in result.stderr and f"{cluster.namespace}/policy" in result.stderr
