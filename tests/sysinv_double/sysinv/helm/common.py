"""sysinv.helm.common: namespace and label constants."""

HELM_NS_CEPH = "ceph"
HELM_NS_DEFAULT = "default"
HELM_NS_KUBE_SYSTEM = "kube-system"
HELM_NS_NFS = "nfs"
HELM_NS_OPENSTACK = "openstack"
HELM_NS_HELM_TOOLKIT = "helm-toolkit"
HELM_NS_MONITOR = "monitor"
HELM_NS_MONITORING = "monitoring"
HELM_NS_RBD_PROVISIONER = HELM_NS_KUBE_SYSTEM
HELM_NS_STORAGE_PROVISIONER = HELM_NS_KUBE_SYSTEM
HELM_NS_CERT_MANAGER = "cert-manager"
HELM_NS_OPENBAO = "openbao"
HELM_NS_VAULT = "vault"
HELM_NS_NOTIFICATION = "notification"
HELM_NS_DEPLOYMENT = "deployment"
HELM_NS_FLUX_HELM = "flux-helm"

HELM_REPO_FOR_PLATFORM = "stx-platform"

# The namespaces of the platform's own applications (pod security admission: privileged).
PRIVILEGED_NS = [
    HELM_NS_CEPH,
    HELM_NS_NFS,
    HELM_NS_OPENSTACK,
    HELM_NS_HELM_TOOLKIT,
    HELM_NS_MONITOR,
    HELM_NS_RBD_PROVISIONER,
    HELM_NS_STORAGE_PROVISIONER,
    HELM_NS_CERT_MANAGER,
    HELM_NS_VAULT,
    HELM_NS_DEPLOYMENT,
    HELM_NS_KUBE_SYSTEM,
    HELM_NS_NOTIFICATION,
    HELM_NS_FLUX_HELM,
    HELM_NS_OPENBAO,
    HELM_NS_MONITORING,
]
POD_SECURITY_VERSION = "latest"

LABEL_CONTROLLER = "openstack-control-plane"
COMPONENT_LABEL_KEY = "app.starlingx.io/component"
