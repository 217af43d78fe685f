"""The sysinv lifecycle operator of the portieris application."""

from __future__ import annotations

from typing import Any

from sysinv.helm import lifecycle_base as base


class PortierisAppLifecycleOperator(base.AppLifecycleOperator):
    """Lifecycle hooks of the portieris application."""

    def app_lifecycle_actions(
        self, context: Any, conductor_obj: Any, app_op: Any, app: Any, hook_info: Any
    ) -> None:
        super().app_lifecycle_actions(context, conductor_obj, app_op, app, hook_info)
