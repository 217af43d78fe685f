"""sysinv.helm.lifecycle_base: AppLifecycleOperator, the default lifecycle actions."""

import abc
from typing import Any

from sysinv.common import constants, exception
from sysinv.helm import lifecycle_utils
from sysinv.helm.lifecycle_constants import LifecycleConstants


class AppLifecycleOperator(abc.ABC):  # noqa: B024 - abstract without abstract methods, as in sysinv
    def app_lifecycle_actions(
        self, context: Any, conductor_obj: Any, app_op: Any, app: Any, hook_info: Any
    ) -> None:
        if hook_info.lifecycle_type == LifecycleConstants.APP_LIFECYCLE_TYPE_SEMANTIC_CHECK:
            if (
                hook_info.mode == LifecycleConstants.APP_LIFECYCLE_MODE_AUTO
                and hook_info.operation == constants.APP_APPLY_OP
                and hook_info.relative_timing == LifecycleConstants.APP_LIFECYCLE_TIMING_PRE
            ):
                raise exception.LifecycleSemanticCheckException(
                    f"Automatic apply is disabled for {app.name}."
                )
            if (
                hook_info.mode == LifecycleConstants.APP_LIFECYCLE_MODE_AUTO
                and hook_info.operation == constants.APP_EVALUATE_REAPPLY_OP
            ):
                pass
            elif hook_info.operation in (
                constants.APP_DELETE_OP,
                constants.APP_REMOVE_OP,
            ) and not hook_info.extra.get(LifecycleConstants.APP_LIFECYCLE_FORCE_OPERATION):
                try:
                    forbidden = conductor_obj.apps_metadata[constants.APP_METADATA_APPS][app.name][
                        constants.APP_METADATA_BEHAVIOR
                    ][constants.APP_METADATA_FORBIDDEN_MANUAL_OPERATIONS]
                except (KeyError, AttributeError):
                    pass
                else:
                    if hook_info.operation in forbidden:
                        raise exception.LifecycleSemanticCheckOpererationBlocked(
                            op=hook_info.operation.capitalize(), app=app.name
                        )
        elif hook_info.lifecycle_type == LifecycleConstants.APP_LIFECYCLE_TYPE_RESOURCE:
            if (
                hook_info.operation == constants.APP_APPLY_OP
                and hook_info.relative_timing == LifecycleConstants.APP_LIFECYCLE_TIMING_PRE
            ):
                lifecycle_utils.create_local_registry_secrets(app_op, app, hook_info)
                lifecycle_utils.add_pod_security_admission_controller_labels(app_op, app, hook_info)
            elif (
                hook_info.operation == constants.APP_REMOVE_OP
                and hook_info.relative_timing == LifecycleConstants.APP_LIFECYCLE_TIMING_POST
            ):
                lifecycle_utils.delete_local_registry_secrets(app_op, app, hook_info)
