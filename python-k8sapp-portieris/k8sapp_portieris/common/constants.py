"""Names of the portieris StarlingX application, its chart, namespace and release."""

from typing import Final

HELM_APP_PORTIERIS: Final = "portieris"
HELM_CHART_PORTIERIS: Final = "portieris"
HELM_NS_PORTIERIS: Final = "portieris"
# The HelmRelease object in fluxcd-manifests/portieris/helmrelease.yaml (metadata.name).
HELM_RELEASE_PORTIERIS: Final = "portieris"
# The helm release name FluxCD installs (spec.releaseName); chart objects are named after it.
HELM_RELEASE_NAME_PORTIERIS: Final = "portieris-portieris"

HELM_COMPONENT_LABEL_PORTIERIS: Final = "app.starlingx.io/component"
