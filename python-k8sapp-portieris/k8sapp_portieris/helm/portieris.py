"""The sysinv helm plugin of the portieris chart: the system overrides."""

from __future__ import annotations

from typing import Any

from sysinv.common import exception
from sysinv.helm import base

from k8sapp_portieris.common import constants


class PortierisHelm(base.FluxCDBaseHelm):
    """System overrides of the portieris chart."""

    CHART = constants.HELM_CHART_PORTIERIS
    HELM_RELEASE = constants.HELM_RELEASE_PORTIERIS
    SUPPORTED_NAMESPACES = [*base.BaseHelm.SUPPORTED_NAMESPACES, constants.HELM_NS_PORTIERIS]
    SUPPORTED_APP_NAMESPACES = {
        constants.HELM_APP_PORTIERIS: [
            *base.BaseHelm.SUPPORTED_NAMESPACES,
            constants.HELM_NS_PORTIERIS,
        ]
    }

    def get_namespaces(self) -> list[str]:
        return list(self.SUPPORTED_NAMESPACES)

    def get_overrides(self, namespace: str | None = None) -> dict[str, Any]:
        overrides: dict[str, Any] = {constants.HELM_NS_PORTIERIS: {}}
        if namespace in self.SUPPORTED_NAMESPACES:
            return overrides[namespace]  # type: ignore[no-any-return]
        if namespace:
            raise exception.InvalidHelmNamespace(chart=self.CHART, namespace=namespace)
        return overrides
