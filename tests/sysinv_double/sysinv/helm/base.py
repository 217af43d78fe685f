"""sysinv.helm.base: BaseHelm and FluxCDBaseHelm."""

import abc
from typing import Any

from sysinv.common import constants


class BaseHelm(abc.ABC):  # noqa: B024 - sysinv's BaseHelm is abstract without abstract methods
    """Base class of the helm chart plugins (constructed with the HelmOperator)."""

    SUPPORTED_NAMESPACES: list[str] = []
    SUPPORTED_APP_NAMESPACES: dict[str, list[str]] = {}

    def __init__(self, operator: Any) -> None:
        self._operator = operator

    @property
    def dbapi(self) -> Any:
        return self._operator.dbapi

    @property
    def context(self) -> dict[str, Any]:
        return self._operator.context  # type: ignore[no-any-return]

    def _get_system(self) -> Any:
        system = self.context.get("_system")
        if system is None:
            system = self.dbapi.isystem_get_one()
            self.context["_system"] = system
        return system

    def _system_mode(self) -> str:
        return self.dbapi.isystem_get_one().system_mode  # type: ignore[no-any-return]

    def _num_controllers_matching_criteria(
        self,
        administrative: Any = None,
        operational: Any = None,
        availability: Any = None,
        vim_progress_status: Any = None,
    ) -> int:
        return int(
            self.dbapi.count_hosts_matching_criteria(
                personality=constants.CONTROLLER,
                administrative=administrative,
                operational=operational,
                availability=availability,
                vim_progress_status=vim_progress_status,
            )
        )

    def _num_provisioned_controllers(self) -> int:
        return self._num_controllers_matching_criteria(
            administrative=constants.ADMIN_UNLOCKED,
            operational=constants.OPERATIONAL_ENABLED,
            availability=[constants.AVAILABILITY_AVAILABLE, constants.AVAILABILITY_DEGRADED],
            vim_progress_status=constants.VIM_SERVICES_ENABLED,
        )

    def _num_replicas_for_platform_app(self) -> int:
        return max(1, self._num_provisioned_controllers())

    def get_namespaces_by_app(self, app_name: str) -> list[str]:
        return self.SUPPORTED_APP_NAMESPACES.get(app_name, [])

    def get_overrides(self, namespace: str | None = None) -> dict[str, Any]:
        return {}

    def execute_kustomize_updates(self, operator: Any) -> None:
        """No changes to the FluxCD manifests unless a plugin makes some."""
        return None


class FluxCDBaseHelm(BaseHelm):
    """Base class of the FluxCD helm chart plugins."""

    @property
    @abc.abstractmethod
    def CHART(self) -> str:
        """Name of the chart the plugin handles."""

    @property
    @abc.abstractmethod
    def HELM_RELEASE(self) -> str:
        """Name of the chart's HelmRelease in the FluxCD manifests."""
