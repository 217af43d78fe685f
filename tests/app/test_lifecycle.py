"""The lifecycle operator, driven as sysinv drives it (the double), on a real kube-apiserver where
the application is really installed by helm: apply checks, the namespace label, the failure
policy around updates, the webhook configuration around backup and restore."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sysinv.common import constants as sysinv_constants
from sysinv.common import exception

from .stx_platform import NS, Platform, make_platform, package_chart, start_cluster
from tests.e2e.controlplane import ControlPlane
from tests.fixtures.pki import TestCA

pytestmark = pytest.mark.e2e

CHECK, OPERATION, RESOURCE = "check", "operation", "resource"
MANUAL, AUTO = "manual", "auto"
COMPONENT = "app.starlingx.io/component"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
BACKUP_SECRET = "portieris-webhook-configuration-backup"


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    yield from start_cluster()


@pytest.fixture(scope="module")
def chart_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def platform(
    cluster: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chart_archive: Path
) -> Iterator[Platform]:
    platform = make_platform(cluster, tmp_path, monkeypatch, chart_archive)
    platform.add_controllers(1)
    yield platform
    # Leave the cluster as the next test expects to find it: nothing of the application.
    cluster.helm("uninstall", "portieris-portieris", "--namespace", NS, env=platform.helm_env)
    cluster.kubectl("delete", "secret", BACKUP_SECRET, "-n", NS, "--ignore-not-found")
    cluster.kubectl("label", "namespace", NS, f"{COMPONENT}-")


@pytest.fixture
def applied(platform: Platform) -> Platform:
    """The application applied (helm upgrade --install of the chart, as FluxCD would)."""
    assert platform.apply()
    return platform


def failure_policy(platform: Platform) -> str:
    (hook,) = platform.webhook_configuration()["webhooks"]
    return str(hook["failurePolicy"])


def restarted_at(platform: Platform) -> str | None:
    deployment = platform.get("deployment", "portieris", "-n", NS)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get(RESTARTED_AT)


def label(platform: Platform) -> str | None:
    return platform.get("namespace", NS)["metadata"].get("labels", {}).get(COMPONENT)


def check_apply(platform: Platform) -> None:
    platform.hook(MANUAL, CHECK, "pre", sysinv_constants.APP_APPLY_OP)


# --- apply


def test_apply_installs_the_chart_with_the_system_overrides(applied: Platform) -> None:
    configuration = applied.webhook_configuration()
    (hook,) = configuration["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert {"portieris", "kube-system", "cert-manager", "flux-helm"} <= set(excluded["values"])
    deployment = applied.get("deployment", "portieris", "-n", NS)
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "default-registry-key"}]
    assert pod["containers"][0]["image"] == (
        "registry.local:9001/docker.io/starlingx/stx-portieris-webhook:0.1.0"
    )
    # sysinv's default resource hook copied the registry secret the pods pull with.
    assert applied.get("secret", "default-registry-key", "-n", NS)


def test_the_override_row_is_created_as_sysinvs_dbapi_expects(platform: Platform) -> None:
    # No user overrides yet: the lifecycle creates the row keyed by app_id, name and namespace.
    check_apply(platform)
    row = platform.dbapi.helm_override_get(platform.app.id, "portieris", NS)
    assert (row.app_id, row.name, row.namespace, row.user_overrides) == (
        platform.app.id,
        "portieris",
        NS,
        None,
    )


def test_good_user_overrides_pass_the_check(platform: Platform) -> None:
    platform.set_user_overrides(
        {
            "TrustedCACert": TestCA.create().cert_pem.decode(),
            "defaultTrustServer": "https://notary.example.com:4443",
            "replicaCount": 2,
            COMPONENT: "application",
            "webHooks": {"failurePolicy": "Ignore", "excludedNamespaces": ["team-tools"]},
        }
    )
    check_apply(platform)


def leaf_pem() -> str:
    return TestCA.create().issue("notary.example.com")[0].decode()


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ({"TrustedCACert": "@@@"}, "TrustedCACert is neither a PEM bundle nor base64 of one"),
        ({"TrustedCACert": leaf_pem()}, "CN=notary.example.com"),
        ({"defaultTrustServer": "http://notary.example.com"}, "is not an https URL"),
        ({COMPONENT: "cheap"}, "use platform (platform cores, the default) or application"),
        ({"platform": {"failurePolicy": ""}}, "platform.* values are written by the application"),
        ({"webHooks": {"timeoutSeconds": 99}}, "the portieris chart refuses these values"),
        ({"UseGeneratedCerts": {"enabled": True}}, "mutually exclusive"),
        ({"podDisruptionBudget": {"minAvailable": 1}}, "keeps all 1 replica(s)"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_unusable_user_overrides_are_refused_before_apply(
    platform: Platform, user: dict[str, Any] | str, reason: str
) -> None:
    platform.set_user_overrides(user)
    with pytest.raises(exception.LifecycleSemanticCheckException) as refused:
        check_apply(platform)
    message = str(refused.value)
    assert reason in message
    assert "system helm-override-update portieris portieris portieris" in message


def test_the_check_renders_with_the_static_overrides_as_fluxcd_does(platform: Platform) -> None:
    from sysinv.conductor.kube_app import AppOperator

    manifests = Path(AppOperator.Application(platform.app).sync_fluxcd_manifest) / "portieris"
    manifests.mkdir(parents=True)
    static = {"tolerations": [{"key": "node-role.kubernetes.io/control-plane"}]}
    (manifests / "portieris-static-overrides.yaml").write_text(yaml.safe_dump(static))
    check_apply(platform)
    static["webHooks"] = {"timeoutSeconds": 0}  # type: ignore[assignment]
    (manifests / "portieris-static-overrides.yaml").write_text(yaml.safe_dump(static))
    with pytest.raises(exception.LifecycleSemanticCheckException, match="timeoutSeconds"):
        check_apply(platform)


def test_every_reason_is_given_at_once(platform: Platform) -> None:
    platform.set_user_overrides({"TrustedCACert": "@@@", "defaultTrustServer": "ftp://x"})
    with pytest.raises(exception.LifecycleSemanticCheckException) as refused:
        check_apply(platform)
    assert "TrustedCACert" in str(refused.value) and "defaultTrustServer" in str(refused.value)


def test_a_bad_platform_certificate_is_reported_by_the_check(platform: Platform) -> None:
    platform.install_ssl_ca("ssl_ca_bad", TestCA.create().issue("www.example.com")[0])
    with pytest.raises(exception.LifecycleSemanticCheckException, match="ssl_ca_bad"):
        check_apply(platform)


def test_the_automatic_apply_that_a_platform_change_asks_for_is_allowed(
    platform: Platform,
) -> None:
    """sysinv's default refuses every automatic apply; the overrides follow the platform,
    so the apply its re-apply evaluation asks for must go through."""
    platform.hook(AUTO, CHECK, "pre", sysinv_constants.APP_APPLY_OP)
    platform.hook(AUTO, CHECK, "pre", sysinv_constants.APP_EVALUATE_REAPPLY_OP)


@pytest.mark.parametrize(
    "operation", [sysinv_constants.APP_APPLY_OP, sysinv_constants.APP_EVALUATE_REAPPLY_OP]
)
def test_the_automatic_apply_waits_while_bootstrap_runs(platform: Platform, operation: str) -> None:
    flag = Path(sysinv_constants.ANSIBLE_BOOTSTRAP_FLAG)
    assert flag.name == ".ansible_bootstrap"  # sysinv's flag, in tsconfig's VOLATILE_PATH
    flag.touch()
    try:
        with pytest.raises(exception.LifecycleSemanticCheckException, match="bootstrap"):
            platform.hook(AUTO, CHECK, "pre", operation)
    finally:
        flag.unlink()


def test_the_automatic_apply_refuses_unusable_overrides_as_a_manual_one(
    platform: Platform,
) -> None:
    platform.set_user_overrides({"defaultTrustServer": "http://notary.example.com"})
    with pytest.raises(exception.LifecycleSemanticCheckException, match="https"):
        platform.hook(AUTO, CHECK, "pre", sysinv_constants.APP_APPLY_OP)


def test_the_check_renders_the_chart_for_the_clusters_kubernetes_version(
    platform: Platform,
) -> None:
    """kubeadm's version, as sysinv reads it: a cluster older than the chart supports is
    refused by the check, not half-way through the apply."""
    platform.kubectl_apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": "apiVersion: v1\nkubernetesVersion: v1.24.0\n"},
        }
    )
    try:
        with pytest.raises(exception.LifecycleSemanticCheckException, match="kubeVersion"):
            check_apply(platform)
    finally:
        platform.kubectl("delete", "configmap", "kubeadm-config", "-n", "kube-system")
    check_apply(platform)  # without kubeadm's version: helm's own


# --- update from another version (its user overrides carried over)


UPSTREAM_OVERRIDES = {
    "PostUpgradePolicy": "Fail",
    "ReapplyAdmissionWebhook": False,
    "image": {"host": "registry.local:9001/icr.io/portieris"},
}


def previous_version(platform: Platform, user: dict[str, Any]) -> None:
    """The version updated from, as sysinv's API leaves it when the update starts: inactive,
    with the operator's overrides."""
    row = platform.dbapi.kube_app_create(
        {
            "name": "portieris",
            "app_version": "25.09-12",
            "status": sysinv_constants.APP_INACTIVE_STATE,
        }
    )
    platform.dbapi.helm_override_create(
        {
            "app_id": row.id,
            "name": "portieris",
            "namespace": NS,
            "user_overrides": yaml.safe_dump(user),
        }
    )


