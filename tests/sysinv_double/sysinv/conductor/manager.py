"""sysinv.conductor.manager: the conductor's side of apply and of backup/restore hooks."""

import logging
from typing import Any

from sysinv.common import constants
from sysinv.conductor import kube_app
from sysinv.helm.lifecycle_constants import LifecycleConstants
from sysinv.helm.lifecycle_hook import LifecycleHookInfo

LOG = logging.getLogger(__name__)

# constants.HOOK_PARAMETERS_MAP: backup/restore action -> (mode, type, timing, operation)
HOOK_PARAMETERS_MAP = {
    "backup-semantic-check": ("auto", "check", "pre", constants.APP_BACKUP),
    "pre-backup-action": ("auto", "operation", "pre", constants.APP_BACKUP),
    "post-backup-action": ("auto", "operation", "post", constants.APP_BACKUP),
    "pre-etcd-backup-action": ("auto", "operation", "pre", constants.APP_ETCD_BACKUP),
    "post-etcd-backup-action": ("auto", "operation", "post", constants.APP_ETCD_BACKUP),
    "pre-restore-action": ("auto", "operation", "pre", constants.APP_RESTORE),
    "post-restore-action": ("auto", "operation", "post", constants.APP_RESTORE),
}


class ConductorManager:
    def __init__(self, dbapi: Any, helm_op: Any) -> None:
        self.dbapi = dbapi
        self.apps_metadata: dict[str, Any] = {constants.APP_METADATA_APPS: {}}
        self._app = kube_app.AppOperator(dbapi, helm_op, self.apps_metadata)

    def app_lifecycle_actions(self, context: Any, rpc_app: Any, hook_info: Any) -> None:
        self._app.app_lifecycle_actions(context, self, rpc_app, hook_info)

    def perform_app_apply(self, context: Any, rpc_app: Any, mode: Any = None) -> bool:
        """OPERATION/pre, the apply, OPERATION/post; the operation hooks' errors are only logged."""
        hook_info = LifecycleHookInfo()
        hook_info.init(
            LifecycleConstants.APP_LIFECYCLE_MODE_MANUAL,
            LifecycleConstants.APP_LIFECYCLE_TYPE_OPERATION,
            LifecycleConstants.APP_LIFECYCLE_TIMING_PRE,
            constants.APP_APPLY_OP,
        )
        try:
            self.app_lifecycle_actions(context, rpc_app, hook_info)
        except Exception:
            LOG.exception("pre-apply operation hook failed")
        applied = self._app.perform_app_apply(rpc_app, mode, hook_info)
        hook_info.lifecycle_type = LifecycleConstants.APP_LIFECYCLE_TYPE_OPERATION
        hook_info.relative_timing = LifecycleConstants.APP_LIFECYCLE_TIMING_POST
        hook_info[LifecycleConstants.EXTRA][LifecycleConstants.APP_APPLIED] = applied
        try:
            self.app_lifecycle_actions(context, rpc_app, hook_info)
        except Exception:
            LOG.exception("post-apply operation hook failed")
        return applied

    def backup_restore_lifecycle_actions(
        self, context: Any, operation: str, success: bool
    ) -> tuple[bool, str | None]:
        """Run one backup/restore action's hook on every application, whatever its status
        (as sysinv does: each application's hooks decide whether they have work to do)."""
        mode, lifecycle_type, timing, op = HOOK_PARAMETERS_MAP[operation]
        for app in self.dbapi.kube_app_get_all():
            hook_info = LifecycleHookInfo()
            hook_info.init(mode, lifecycle_type, timing, op)
            hook_info[LifecycleConstants.EXTRA]["success"] = success
            try:
                self.app_lifecycle_actions(context, app, hook_info)
            except Exception:
                LOG.exception("%s hook of %s failed", operation, app.name)
                return False, app.name
        return True, None
