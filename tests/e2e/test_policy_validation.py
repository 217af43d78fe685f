"""End to end: an invalid policy is refused at `kubectl apply` with the parser's message.

The chart's ValidatingWebhookConfiguration, as helm renders it, is registered with the real
kube-apiserver, its Service swapped for the URL of the session's webhook process (no kubelet
runs here; tests/e2e/test_node_policy_validation.py goes through the chart's Service on a real
node). Everything else is the chart's: rules, failure policy, timeout, path.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from .conftest import Cluster, Webhook
from .controlplane import ControlPlane
from .release import CHART, RELEASE_NS
from .test_cluster_admission import eventually
from tests.builders import cluster_policy, image_policy

pytestmark = pytest.mark.e2e

HOOK = "policies.portieris.cloud.ibm.com"
DENIED = f'admission webhook "{HOOK}" denied the request: '
TYPO = {"trust": {"enable": True}}
TYPO_MESSAGE = (
    "spec.repositories[0].policy.trust.enable: unknown field "
    "(known fields: enabled, signerSecrets, trustServer)"
)
VULNERABILITY = {"vulnerability": {"ICCRVA": {"enabled": True, "account": "123"}}}


def chart_configuration(plane: ControlPlane, webhook: Webhook) -> dict[str, Any]:
    rendered = plane.helm(
        "template", "portieris", str(CHART), "--namespace", RELEASE_NS,
        "--show-only", "templates/validatingwebhookconfiguration.yaml", check=True,
    )  # fmt: skip
    config: dict[str, Any] = yaml.safe_load(rendered.stdout)
    config["metadata"] = {"name": "e2e-policy-validation"}
    (hook,) = config["webhooks"]
    path = hook["clientConfig"]["service"]["path"]
    hook["clientConfig"] = {
        "url": f"{webhook.url}{path}",
        "caBundle": base64.b64encode(webhook.ca.cert_pem).decode(),
    }
    return config


def dry_run(plane: ControlPlane, obj: dict[str, Any]) -> bool:
    """Whether the apiserver would store `obj` now (nothing is stored)."""
    args = ("apply", "--dry-run=server", "-f", "-")
    return plane.kubectl(*args, input=yaml.safe_dump(obj)).returncode == 0


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout} s")
        time.sleep(0.2)


class Validation:
    """The chart's validating configuration, registered and removed on demand: the apiserver
    takes a moment to see either, so each waits until a dry run of an invalid policy says so."""

    def __init__(self, plane: ControlPlane, webhook: Webhook) -> None:
        self.plane, self.config = plane, chart_configuration(plane, webhook)
        self.probe = cluster_policy("e2e-validation-probe", ("*", TYPO))

    def register(self) -> None:
        self.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(self.config), check=True)
        wait_until(lambda: not dry_run(self.plane, self.probe), "validating")

    def remove(self) -> None:
        name = self.config["metadata"]["name"]
        self.plane.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        wait_until(lambda: dry_run(self.plane, self.probe), "no longer validating")


@pytest.fixture
def validation(control_plane: ControlPlane, webhook: Webhook) -> Iterator[Validation]:
    """Registered for one test only: other tests store invalid policies on purpose."""
    registered = Validation(control_plane, webhook)
    registered.register()
    try:
        yield registered
    finally:
        registered.remove()


def apply(cluster: Cluster, obj: dict[str, Any], *args: str) -> tuple[int, str]:
    result = cluster.plane.kubectl("apply", *args, "-f", "-", input=yaml.safe_dump(obj))
    return result.returncode, result.stdout + result.stderr


def stored(cluster: Cluster, kind: str, name: str, namespaced: bool = True) -> dict[str, Any]:
    args = ["get", kind, name, "-o", "json"] + (["-n", cluster.namespace] if namespaced else [])
    result = cluster.plane.kubectl(*args)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def test_a_typo_is_refused_at_apply_with_the_parsers_message_and_nothing_is_stored(
    validation: Validation, cluster: Cluster
) -> None:
    policy = image_policy("web", cluster.namespace, ("registry.example.com/team-a/web", TYPO))
    for dry in ((), ("--dry-run=server",)):
        code, output = apply(cluster, policy, *dry)
        assert code != 0
        assert f"{DENIED}ImagePolicy {cluster.namespace}/web: {TYPO_MESSAGE}" in output, output
        assert output.startswith("The request is invalid: error when creating"), output
    assert stored(cluster, "imagepolicy", "web") == {}


def test_ibm_portieris_vulnerability_part_is_refused_naming_it(
    validation: Validation, cluster: Cluster
) -> None:
    policy = image_policy("ibm", cluster.namespace, ("icr.io/team/*", VULNERABILITY))
    code, output = apply(cluster, policy)
    assert code != 0
    assert (
        f"{DENIED}ImagePolicy {cluster.namespace}/ibm: spec.repositories[0].policy.vulnerability: "
        "not implemented by this webhook"
    ) in output, output
    cluster_wide = cluster_policy(f"{cluster.namespace}-ibm", ("icr.io/team/*", VULNERABILITY))
    try:
        code, output = apply(cluster, cluster_wide)
        assert code != 0 and f"{DENIED}ClusterImagePolicy {cluster.namespace}-ibm: " in output
    finally:  # stored by mistake, it would deny in every namespace of the other tests
        name = cluster_wide["metadata"]["name"]
        cluster.plane.kubectl("delete", "clusterimagepolicy", name, "--ignore-not-found")


def test_a_valid_policy_is_stored_and_an_update_that_breaks_it_is_refused(
    validation: Validation, cluster: Cluster
) -> None:
    signed = {"simple": {"requirements": [{"type": "signedBy", "keySecret": "release-key"}]}}
    policy = image_policy("web", cluster.namespace, ("registry.example.com/team-a/*", signed))
    code, output = apply(cluster, policy)
    assert code == 0, output
    assert stored(cluster, "imagepolicy", "web")["spec"] == policy["spec"]

    broken = copy.deepcopy(policy)
    broken["spec"]["repositories"][0]["policy"]["mutateImages"] = False  # for mutateImage
    code, output = apply(cluster, broken)
    assert code != 0
    assert f"{DENIED}ImagePolicy {cluster.namespace}/web: " in output
    assert "spec.repositories[0].policy.mutateImages: unknown field" in output
    assert stored(cluster, "imagepolicy", "web")["spec"] == policy["spec"]  # unchanged
    deleted = cluster.plane.kubectl("delete", "imagepolicy", "web", "-n", cluster.namespace)
    assert deleted.returncode == 0, deleted.stderr


def test_a_policy_stored_invalid_before_keeps_denying_can_be_labelled_and_deleted(
    validation: Validation, cluster: Cluster
) -> None:
    """Existing invalid policies are not swept away: they deny as before, an edit of their
    metadata passes with a warning, an edit of their content must fix them."""
    validation.remove()
    policy = image_policy("old", cluster.namespace, ("registry.invalid/*", VULNERABILITY))
    code, output = apply(cluster, policy)
    assert code == 0, output
    validation.register()

    labelled = cluster.plane.kubectl(
        "label", "imagepolicy", "old", "team=a", "-n", cluster.namespace
    )
    assert labelled.returncode == 0, labelled.stderr
    assert "Warning: ImagePolicy" in labelled.stderr and "until it is fixed" in labelled.stderr
    edited = copy.deepcopy(policy)
    edited["spec"]["repositories"].append({"name": "other/*", "policy": {}})
    code, output = apply(cluster, edited)
    assert code != 0 and "policy.vulnerability: not implemented by this webhook" in output

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/team/app:1"}]},
    }
    assert eventually(lambda: "policy.vulnerability" in cluster.create(pod).stderr)
    deleted = cluster.plane.kubectl("delete", "imagepolicy", "old", "-n", cluster.namespace)
    assert deleted.returncode == 0, deleted.stderr