def check_update(platform: Platform) -> None:
    platform.hook(MANUAL, CHECK, "pre", sysinv_constants.APP_UPDATE_OP, to_app=True)


def test_an_update_from_the_upstream_app_names_each_override_it_cannot_carry(
    platform: Platform,
) -> None:
    previous_version(platform, {**UPSTREAM_OVERRIDES, "replicaCount": 2})
    with pytest.raises(exception.LifecycleSemanticCheckException) as refused:
        check_update(platform)
    message = str(refused.value)
    for key in ("PostUpgradePolicy", "ReapplyAdmissionWebhook", "image.host"):
        assert key in message
    assert "replicaCount" not in message
    assert "helm-override-update" in message


def test_an_update_refuses_carried_overrides_the_charts_schema_refuses(
    platform: Platform,
) -> None:
    previous_version(platform, {"someUpstreamValue": 1})
    with pytest.raises(exception.LifecycleSemanticCheckException, match="someUpstreamValue"):
        check_update(platform)


def test_an_update_carrying_overrides_this_chart_takes_goes_ahead(platform: Platform) -> None:
    previous_version(platform, {"replicaCount": 2, "webHooks": {"failurePolicy": "Ignore"}})
    check_update(platform)


# --- namespace label


def mark_restart(platform: Platform, value: str) -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}
    platform.kubectl("patch", "deployment", "portieris", "-n", NS, "-p", json.dumps(patch))


