"""The chart installed with the real helm into the real kube-apiserver."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from .conftest import SKIP_LABEL
from .controlplane import REPO_ROOT, ControlPlane
from tests.builders import image_policy

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "helm-charts" / "portieris"
RELEASE_NS = "portieris"


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    # The session's test webhook must leave the release namespace alone, as a real cluster's
    # only webhook would: the chart excludes its own namespace the same way.
    control_plane.kubectl("create", "namespace", RELEASE_NS, check=True)
    control_plane.kubectl("label", "namespace", RELEASE_NS, f"{SKIP_LABEL}=skip", check=True)
    result = control_plane.helm(
        "install",
        "portieris",
        str(CHART),
        "--namespace",
        RELEASE_NS,
        "--skip-crds",
        "--set",
        "clusterPolicy.allowedRepositories={registry.invalid/*}",
    )
    assert result.returncode == 0, result.stderr
    try:
        yield control_plane
    finally:
        control_plane.helm("uninstall", "portieris", "--namespace", RELEASE_NS, "--wait")


def get(plane: ControlPlane, *args: str) -> dict:
    return json.loads(plane.kubectl("get", *args, "-o", "json", check=True).stdout)


def test_crds_are_established(installed: ControlPlane) -> None:
    for name in ("imagepolicies", "clusterimagepolicies"):
        crd = get(installed, "crd", f"{name}.portieris.cloud.ibm.com")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"


def test_release_objects_are_created(installed: ControlPlane) -> None:
    deployment = get(installed, "deployment", "portieris", "-n", RELEASE_NS)
    assert deployment["spec"]["replicas"] == 3
    pdb = get(installed, "pdb", "-n", RELEASE_NS)["items"][0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert get(installed, "service", "portieris", "-n", RELEASE_NS)["spec"]["ports"]
    assert get(installed, "serviceaccount", "portieris", "-n", RELEASE_NS)
    config = get(installed, "mutatingwebhookconfiguration", "image-admission-config")
    webhook = config["webhooks"][0]
    assert webhook["failurePolicy"] == "Fail" and webhook["clientConfig"]["caBundle"]
    assert webhook["clientConfig"]["service"]["namespace"] == RELEASE_NS
    policies = get(installed, "clusterimagepolicies")["items"]
    assert any(
        r["name"] == "registry.invalid/*" for p in policies for r in p["spec"]["repositories"]
    )
    assert get(installed, "imagepolicies", "-n", RELEASE_NS)["items"]


def test_malformed_policy_is_rejected_at_apply(installed: ControlPlane) -> None:
    bad = image_policy("bad", "default", ("*", {"mutateImage": "sometimes"}))
    result = installed.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad))
    assert result.returncode != 0 and "mutateImage" in result.stderr


def test_unreachable_webhook_refuses_pods_but_not_in_its_own_namespace(
    installed: ControlPlane,
) -> None:
    # No kubelet runs here, so the webhook Deployment has no endpoints: failurePolicy Fail refuses.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
    }
    installed.kubectl("create", "namespace", "helm-e2e")
    result = installed.kubectl("create", "-n", "helm-e2e", "-f", "-", input=yaml.safe_dump(pod))
    assert result.returncode != 0 and "failed calling webhook" in result.stderr
    own = installed.kubectl("create", "-n", RELEASE_NS, "-f", "-", input=yaml.safe_dump(pod))
    assert own.returncode == 0, own.stderr


def pod(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
        }
    )


def test_kube_system_pods_are_created_while_the_webhook_is_down(installed: ControlPlane) -> None:
    # kube-system is excluded by default (webHooks.excludedNamespaces): the cluster's own pods
    # are created even though no webhook replica answers.
    created = installed.kubectl("create", "-n", "kube-system", "-f", "-", input=pod("p-down"))
    try:
        assert created.returncode == 0, created.stderr
    finally:
        installed.kubectl("delete", "pod", "p-down", "-n", "kube-system", "--wait=false")


def test_break_glass_then_helm_upgrade_restores_the_webhook(installed: ControlPlane) -> None:
    """The chart README's break-glass: delete the webhook configuration while the webhook is down
    (every pod is then admitted unchecked), and `helm upgrade --reuse-values` creates it again."""
    notes = installed.helm("get", "notes", "portieris", "--namespace", RELEASE_NS, check=True)
    assert "kubectl delete mutatingwebhookconfiguration image-admission-config" in notes.stdout
    assert f"answers): {RELEASE_NS}, kube-system\n" in notes.stdout
    installed.kubectl("create", "namespace", "break-glass")
    refused = installed.kubectl("create", "-n", "break-glass", "-f", "-", input=pod("before"))
    assert refused.returncode != 0 and "failed calling webhook" in refused.stderr

    deleted = installed.kubectl("delete", "mutatingwebhookconfiguration", "image-admission-config")
    assert deleted.returncode == 0, deleted.stderr
    admitted = installed.kubectl("create", "-n", "break-glass", "-f", "-", input=pod("during"))
    assert admitted.returncode == 0, admitted.stderr

    upgraded = installed.helm(
        "upgrade", "portieris", str(CHART), "--namespace", RELEASE_NS, "--reuse-values"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    config = get(installed, "mutatingwebhookconfiguration", "image-admission-config")
    assert config["webhooks"][0]["failurePolicy"] == "Fail"
    refused = installed.kubectl("create", "-n", "break-glass", "-f", "-", input=pod("after"))
    assert refused.returncode != 0 and "failed calling webhook" in refused.stderr


def test_policies_are_stored_unchecked_while_the_webhook_is_down(installed: ControlPlane) -> None:
    """The policy validation fails open: with no replica answering, an invalid policy is stored
    (it then denies the images it governs, as without validation), and so were the chart's own
    policies during the install, before any replica could answer."""
    config = get(installed, "validatingwebhookconfiguration", "portieris-policy-validation")
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore" and hook["clientConfig"]["caBundle"]
    assert hook["clientConfig"]["service"]["path"] == "/validate-policy"
    typo = image_policy("typo", "default", ("registry.invalid/*", {"trust": {"enable": True}}))
    stored = installed.kubectl("apply", "-f", "-", input=yaml.safe_dump(typo))
    assert stored.returncode == 0, stored.stderr
    installed.kubectl("delete", "imagepolicy", "typo", "-n", "default")
