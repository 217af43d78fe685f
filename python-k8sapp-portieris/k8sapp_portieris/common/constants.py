"""Names of the portieris StarlingX application, its chart, its image and the platform's objects."""

from typing import Final

HELM_APP_PORTIERIS: Final = "portieris"
HELM_CHART_PORTIERIS: Final = "portieris"
HELM_NS_PORTIERIS: Final = "portieris"
# The HelmRelease object in the FluxCD manifests (metadata.name).
HELM_RELEASE_PORTIERIS: Final = "portieris"

# The namespace label StarlingX's CPU manager reads: platform or application cores.
HELM_COMPONENT_LABEL_PORTIERIS: Final = "app.starlingx.io/component"
COMPONENT_PLATFORM: Final = "platform"
COMPONENT_APPLICATION: Final = "application"

# The webhook image as the chart names it (values.yaml image.repository, Chart.yaml appVersion),
# pulled from the platform's local registry with its pull secret.
IMAGE_REPOSITORY: Final = "docker.io/starlingx/stx-portieris-webhook"
IMAGE_TAG: Final = "0.1.0"
LOCAL_REGISTRY: Final = "registry.local:9001"
LOCAL_REGISTRY_SECRET: Final = "default-registry-key"

# The platform's CA: bootstrap creates Secret system-local-ca (ca.crt, tls.crt, tls.key) in
# cert-manager and a ClusterIssuer of the same name; it signs registry.local's certificate.
PLATFORM_CA_SECRET: Final = "system-local-ca"
PLATFORM_CA_NAMESPACE: Final = "cert-manager"
PLATFORM_CA_KEYS: Final = ("tls.crt", "ca.crt")
PLATFORM_ISSUER: Final = "system-local-ca"
CERT_MANAGER_GROUP: Final = "cert-manager.io"
CERT_MANAGER_VERSION: Final = "v1"
CERT_MANAGER_CRD: Final = "certificates.cert-manager.io"

# Cluster-wide Sigstore trust roots the operator keeps on the platform (created with kubectl, like
# the registry secrets of kube-system): each entry becomes an entry of the chart's
# sigstore.trustRoots, which the chart writes into its Secret of the same name in the release
# namespace, where policies name them.
SIGSTORE_TRUST_ROOTS_SECRET: Final = "portieris-sigstore-trust-roots"
SIGSTORE_TRUST_ROOTS_NAMESPACE: Final = "kube-system"

# The chart's objects the lifecycle operator handles.
WEBHOOK_CONFIGURATION: Final = "image-admission-config"
WEBHOOK_SELECTOR: Final = "app.kubernetes.io/name=portieris"
WEBHOOK_DEPLOYMENT: Final = "portieris"
CHART_DEFAULT_FAILURE_POLICY: Final = "Fail"
# Where pre-backup keeps the webhook configuration it removes (in the release namespace).
WEBHOOK_BACKUP_SECRET: Final = "portieris-webhook-configuration-backup"
WEBHOOK_BACKUP_KEY: Final = "webhook-configuration.json"