def test_the_first_install_labels_the_namespace_before_the_pods_and_restarts_nothing(
    applied: Platform,
) -> None:
    assert label(applied) == "platform"
    assert restarted_at(applied) is None


def test_an_unchanged_label_does_not_restart_the_pods(applied: Platform) -> None:
    mark_restart(applied, "earlier")
    assert applied.apply()
    assert restarted_at(applied) == "earlier"


def test_the_label_follows_the_component_override_and_restarts_the_pods(
    applied: Platform,
) -> None:
    mark_restart(applied, "earlier")
    applied.set_user_overrides({COMPONENT: "application"})
    assert applied.apply()
    assert label(applied) == "application"
    assert restarted_at(applied) not in (None, "earlier")


# --- update


def apply_as_update(platform: Platform) -> None:
    """The new version's apply inside `system application-update` (status updating)."""
    platform.app.status = sysinv_constants.APP_UPDATE_IN_PROGRESS
    assert platform.apply()
    platform.app.status = sysinv_constants.APP_APPLY_SUCCESS


def auto_update_check(platform: Platform, **extra: Any) -> None:
    """sysinv's periodic automatic-update check of the applied application."""
    platform.hook(AUTO, CHECK, "pre", sysinv_constants.APP_UPDATE_OP, from_app=True, **extra)


def test_an_update_runs_with_failure_policy_ignore_then_restores_the_operators(
    applied: Platform,
) -> None:
    applied.set_user_overrides({"webHooks": {"failurePolicy": "Fail"}})
    user_text = applied.user_overrides_text()
    apply_as_update(applied)
    assert failure_policy(applied) == "Ignore"
    auto_update_check(applied)
    assert failure_policy(applied) == "Fail"
    assert applied.user_overrides_text() == user_text, "the operator's overrides are untouched"


def test_failure_policy_stays_ignore_during_a_platform_upgrade(applied: Platform) -> None:
    apply_as_update(applied)
    Path(sysinv_constants.USM_UPGRADE_IN_PROGRESS).touch()
    auto_update_check(applied)
    assert applied.apply()  # any apply during the upgrade keeps it too
    assert failure_policy(applied) == "Ignore"
    Path(sysinv_constants.USM_UPGRADE_IN_PROGRESS).unlink()
    auto_update_check(applied)
    assert failure_policy(applied) == "Fail"


def test_the_check_inside_an_update_does_not_reapply(applied: Platform) -> None:
    apply_as_update(applied)
    applied.app.status = sysinv_constants.APP_UPDATE_IN_PROGRESS
    applies = len(applied.conductor()._app.applies)
    auto_update_check(applied, to_app=True)
    assert len(applied.conductor()._app.applies) == applies
    assert failure_policy(applied) == "Ignore"


