"""The lifecycle operator from the tarball, dispatched by sysinv's AppOperator with sysinv's
LifecycleHookInfo objects, acting on the real kube-apiserver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sysinv.common import constants as sysinv_constants
from sysinv.common import exception
from sysinv.helm.lifecycle_constants import LifecycleConstants as C
from sysinv.tests.db import base as dbbase
from sysinv.tests.db import utils as dbutils

from tests.sysinv_real.platform import (
    APP,
    BACKUP_SECRET,
    COMPONENT_LABEL,
    NS,
    RESTARTED_AT,
    WEBHOOK_CONFIGURATION,
    PortierisPlatform,
    apply,
    deployment,
    get,
    set_status,
    webhook_configuration,
)

CHECK, OPERATION, RESOURCE = (
    C.APP_LIFECYCLE_TYPE_SEMANTIC_CHECK,
    C.APP_LIFECYCLE_TYPE_OPERATION,
    C.APP_LIFECYCLE_TYPE_RESOURCE,
)
MANUAL, AUTO = C.APP_LIFECYCLE_MODE_MANUAL, C.APP_LIFECYCLE_MODE_AUTO
PRE, POST = C.APP_LIFECYCLE_TIMING_PRE, C.APP_LIFECYCLE_TIMING_POST
APPLY, REMOVE, UPDATE = (
    sysinv_constants.APP_APPLY_OP,
    sysinv_constants.APP_REMOVE_OP,
    sysinv_constants.APP_UPDATE_OP,
)


class Lifecycle(PortierisPlatform, dbbase.AIOSimplexHostTestCase):
    # --- cluster views

    def namespace_label(self) -> Any:
        return (
            get(self.cluster, "namespace", NS)
            .get("metadata", {})
            .get("labels", {})
            .get(COMPONENT_LABEL)
        )

    def restarted_at(self) -> Any:
        template = get(self.cluster, "deployment", "portieris", "-n", NS)["spec"]["template"]
        return (template["metadata"].get("annotations") or {}).get(RESTARTED_AT)

    def registry_secret(self) -> dict[str, Any]:
        return get(self.cluster, "secret", "default-registry-key", "-n", NS)

    def webhook(self) -> dict[str, Any]:
        return get(self.cluster, "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION)

    # --- apply

    def test_apply_hooks(self) -> None:
        self.run_hook(self.hook(MANUAL, CHECK, PRE, APPLY))
        # Inside AppOperator.perform_app_apply, before FluxCD installs the chart.
        self.run_hook(self.hook(MANUAL, RESOURCE, PRE, APPLY), from_conductor=False)
        self.assertTrue(self.registry_secret(), "sysinv copies kube-system's registry secret")
        self.assertEqual(self.namespace_label(), "platform")
        apply(self.cluster, deployment())  # what FluxCD's helm installs
        self.run_hook(self.hook(MANUAL, OPERATION, POST, APPLY, **{C.APP_APPLIED: True}))
        self.assertIsNone(self.restarted_at(), "labelled before the pods existed: no restart")

    def test_apply_with_another_component_restarts_the_pods(self) -> None:
        self.run_hook(self.hook(MANUAL, RESOURCE, PRE, APPLY), from_conductor=False)
        apply(self.cluster, deployment())
        self.set_user_overrides({COMPONENT_LABEL: "application"})
        self.run_hook(self.hook(MANUAL, CHECK, PRE, APPLY))
        self.run_hook(self.hook(MANUAL, OPERATION, POST, APPLY, **{C.APP_APPLIED: True}))
        self.assertEqual(self.namespace_label(), "application")
        self.assertIsNotNone(self.restarted_at())

    def test_apply_check_refuses_unusable_overrides(self) -> None:
        self.set_user_overrides({"defaultTrustServer": "http://notary.example.com"})
        error = self.assertRaises(
            exception.LifecycleSemanticCheckException,
            self.run_hook,
            self.hook(MANUAL, CHECK, PRE, APPLY),
        )
        self.assertIn("is not an https URL", str(error))

    def test_apply_check_refuses_values_the_chart_refuses(self) -> None:
        self.set_user_overrides({"replicaCount": "three"})
        error = self.assertRaises(
            exception.LifecycleSemanticCheckException,
            self.run_hook,
            self.hook(MANUAL, CHECK, PRE, APPLY),
        )
        self.assertIn("the portieris chart refuses these values", str(error))

    # --- the automatic apply (the lead's contract: allowed except while bootstrap runs)

    def test_automatic_apply_allowed(self) -> None:
        self.run_hook(self.hook(AUTO, CHECK, PRE, APPLY))

    def test_automatic_apply_waits_for_bootstrap(self) -> None:
        Path(sysinv_constants.ANSIBLE_BOOTSTRAP_FLAG).touch()
        self.assertRaises(
            exception.LifecycleSemanticCheckException,
            self.run_hook,
            self.hook(AUTO, CHECK, PRE, APPLY),
        )

    # --- remove

    def test_remove_hooks(self) -> None:
        self.run_hook(self.hook(MANUAL, RESOURCE, PRE, APPLY), from_conductor=False)
        self.assertTrue(self.registry_secret())
        # The API passes extra['force'] with every remove (sysinv's check reads it).
        self.run_hook(
            self.hook(MANUAL, CHECK, PRE, REMOVE, **{C.APP_LIFECYCLE_FORCE_OPERATION: False})
        )
        self.run_hook(self.hook(MANUAL, RESOURCE, POST, REMOVE), from_conductor=False)
        self.assertFalse(self.registry_secret(), "sysinv deletes the copied registry secret")

    # --- update

    def previous_version(self, user_overrides: dict[str, Any]) -> None:
        """The version being updated from, made inactive by the API, with its user overrides."""
        previous = dbutils.create_test_app(
            name=APP,
            app_version="26.09-1",
            manifest_name=self.rpc_app.manifest_name,
            manifest_file=self.rpc_app.manifest_file,
            status=sysinv_constants.APP_INACTIVE_STATE,
            active=False,
        )
        self.dbapi.helm_override_create(
            {
                "app_id": previous.id,
                "name": APP,
                "namespace": NS,
                "user_overrides": yaml.safe_dump(user_overrides),
            }
        )

    def test_update_hooks_of_the_new_version(self) -> None:
        self.previous_version({"webHooks": {"failurePolicy": "Ignore"}})
        self.run_hook(
            self.hook(MANUAL, CHECK, PRE, UPDATE, **{C.TO_APP: True}), from_conductor=False
        )
        self.run_hook(
            self.hook(MANUAL, RESOURCE, PRE, UPDATE, **{C.TO_APP: True}), from_conductor=False
        )

    def test_update_refuses_upstream_overrides_carried_over(self) -> None:
        self.previous_version({"SkipSecretCreation": True, "image": {"host": "registry.local"}})
        error = self.assertRaises(
            exception.LifecycleSemanticCheckException,
            self.run_hook,
            self.hook(MANUAL, CHECK, PRE, UPDATE, **{C.TO_APP: True}),
            from_conductor=False,
        )
        self.assertIn("SkipSecretCreation", str(error))
        self.assertIn("image.host", str(error))

    def test_automatic_update_check_restores_the_failure_policy(self) -> None:
        set_status(self.rpc_app, sysinv_constants.APP_APPLY_SUCCESS)
        self.record_applies()
        apply(self.cluster, webhook_configuration("Ignore"))  # left by the update
        self.run_hook(self.hook(AUTO, CHECK, PRE, UPDATE))
        self.assertEqual([a["hook"] for a in self.applies], [APPLY])

    def test_automatic_update_check_waits_for_the_platform_upgrade(self) -> None:
        set_status(self.rpc_app, sysinv_constants.APP_APPLY_SUCCESS)
        self.record_applies()
        apply(self.cluster, webhook_configuration("Ignore"))
        Path(sysinv_constants.USM_UPGRADE_IN_PROGRESS).touch()
        self.run_hook(self.hook(AUTO, CHECK, PRE, UPDATE))
        self.assertEqual(self.applies, [])

    # --- backup and restore, through the conductor's backup_restore_lifecycle_actions

    def backup_action(self, action: str) -> None:
        self.assertEqual(
            self.conductor.backup_restore_lifecycle_actions(self.context, action, True),
            (True, None),
        )

    def test_backup_then_post_backup(self) -> None:
        set_status(self.rpc_app, sysinv_constants.APP_APPLY_SUCCESS)
        apply(self.cluster, webhook_configuration())
        self.backup_action(sysinv_constants.BACKUP_ACTION_SEMANTIC_CHECK)
        self.backup_action(sysinv_constants.BACKUP_ACTION_PRE_BACKUP)
        self.assertFalse(self.webhook(), "removed for the backup")
        self.assertTrue(get(self.cluster, "secret", BACKUP_SECRET, "-n", NS))
        self.backup_action(sysinv_constants.BACKUP_ACTION_POST_BACKUP)
        recreated = self.webhook()
        self.assertEqual(recreated["webhooks"][0]["failurePolicy"], "Fail")
        self.assertFalse(get(self.cluster, "secret", BACKUP_SECRET, "-n", NS))

    def test_backup_then_post_restore(self) -> None:
        set_status(self.rpc_app, sysinv_constants.APP_APPLY_SUCCESS)
        apply(self.cluster, webhook_configuration())
        self.backup_action(sysinv_constants.BACKUP_ACTION_PRE_BACKUP)
        self.assertFalse(self.webhook())
        self.backup_action(sysinv_constants.BACKUP_ACTION_POST_RESTORE)
        self.assertTrue(self.webhook(), "re-created after the restore")

    def test_backup_leaves_an_application_not_applied(self) -> None:
        apply(self.cluster, webhook_configuration())  # uploaded only (a leftover object)
        self.backup_action(sysinv_constants.BACKUP_ACTION_PRE_BACKUP)
        self.assertTrue(self.webhook())
