"""The sysinv lifecycle operator of the portieris application.

| hook (type, operation, timing)        | what it does |
|---------------------------------------|--------------|
| check, apply, pre                     | refuse user overrides the application or the chart cannot use, saying why |
| check (auto), apply/evaluate-reapply  | allow sysinv's automatic (re-)apply, except while bootstrap is in progress |
| resource, apply, pre                  | first install: label the namespace before the pods exist |
| operation, apply, post                | label the namespace with the component label; restart the pods if it changed |
| check, update, pre (to the new app)   | refuse, before anything changes, user overrides carried over that this chart cannot take |
| check, update, pre (auto)             | after an update, once no platform upgrade runs: re-apply if the webhook still has the update's failurePolicy |
| operation, backup, pre                | keep a copy of the webhook configuration, then delete it |
| operation, backup/restore, post       | create the webhook configuration again from that copy |

Backup and restore hooks run for every application whatever its state: they act only on an
applied portieris.

The platform facts the system overrides follow (controllers, CA certificates, the system
mode, a platform upgrade) are re-read when sysinv evaluates a re-apply on the triggers
metadata.yaml lists (behavior.evaluate_reapply), and the automatic apply that follows is
allowed here, where sysinv's default refuses it.

While the application is updated (or the platform upgraded) the helm plugin writes
`platform.failurePolicy: Ignore`, so the webhook cannot block pods while its own pods are
replaced; the operator's own `webHooks.failurePolicy` is never rewritten.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from sysinv.common import constants as sysinv_constants
from sysinv.common import exception
from sysinv.helm import lifecycle_base as base
from sysinv.helm.lifecycle_constants import LifecycleConstants
from sysinv.helm.lifecycle_hook import LifecycleHookInfo

from k8sapp_portieris.common import checks, constants
from k8sapp_portieris.common.errors import OverridesError
from k8sapp_portieris.lifecycle import chart_render, webhook_backup

LOG = logging.getLogger(__name__)

_C = LifecycleConstants
Hook = Callable[[Any, Any, Any], None]
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class PortierisAppLifecycleOperator(base.AppLifecycleOperator):  # type: ignore[misc]  # untyped
    """Lifecycle hooks of the portieris application."""

    def app_lifecycle_actions(
        self, context: Any, conductor_obj: Any, app_op: Any, app: Any, hook_info: Any
    ) -> None:
        if _is_automatic_check(hook_info):
            # sysinv's default refuses every automatic apply: this application's overrides
            # follow the platform, so the apply its triggers ask for must go through.
            self.check_automatic(app_op, app, hook_info)
            return
        # sysinv's defaults first: forbidden removals, registry secrets.
        super().app_lifecycle_actions(context, conductor_obj, app_op, app, hook_info)
        key = (hook_info.lifecycle_type, hook_info.operation, hook_info.relative_timing)
        if hook_info.operation in _BACKUP_OPERATIONS and app.status != _APPLIED:
            LOG.info("portieris is %s, not applied: nothing to do for %s", app.status, key)
            return
        hook = self._hooks().get(key)
        if hook is not None:
            hook(app_op, app, hook_info)

    def _hooks(self) -> dict[tuple[str, str, str], Hook]:
        return {
            (_C.APP_LIFECYCLE_TYPE_SEMANTIC_CHECK, sysinv_constants.APP_APPLY_OP, "pre"): (
                self.check_apply
            ),
            (_C.APP_LIFECYCLE_TYPE_RESOURCE, sysinv_constants.APP_APPLY_OP, "pre"): (
                self.label_first_install
            ),
            (_C.APP_LIFECYCLE_TYPE_OPERATION, sysinv_constants.APP_APPLY_OP, "post"): (
                self.post_apply
            ),
            (_C.APP_LIFECYCLE_TYPE_SEMANTIC_CHECK, sysinv_constants.APP_UPDATE_OP, "pre"): (
                self.check_update
            ),
            (_C.APP_LIFECYCLE_TYPE_OPERATION, sysinv_constants.APP_BACKUP, "pre"): self.pre_backup,
            (_C.APP_LIFECYCLE_TYPE_OPERATION, sysinv_constants.APP_BACKUP, "post"): (
                self.recreate_webhook
            ),
            (_C.APP_LIFECYCLE_TYPE_OPERATION, sysinv_constants.APP_RESTORE, "post"): (
                self.recreate_webhook
            ),
        }

    # --- apply

    def check_automatic(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """sysinv's automatic apply or re-apply evaluation: held while bootstrap runs (the
        platform it would read is not there yet), else checked as a manual apply."""
        if os.path.exists(sysinv_constants.ANSIBLE_BOOTSTRAP_FLAG):
            raise exception.LifecycleSemanticCheckException(
                f"automatic {hook_info.operation} of {app.name} waits until bootstrap completes"
            )
        if hook_info.operation == sysinv_constants.APP_APPLY_OP:
            self.check_apply(app_op, app, hook_info)

    def check_apply(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """Refuse user overrides that would break the apply, with every reason at once."""
        try:
            user = checks.parse_user_overrides(self._user_overrides(app_op, app))
        except OverridesError as exc:
            raise _refused([str(exc)]) from exc
        problems = checks.user_override_problems(user)
        if problems:
            raise _refused(problems)
        system = self._system_overrides(app_op, app, update=False)
        problems = checks.disruption_problems(checks.merge_values(system, user))
        problems.extend(self._chart_problems(app_op, app, system, user))
        if problems:
            raise _refused(problems)

    @staticmethod
    def _system_overrides(app_op: Any, app: Any, update: bool) -> dict[str, Any]:
        """The plugin's system overrides, or the refusal that says why there are none."""
        try:
            system: dict[str, Any] = app_op._helm.get_helm_chart_overrides(
                constants.HELM_CHART_PORTIERIS,
                cnamespace=constants.HELM_NS_PORTIERIS,
                app_name=app.name,
            )
        except exception.SysinvException as exc:
            raise _refused([str(exc)], update=update) from exc
        return system

    def _chart_problems(
        self, app_op: Any, app: Any, system: Mapping[str, Any], user: Mapping[str, Any]
    ) -> list[str]:
        archive = chart_render.find_chart(app.inst_charts_dir, constants.HELM_CHART_PORTIERIS)
        if archive is None:
            LOG.warning("portieris chart not found in %s: values not checked", app.inst_charts_dir)
            return []
        static = os.path.join(
            app.sync_fluxcd_manifest,
            constants.HELM_CHART_PORTIERIS,
            f"{constants.HELM_CHART_PORTIERIS}-static-overrides.yaml",
        )
        files = [static] if os.path.isfile(static) else []
        return chart_render.chart_problems(
            archive,
            constants.HELM_NS_PORTIERIS,
            files,
            [system, user],
            kube_version=_kubernetes_version(app_op),
        )

    def label_first_install(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """On the first install, label the namespace (sysinv created it just before) while
        no pod exists yet, so post_apply finds the label right and restarts nothing."""
        kube = app_op._kube
        if kube.kube_get_namespaced_deployment(
            constants.WEBHOOK_DEPLOYMENT, constants.HELM_NS_PORTIERIS
        ):
            return  # pods run: post_apply relabels and rolls them if the label changes
        wanted = self._wanted_label(app_op, app)
        if wanted is not None:
            kube.kube_patch_namespace(
                constants.HELM_NS_PORTIERIS,
                {"metadata": {"labels": {constants.HELM_COMPONENT_LABEL_PORTIERIS: wanted}}},
            )

    def _wanted_label(self, app_op: Any, app: Any) -> str | None:
        """The component label the operator's overrides ask for (None if unusable)."""
        try:
            user = checks.parse_user_overrides(self._user_overrides(app_op, app))
        except OverridesError:
            LOG.exception("portieris: user overrides unreadable, namespace label left as it is")
            return None
        wanted = user.get(constants.HELM_COMPONENT_LABEL_PORTIERIS) or constants.COMPONENT_PLATFORM
        if checks.component_problems(wanted):
            LOG.error("portieris: %s", checks.component_problems(wanted)[0])
            return None
        return str(wanted)

    def post_apply(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """Label the namespace with the component; roll the pods only if the label changed."""
        if not hook_info.extra.get(_C.APP_APPLIED, True):
            return
        wanted = self._wanted_label(app_op, app)
        if wanted is None:
            return
        key = constants.HELM_COMPONENT_LABEL_PORTIERIS
        namespace = app_op._kube._get_kubernetesclient_core().read_namespace(
            constants.HELM_NS_PORTIERIS
        )
        if (namespace.metadata.labels or {}).get(key) == wanted:
            return
        app_op._kube.kube_patch_namespace(
            constants.HELM_NS_PORTIERIS, {"metadata": {"labels": {key: wanted}}}
        )
        # A rolling restart (maxUnavailable 0): new pods get the cores of the new label while
        # the old ones keep answering.
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        app_op._kube.kube_patch_deployment(
            constants.WEBHOOK_DEPLOYMENT,
            constants.HELM_NS_PORTIERIS,
            {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}},
        )

    # --- update

    def check_update(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """The check of the version updated to (before anything changes), or the periodic
        automatic-update check of the applied version."""
        if hook_info.extra.get(_C.TO_APP):
            self.check_carried_overrides(app_op, app)
        else:
            self.clean_update(app_op, app, hook_info)

    def check_carried_overrides(self, app_op: Any, app: Any) -> None:
        """Refuse an update whose carried-over user overrides (maintain_user_overrides) this
        version cannot take, naming each: an update from the upstream application carries
        its own keys, which this chart's schema refuses."""
        text = self._previous_user_overrides(app_op, app)
        try:
            user = checks.parse_user_overrides(text)
        except OverridesError as exc:
            raise _refused([str(exc)], update=True) from exc
        problems = checks.upstream_override_problems(user) + checks.user_override_problems(user)
        if not problems and user:
            system = self._system_overrides(app_op, app, update=True)
            problems = self._chart_problems(app_op, app, system, user)
        if problems:
            raise _refused(problems, update=True)

    @staticmethod
    def _previous_user_overrides(app_op: Any, app: Any) -> str | None:
        """The user overrides of the version being updated from: the inactive version of
        the application sysinv made inactive last (its API does so as the update starts)."""
        dbapi = app_op._dbapi
        previous = [
            other
            for other in dbapi.kube_app_get_inactive(app.name)
            if other.app_version != app.version
        ]
        if not previous:
            return None
        latest = max(previous, key=_last_changed)
        try:
            row = dbapi.helm_override_get(
                app_id=latest.id,
                name=constants.HELM_CHART_PORTIERIS,
                namespace=constants.HELM_NS_PORTIERIS,
            )
        except exception.HelmOverrideNotFound:
            return None
        text = row["user_overrides"]
        return str(text) if text else None

    def clean_update(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """After an update: once no platform upgrade runs, give the webhook the operator's
        failurePolicy again (a re-apply: the plugin no longer writes the update's Ignore)."""
        # The periodic automatic-update check of the applied application only: not the check
        # sysinv runs on the new version in the middle of an update.
        if hook_info.mode != _C.APP_LIFECYCLE_MODE_AUTO or app.status != _APPLIED:
            return
        if os.path.exists(sysinv_constants.USM_UPGRADE_IN_PROGRESS):
            LOG.info("portieris: platform upgrade in progress, failurePolicy stays Ignore")
            return
        try:
            user = checks.parse_user_overrides(self._user_overrides(app_op, app))
        except OverridesError:
            LOG.exception("portieris: user overrides unreadable, failurePolicy not restored")
            return
        wanted = (user.get("webHooks") or {}).get(
            "failurePolicy", constants.CHART_DEFAULT_FAILURE_POLICY
        )
        configurations = self._webhook_configurations(app_op)
        if not configurations or all(
            hook.failure_policy == wanted
            for configuration in configurations
            for hook in configuration.webhooks or []
        ):
            return
        LOG.info("portieris: re-applying to restore webHooks.failurePolicy %s", wanted)
        apply_hook = LifecycleHookInfo()
        apply_hook.operation = sysinv_constants.APP_APPLY_OP
        app_op.perform_app_apply(app._kube_app, app.mode, apply_hook)

    # --- backup and restore

    def pre_backup(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """Keep a copy of the webhook configuration, then delete it from the cluster."""
        configurations = self._webhook_configurations(app_op)
        if not configurations:
            LOG.info("portieris: no webhook configuration to remove before the backup")
            return
        (configuration,) = configurations
        admission = app_op._kube._get_kubernetesclient_admission_registration()
        secret = webhook_backup.backup_secret(
            admission.api_client.sanitize_for_serialization(configuration)
        )
        kube = app_op._kube
        kube.kube_delete_secret(constants.WEBHOOK_BACKUP_SECRET, constants.HELM_NS_PORTIERIS)
        kube.kube_create_secret(constants.HELM_NS_PORTIERIS, secret)
        kube.kube_delete_mutating_webhook_configuration(configuration.metadata.name)

    def recreate_webhook(self, app_op: Any, app: Any, hook_info: Any) -> None:
        """Create the webhook configuration pre-backup removed, from the copy it kept."""
        kube = app_op._kube
        kept = kube.kube_get_secret(constants.WEBHOOK_BACKUP_SECRET, constants.HELM_NS_PORTIERIS)
        if self._webhook_configurations(app_op):
            if kept is not None:  # re-created already (an apply): the copy is stale
                kube.kube_delete_secret(
                    constants.WEBHOOK_BACKUP_SECRET, constants.HELM_NS_PORTIERIS
                )
            return
        if kept is None:
            LOG.error(
                "portieris: the webhook configuration is missing and no copy was kept: "
                "images are not checked until the application is removed and applied again"
            )
            return
        try:
            document = webhook_backup.restorable(kept.data)
        except OverridesError:
            LOG.exception("portieris: webhook configuration not re-created")
            return
        kube._get_kubernetesclient_admission_registration().create_mutating_webhook_configuration(
            document
        )
        kube.kube_delete_secret(constants.WEBHOOK_BACKUP_SECRET, constants.HELM_NS_PORTIERIS)

    # --- helpers

    def _webhook_configurations(self, app_op: Any) -> list[Any]:
        found = list(
            app_op._kube.kube_get_mutating_webhook_configurations_by_selector(
                constants.WEBHOOK_SELECTOR, ""
            )
        )
        if len(found) > 1:
            names = ", ".join(sorted(c.metadata.name for c in found))
            raise exception.LifecycleSemanticCheckException(
                f"several MutatingWebhookConfigurations carry {constants.WEBHOOK_SELECTOR}: "
                f"{names}; delete all but {constants.WEBHOOK_CONFIGURATION}"
            )
        return found

    @staticmethod
    def _user_overrides(app_op: Any, app: Any) -> str | None:
        """The user overrides text, creating the override row the way sysinv's dbapi wants it."""
        dbapi = app_op._dbapi
        app_id = dbapi.kube_app_get(app.name).id
        try:
            row = dbapi.helm_override_get(
                app_id=app_id,
                name=constants.HELM_CHART_PORTIERIS,
                namespace=constants.HELM_NS_PORTIERIS,
            )
        except exception.HelmOverrideNotFound:
            row = dbapi.helm_override_create(
                values={
                    "app_id": app_id,
                    "name": constants.HELM_CHART_PORTIERIS,
                    "namespace": constants.HELM_NS_PORTIERIS,
                }
            )
        text = row["user_overrides"]
        return str(text) if text else None


_APPLIED = sysinv_constants.APP_APPLY_SUCCESS
_BACKUP_OPERATIONS = (
    sysinv_constants.APP_BACKUP,
    sysinv_constants.APP_ETCD_BACKUP,
    sysinv_constants.APP_RESTORE,
)


def _is_automatic_check(hook_info: Any) -> bool:
    """sysinv's semantic check before an automatic apply, or of a re-apply evaluation."""
    return bool(
        hook_info.lifecycle_type == _C.APP_LIFECYCLE_TYPE_SEMANTIC_CHECK
        and hook_info.mode == _C.APP_LIFECYCLE_MODE_AUTO
        and (
            (
                hook_info.operation == sysinv_constants.APP_APPLY_OP
                and hook_info.relative_timing == _C.APP_LIFECYCLE_TIMING_PRE
            )
            or hook_info.operation == sysinv_constants.APP_EVALUATE_REAPPLY_OP
        )
    )


def _last_changed(app: Any) -> tuple[float, int]:
    """When an application row last changed (then its id), to find the latest."""
    when = getattr(app, "updated_at", None) or getattr(app, "created_at", None)
    return (when.timestamp() if when is not None else 0.0, int(app.id))


def _kubernetes_version(app_op: Any) -> str | None:
    """The cluster's Kubernetes version (kubeadm's), for rendering the chart as the cluster
    would; None (helm's default) if it cannot be read."""
    try:
        version = app_op._kube.kube_get_kubernetes_version()
    except Exception:  # a check must not fail for want of the version: helm then guesses
        LOG.warning("portieris: Kubernetes version unknown, chart rendered for helm's default")
        return None
    return str(version) if version else None


def _refused(problems: list[str], update: bool = False) -> Exception:
    reasons = "\n".join(f"  - {p}" for p in problems)
    if update:
        message = (
            f"portieris cannot be updated with the user overrides it would carry over:\n"
            f"{reasons}\nCorrect them on the applied version with: system helm-override-update "
            "portieris portieris portieris --values <file> (or --reset-values), then update "
            "again."
        )
    else:
        message = (
            f"portieris user overrides cannot be applied:\n{reasons}\n"
            "Correct them with: system helm-override-update portieris portieris portieris "
            "--values <file> (or --reset-values), then apply again."
        )
    refused: Exception = exception.LifecycleSemanticCheckException(message)
    return refused