def test_an_operators_ignore_is_left_alone(applied: Platform) -> None:
    applied.set_user_overrides({"webHooks": {"failurePolicy": "Ignore"}})
    assert applied.apply()
    applies = len(applied.conductor()._app.applies)
    auto_update_check(applied)
    assert len(applied.conductor()._app.applies) == applies
    assert failure_policy(applied) == "Ignore"


# --- backup and restore


def backup_action(platform: Platform, action: str) -> None:
    ok, failed = platform.conductor().backup_restore_lifecycle_actions(None, action, True)
    assert ok, f"{action} failed for {failed}"


def test_backup_removes_the_webhook_configuration_and_restores_it_after(
    applied: Platform,
) -> None:
    before = applied.webhook_configuration()
    backup_action(applied, "pre-backup-action")
    assert applied.webhook_configuration() == {}
    assert applied.get("secret", BACKUP_SECRET, "-n", NS)
    backup_action(applied, "post-backup-action")
    after = applied.webhook_configuration()
    assert after["webhooks"] == before["webhooks"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert applied.get("secret", BACKUP_SECRET, "-n", NS) == {}


def test_restore_recreates_the_webhook_configuration(applied: Platform) -> None:
    before = applied.webhook_configuration()
    backup_action(applied, "pre-backup-action")
    # The restored cluster holds what the backup saw: no webhook configuration, the copy.
    backup_action(applied, "post-restore-action")
    assert applied.webhook_configuration()["webhooks"] == before["webhooks"]


def test_helm_keeps_managing_the_recreated_webhook_configuration(applied: Platform) -> None:
    backup_action(applied, "pre-backup-action")
    backup_action(applied, "post-backup-action")
    applied.set_user_overrides({"webHooks": {"timeoutSeconds": 7}})
    assert applied.apply()
    (hook,) = applied.webhook_configuration()["webhooks"]
    assert hook["timeoutSeconds"] == 7


def test_a_stale_copy_is_dropped_when_the_configuration_exists(applied: Platform) -> None:
    backup_action(applied, "pre-backup-action")
    applied.app.status = sysinv_constants.APP_UPDATE_IN_PROGRESS  # values change: helm upgrades
    assert applied.apply()
    assert applied.webhook_configuration()
    backup_action(applied, "post-restore-action")
    assert applied.get("secret", BACKUP_SECRET, "-n", NS) == {}


def test_a_copy_that_is_not_the_charts_configuration_is_not_created(applied: Platform) -> None:
    backup_action(applied, "pre-backup-action")
    forged = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "attacker", "labels": {"app.kubernetes.io/name": "portieris"}},
        "webhooks": [{"name": "x.example.com"}],
    }
    encoded = base64.b64encode(json.dumps(forged).encode()).decode()
    applied.kubectl(
        "patch",
        "secret",
        BACKUP_SECRET,
        "-n",
        NS,
        "-p",
        json.dumps({"data": {"webhook-configuration.json": encoded}}),
    )
    backup_action(applied, "post-backup-action")
    assert applied.get("mutatingwebhookconfiguration", "attacker") == {}
    assert applied.webhook_configuration() == {}


@pytest.mark.parametrize(
    "action", ["pre-backup-action", "post-backup-action", "post-restore-action"]
)
def test_backup_and_restore_leave_an_application_that_is_not_applied_alone(
    platform: Platform, action: str, caplog: pytest.LogCaptureFixture
) -> None:
    """sysinv runs these hooks for every application: an uploaded portieris has nothing to
    back up or restore, and nothing to complain about."""
    platform.app.status = sysinv_constants.APP_UPLOAD_SUCCESS
    backup_action(platform, action)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert platform.get("secret", BACKUP_SECRET, "-n", NS) == {}


def test_backup_without_the_application_installed_does_nothing(platform: Platform) -> None:
    platform.app.status = sysinv_constants.APP_APPLY_SUCCESS
    platform.kubectl("delete", "mutatingwebhookconfiguration", "--all")
    backup_action(platform, "pre-backup-action")
    assert platform.get("secret", BACKUP_SECRET, "-n", NS) == {}


def test_the_lifecycle_never_writes_the_operators_overrides(applied: Platform) -> None:
    text = yaml.safe_dump({"replicaCount": 2})
    applied.set_user_overrides(text)
    check_apply(applied)
    apply_as_update(applied)
    auto_update_check(applied)
    backup_action(applied, "pre-backup-action")
    backup_action(applied, "post-backup-action")
    assert applied.user_overrides_text() == text
