"""sysinv.common.kubernetes: KubeOperator, talking to a real kube-apiserver.

Same methods, arguments and results as sysinv's (None or False on 404 where sysinv returns
them, the keyword arguments of the delete calls become the delete body). sysinv loads
/etc/kubernetes/admin.conf into the client's global configuration; this double builds one API
client per operator from KUBERNETES_ADMIN_CONF, which tests point at their cluster's kubeconfig.
"""

import os
import re
from http import HTTPStatus
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sysinv.common import exception

KUBERNETES_CONF_DIR = "/etc/kubernetes"
KUBERNETES_ADMIN_CONF = os.path.join(KUBERNETES_CONF_DIR, "admin.conf")


def is_k8s_configured() -> bool:
    return os.path.isfile(KUBERNETES_ADMIN_CONF)


class KubeOperator:
    def __init__(self, host: str | None = None) -> None:
        self.host = host
        self._api_client: client.ApiClient | None = None

    def _client(self) -> client.ApiClient:
        if self._api_client is None:
            if not is_k8s_configured():
                raise exception.KubeNotConfigured()
            self._api_client = config.new_client_from_config(KUBERNETES_ADMIN_CONF)
        return self._api_client

    def _get_kubernetesclient_core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._client())

    def _get_kubernetesclient_apps_v1_api(self) -> client.AppsV1Api:
        return client.AppsV1Api(self._client())

    def _get_kubernetesclient_custom_objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self._client())

    def _get_kubernetesclient_admission_registration(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self._client())

    def _get_kubernetesclient_extensions(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self._client())

    # --- namespaces

    def kube_create_namespace(self, namespace: str) -> None:
        try:
            self._get_kubernetesclient_core().create_namespace({"metadata": {"name": namespace}})
        except ApiException as e:
            if e.status != HTTPStatus.CONFLICT:
                raise

    def kube_get_namespace(self, namespace: str) -> bool:
        try:
            self._get_kubernetesclient_core().read_namespace(namespace)
            return True
        except ApiException as e:
            if e.status == HTTPStatus.NOT_FOUND:
                return False
            raise

    def kube_get_namespace_name_list(self) -> list[str]:
        items = self._get_kubernetesclient_core().list_namespace().items
        return list({ns.metadata.name for ns in items})

    def kube_patch_namespace(self, namespace: str, body: Any) -> None:
        self._get_kubernetesclient_core().patch_namespace(namespace, body)

    # --- secrets

    def kube_get_secret(self, name: str, namespace: str) -> Any:
        try:
            return self._get_kubernetesclient_core().read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def kube_create_secret(self, namespace: str, body: Any) -> None:
        """An existing Secret of that name is left as it is (sysinv only logs a warning)."""
        try:
            self._get_kubernetesclient_core().create_namespaced_secret(namespace, body)
        except ApiException as e:
            if e.status != HTTPStatus.CONFLICT:
                raise

    def kube_copy_secret(self, name: str, src_namespace: str, dst_namespace: str) -> None:
        secret = self._get_kubernetesclient_core().read_namespaced_secret(name, src_namespace)
        secret.metadata.resource_version = None
        secret.metadata.uid = None
        secret.metadata.creation_timestamp = None
        secret.metadata.namespace = dst_namespace
        self._get_kubernetesclient_core().create_namespaced_secret(dst_namespace, secret)

    def kube_patch_secret(self, name: str, namespace: str, body: Any) -> None:
        self._get_kubernetesclient_core().patch_namespaced_secret(name, namespace, body)

    def kube_delete_secret(self, name: str, namespace: str, **kwargs: Any) -> None:
        try:
            self._get_kubernetesclient_core().delete_namespaced_secret(
                name, namespace, body=dict(kwargs)
            )
        except ApiException as e:
            if e.status != HTTPStatus.NOT_FOUND:
                raise

    # --- deployments and pods

    def kube_patch_deployment(self, name: str, namespace: str, body: Any) -> None:
        self._get_kubernetesclient_apps_v1_api().patch_namespaced_deployment(name, namespace, body)

    def kube_get_namespaced_deployment(self, name: str, namespace: str) -> Any:
        """The Deployment, or None if there is none (as sysinv's: other errors raise)."""
        try:
            return self._get_kubernetesclient_apps_v1_api().read_namespaced_deployment(
                name, namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def kube_get_kubernetes_version(self) -> str | None:
        """kubeadm's kubernetesVersion, from ConfigMap kube-system/kubeadm-config (as sysinv's:
        the read raises when the ConfigMap is missing)."""
        config_map = self._get_kubernetesclient_core().read_namespaced_config_map(
            "kubeadm-config", "kube-system"
        )
        match = re.search("\nkubernetesVersion: (.*)\n", config_map.data["ClusterConfiguration"])
        return match.group(1) if match else None

    def kube_delete_pod(self, name: str, namespace: str, **kwargs: Any) -> bool:
        try:
            self._get_kubernetesclient_core().delete_namespaced_pod(
                name, namespace, body=dict(kwargs)
            )
            return True
        except ApiException as e:
            if e.status == HTTPStatus.NOT_FOUND:
                return False
            raise

    def kube_get_pods_by_selector(
        self, namespace: str, label_selector: str, field_selector: str
    ) -> list[Any]:
        response = self._get_kubernetesclient_core().list_namespaced_pod(
            namespace, label_selector=f"{label_selector}", field_selector=f"{field_selector}"
        )
        return list(response.items)

    # --- webhooks

    def kube_delete_mutating_webhook_configuration(self, name: str, **kwargs: Any) -> None:
        try:
            self._get_kubernetesclient_admission_registration().delete_mutating_webhook_configuration(
                name, body=dict(kwargs)
            )
        except ApiException as e:
            if e.status != HTTPStatus.NOT_FOUND:
                raise

    def kube_get_mutating_webhook_configurations_by_selector(
        self, label_selector: str, field_selector: str
    ) -> list[Any]:
        response = (
            self._get_kubernetesclient_admission_registration().list_mutating_webhook_configuration(
                label_selector=f"{label_selector}", field_selector=f"{field_selector}"
            )
        )
        return list(response.items)

    # --- custom resources

    def get_custom_resource(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any:
        try:
            return self._get_kubernetesclient_custom_objects().get_namespaced_custom_object(
                group, version, namespace, plural, name
            )
        except ApiException as e:
            if e.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def get_clusterwide_custom_resource(
        self, group: str, version: str, plural: str, name: str
    ) -> Any:
        try:
            return self._get_kubernetesclient_custom_objects().get_cluster_custom_object(
                group, version, plural, name
            )
        except ApiException as e:
            if e.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def get_custom_resource_definition(self, name: str) -> Any:
        try:
            return self._get_kubernetesclient_extensions().read_custom_resource_definition(name)
        except ApiException as e:
            if e.status == HTTPStatus.NOT_FOUND:
                return None
            raise
