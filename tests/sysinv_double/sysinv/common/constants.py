"""sysinv.common.constants: the constants the application's plugins use (same names and values).

The platform paths come from tsconfig in sysinv; here they point into /etc/platform and
/opt/platform as on a controller, and tests set them to temporary directories.
"""

import os

PLATFORM_CONF_PATH = "/etc/platform"
CONFIG_PATH = "/opt/platform/config/stx"

# Applications
HELM_APP_CERT_MANAGER = "cert-manager"
HELM_APP_OIDC_AUTH = "oidc-auth-apps"
HELM_APP_PLATFORM = "platform-integ-apps"
HELM_APP_PORTIERIS = "portieris"
HELM_APP_VAULT = "vault"

# Application operations
APP_APPLY_OP = "apply"
APP_REMOVE_OP = "remove"
APP_DELETE_OP = "delete"
APP_UPDATE_OP = "update"
APP_EVALUATE_REAPPLY_OP = "evaluate-reapply"
APP_ABORT_OP = "abort"
APP_BACKUP = "backup"
APP_ETCD_BACKUP = "etcd-backup"
APP_RESTORE = "restore"

# Application states
APP_UPLOAD_SUCCESS = "uploaded"
APP_APPLY_IN_PROGRESS = "applying"
APP_APPLY_SUCCESS = "applied"
APP_APPLY_FAILURE = "apply-failed"
APP_INACTIVE_STATE = "inactive"
APP_UPDATE_IN_PROGRESS = "updating"
APP_RECOVER_IN_PROGRESS = "recovering"

# Application metadata
APP_METADATA_APPS = "apps"
APP_METADATA_BEHAVIOR = "behavior"
APP_METADATA_FORBIDDEN_MANUAL_OPERATIONS = "forbidden_manual_operations"
APP_METADATA_PLATFORM_MANAGED_APP = "platform_managed_app"
APP_METADATA_MAINTAIN_USER_OVERRIDES = "maintain_user_overrides"

# Hosts and system
CONTROLLER = "controller"
WORKER = "worker"
ADMIN_UNLOCKED = "unlocked"
ADMIN_LOCKED = "locked"
OPERATIONAL_ENABLED = "enabled"
OPERATIONAL_DISABLED = "disabled"
AVAILABILITY_AVAILABLE = "available"
AVAILABILITY_DEGRADED = "degraded"
AVAILABILITY_ONLINE = "online"
VIM_SERVICES_ENABLED = "services-enabled"
TIS_STD_BUILD = "Standard"
TIS_AIO_BUILD = "All-in-one"
SYSTEM_MODE_DUPLEX = "duplex"
SYSTEM_MODE_SIMPLEX = "simplex"
SYSTEM_MODE_DUPLEX_DIRECT = "duplex-direct"

# Registry
DOCKER_REGISTRY_HOST = "registry.local"
DOCKER_REGISTRY_PORT = "9001"
DOCKER_REGISTRY_SERVER = f"{DOCKER_REGISTRY_HOST}:{DOCKER_REGISTRY_PORT}"
DEFAULT_DOCKER_DOCKER_REGISTRY = "docker.io"

# Certificates: `system certificate-install -m ssl_ca` keeps each trusted CA in the database
# (its signature) and in a file named after that signature in SSL_CERT_CA_LIST_SHARED_DIR.
CERT_MODE_SSL = "ssl"
CERT_MODE_SSL_CA = "ssl_ca"
CERT_MODE_DOCKER_REGISTRY = "docker_registry"
CERT_CA_FILE = "ca-cert.pem"
SSL_CERT_CA_FILE_SHARED = os.path.join(CONFIG_PATH, CERT_CA_FILE)
SSL_CERT_CA_LIST_SHARED_DIR = os.path.join(CONFIG_PATH, "ssl_ca")

# Flags
USM_UPGRADE_IN_PROGRESS = os.path.join(PLATFORM_CONF_PATH, ".usm_upgrade_in_progress")
# sysinv reads tsconfig's VOLATILE_PATH (/var/run) for the bootstrap flag.
VOLATILE_PATH = "/var/run"
ANSIBLE_BOOTSTRAP_FLAG = os.path.join(VOLATILE_PATH, ".ansible_bootstrap")
