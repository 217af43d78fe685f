"""sysinv.helm.lifecycle_utils: the default resource actions of AppLifecycleOperator."""

from typing import Any

from sysinv.helm import common


def _app_namespaces(app_op: Any, app: Any) -> list[str]:
    app_ns = app_op._helm.get_helm_application_namespaces(app.name)
    return sorted({ns for ns_list in app_ns.values() for ns in ns_list})


def create_local_registry_secrets(app_op: Any, app: Any, hook_info: Any) -> None:
    """Copy kube-system's registry secret into every namespace of the app, creating them."""
    source = app_op._kube.kube_get_secret(app_op.DOCKER_REGISTRY_SECRET, common.HELM_NS_KUBE_SYSTEM)
    for ns in _app_namespaces(app_op, app):
        if ns == common.HELM_NS_HELM_TOOLKIT:
            continue
        if app_op._kube.kube_get_secret(app_op.DOCKER_REGISTRY_SECRET, ns) is not None:
            continue
        if source is None:
            raise RuntimeError(
                "the double has no local registry credentials: create "
                f"{common.HELM_NS_KUBE_SYSTEM}/{app_op.DOCKER_REGISTRY_SECRET} first"
            )
        body = {
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": app_op.DOCKER_REGISTRY_SECRET, "namespace": ns},
            "data": {".dockerconfigjson": source.data[".dockerconfigjson"]},
        }
        if not app_op._kube.kube_get_namespace(ns):
            app_op._kube.kube_create_namespace(ns)
        app_op._kube.kube_create_secret(ns, body)


def add_pod_security_admission_controller_labels(app_op: Any, app: Any, hook_info: Any) -> None:
    for ns in _app_namespaces(app_op, app):
        if ns not in common.PRIVILEGED_NS:
            continue
        labels = {
            f"pod-security.kubernetes.io/{mode}{suffix}": value
            for mode in ("enforce", "warn", "audit")
            for suffix, value in (("", "privileged"), ("-version", common.POD_SECURITY_VERSION))
        }
        app_op._kube.kube_patch_namespace(ns, {"metadata": {"labels": labels}})


def delete_local_registry_secrets(app_op: Any, app: Any, hook_info: Any) -> None:
    for ns in _app_namespaces(app_op, app):
        if ns in (common.HELM_NS_HELM_TOOLKIT, common.HELM_NS_KUBE_SYSTEM):
            continue
        app_op._kube.kube_delete_secret(app_op.DOCKER_REGISTRY_SECRET, ns, grace_period_seconds=0)
