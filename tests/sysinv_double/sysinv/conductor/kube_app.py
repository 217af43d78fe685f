"""sysinv.conductor.kube_app: AppOperator, its Application and AppImageParser.

The apply does what sysinv and FluxCD do for a FluxCD application: generate the combined
overrides (system overrides with the user's merged over them), run the resource and manifest
hooks, then install the chart as FluxCD's helm-controller does: values = the chart's defaults,
then the static overrides, then the system overrides file; `helm upgrade --install` only when
the chart or those values differ from the deployed release (an in-sync release is left alone).
"""

import json
import os
import re
import subprocess
from typing import Any

import yaml

from sysinv.common import constants, exception, kubernetes
from sysinv.helm.helm import coalesce
from sysinv.helm.lifecycle_constants import LifecycleConstants
from sysinv.helm.lifecycle_hook import LifecycleHookInfo

# Where applications are installed and synced (/opt/platform/... on a controller).
APP_INSTALL_PATH = "/opt/platform/helm"
APP_FLUXCD_DATA_PATH = "/opt/platform/fluxcd"
HELM_OVERRIDES_PATH = "/opt/platform/helm_overrides"
# The helm binary and its environment (tests point them at their cluster).
HELM = "helm"
HELM_ENV: dict[str, str] = {}


class AppOperator:
    DOCKER_REGISTRY_SECRET = "default-registry-key"

    def __init__(self, dbapi: Any, helm_op: Any, apps_metadata: dict[str, Any]) -> None:
        self._dbapi = dbapi
        self._helm = helm_op
        self._kube = kubernetes.KubeOperator()
        self._apps_metadata = apps_metadata
        # Double only: the applies asked for, and the helm upgrades they ran.
        self.applies: list[str] = []
        self.helm_runs: list[list[str]] = []

    class Application:
        def __init__(self, rpc_app: Any) -> None:
            self._kube_app = rpc_app
            self.id = rpc_app.get("id")
            self.inst_path = os.path.join(APP_INSTALL_PATH, self.name, self.version)
            self.inst_charts_dir = os.path.join(self.inst_path, "charts")
            self.inst_plugins_dir = os.path.join(self.inst_path, "plugins")
            synced = os.path.join(APP_FLUXCD_DATA_PATH, self.name, self.version)
            self.sync_overrides_dir = os.path.join(HELM_OVERRIDES_PATH, self.name, self.version)
            self.sync_plugins_dir = os.path.join(
                APP_INSTALL_PATH, "plugins", self.name, self.version
            )
            self.sync_fluxcd_manifest_dir = synced
            self.sync_fluxcd_manifest = os.path.join(synced, f"{self.name}-fluxcd-manifests")
            self.charts: list[Any] = []

        @property
        def system_app(self) -> bool:
            return os.path.isdir(self.sync_plugins_dir)

        @property
        def name(self) -> str:
            return str(self._kube_app.get("name"))

        @property
        def version(self) -> str:
            return str(self._kube_app.get("app_version"))

        @property
        def status(self) -> str:
            return str(self._kube_app.get("status"))

        @property
        def active(self) -> bool:
            return bool(self._kube_app.get("active"))

        @property
        def mode(self) -> Any:
            return self._kube_app.get("mode")

        @property
        def app_metadata(self) -> dict[str, Any]:
            return self._kube_app.get("app_metadata") or {}

        def update_status(self, new_status: str, new_progress: str | None) -> None:
            self._kube_app.status = new_status
            if new_progress:
                self._kube_app.progress = new_progress

    def app_lifecycle_actions(
        self, context: Any, conductor_obj: Any, rpc_app: Any, hook_info: Any
    ) -> None:
        app = AppOperator.Application(rpc_app)
        operator = self._helm.get_app_lifecycle_operator(app.name)
        operator.app_lifecycle_actions(context, conductor_obj, self, app, hook_info)

    def _hook(self, rpc_app: Any, hook_info: Any, lifecycle_type: str, timing: str) -> None:
        hook_info.lifecycle_type = lifecycle_type
        hook_info.relative_timing = timing
        self.app_lifecycle_actions(None, None, rpc_app, hook_info)

    def perform_app_apply(
        self,
        rpc_app: Any,
        mode: Any,
        lifecycle_hook_info_app_apply: Any,
        caller: str | None = None,
        is_reapply_process: bool = False,
        client_side: bool = False,
    ) -> bool:
        app = AppOperator.Application(rpc_app)
        self.applies.append(app.name)
        hook_info = lifecycle_hook_info_app_apply
        files = self._helm.generate_helm_application_overrides(
            app.sync_overrides_dir, app.name, mode, cnamespace=None, combined=True
        )
        self._hook(
            rpc_app,
            hook_info,
            LifecycleConstants.APP_LIFECYCLE_TYPE_RESOURCE,
            LifecycleConstants.APP_LIFECYCLE_TIMING_PRE,
        )
        self._hook(
            rpc_app,
            hook_info,
            LifecycleConstants.APP_LIFECYCLE_TYPE_MANIFEST,
            LifecycleConstants.APP_LIFECYCLE_TIMING_PRE,
        )
        for path in files:
            self._flux_install(app, path)
        hook_info[LifecycleConstants.EXTRA][LifecycleConstants.MANIFEST_APPLIED] = True
        self._hook(
            rpc_app,
            hook_info,
            LifecycleConstants.APP_LIFECYCLE_TYPE_MANIFEST,
            LifecycleConstants.APP_LIFECYCLE_TIMING_POST,
        )
        self._hook(
            rpc_app,
            hook_info,
            LifecycleConstants.APP_LIFECYCLE_TYPE_RESOURCE,
            LifecycleConstants.APP_LIFECYCLE_TIMING_POST,
        )
        if caller != constants.APP_UPDATE_OP:
            app.update_status(constants.APP_APPLY_SUCCESS, "completed")
        return True

    # --- FluxCD's part

    def _chart_and_release(
        self, app: "AppOperator.Application", chart: str
    ) -> tuple[str, str, str]:
        """(chart archive, namespace, release name) of a chart, from the app's FluxCD manifests."""
        namespace = self._helm.get_helm_chart_namespaces_by_app(chart, app.name)[0]
        release = f"{namespace}-{chart}"
        helmrelease = os.path.join(app.sync_fluxcd_manifest, chart, "helmrelease.yaml")
        if os.path.isfile(helmrelease):
            with open(helmrelease) as f:
                release = next(yaml.safe_load_all(f))["spec"].get("releaseName", release)
        archives = sorted(
            name
            for name in os.listdir(app.inst_charts_dir)
            if re.fullmatch(rf"{re.escape(chart)}-\d[^/]*\.tgz", name)
        )
        if not archives:
            raise exception.SysinvException(f"no chart {chart} in {app.inst_charts_dir}")
        return os.path.join(app.inst_charts_dir, archives[-1]), namespace, release

    def _flux_install(self, app: "AppOperator.Application", overrides_file: str) -> None:
        chart = os.path.basename(overrides_file).removesuffix(".yaml")
        archive, namespace, release = self._chart_and_release(app, chart)
        values_files = []
        static = os.path.join(app.sync_fluxcd_manifest, chart, f"{chart}-static-overrides.yaml")
        if os.path.isfile(static):
            values_files.append(static)
        values_files.append(overrides_file)
        if self._in_sync(archive, namespace, release, values_files):
            return
        argv = [HELM, "upgrade", "--install", release, archive, "--namespace", namespace]
        argv += ["--create-namespace"]
        for path in values_files:
            argv += ["--values", path]
        self.helm_runs.append(argv)
        self._helm_cli(argv)

    def _helm_cli(self, argv: list[str]) -> str:
        env = dict(os.environ, KUBECONFIG=kubernetes.KUBERNETES_ADMIN_CONF, **HELM_ENV)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise exception.SysinvException(f"{' '.join(argv)} failed: {proc.stderr}")
        return proc.stdout

    def _in_sync(self, archive: str, namespace: str, release: str, values_files: list[str]) -> bool:
        """helm-controller's test: same chart version and same values as the deployed release."""
        env = dict(os.environ, KUBECONFIG=kubernetes.KUBERNETES_ADMIN_CONF, **HELM_ENV)
        status = subprocess.run(
            [HELM, "list", "--namespace", namespace, "--filter", f"^{release}$", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        deployed = json.loads(status.stdout or "[]") if status.returncode == 0 else []
        if not deployed or deployed[0].get("status") != "deployed":
            return False
        chart_version = os.path.basename(archive).removesuffix(".tgz")
        if deployed[0].get("chart") != chart_version:
            return False
        current = json.loads(
            self._helm_cli([HELM, "get", "values", release, "-n", namespace, "-o", "json"])
            or "null"
        )
        desired: dict[str, Any] = {}
        for path in values_files:
            with open(path) as f:
                desired = coalesce(desired, yaml.safe_load(f) or {})
        return bool(current == desired)


class AppImageParser:
    """The image references sysinv finds in chart values and overrides (the forms used here)."""

    TAG_LIST = ["tag", "imageTag", "imagetag"]

    def find_images_in_dict(self, var_dict: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if not isinstance(var_dict, dict):
            return found
        for key, value in var_dict.items():
            lowered = key.lower() if isinstance(key, str) else key
            if lowered == "images" and isinstance(value, dict):
                found[key] = {"tags": value["tags"]} if "tags" in value else dict(value)
            elif lowered == "image":
                if isinstance(value, dict):
                    image = {k: value[k] for k in ("registry", "repository", "tag") if k in value}
                    if image:
                        found[key] = image
                elif isinstance(value, str) or value is None:
                    found[key] = value
            elif lowered in self.TAG_LIST and (isinstance(value, str) or value is None):
                found[key] = value
            elif isinstance(value, dict):
                nested = self.find_images_in_dict(value)
                if nested:
                    found[key] = nested
        return found

    def generate_download_images_list(
        self, download_imgs_dict: dict[str, Any], download_imgs_list: list[str]
    ) -> list[str]:
        for key, value in download_imgs_dict.items():
            lowered = key.lower() if isinstance(key, str) else key
            if lowered == "images" and isinstance(value, dict):
                tags = value.get("tags", value)
                download_imgs_list.extend(v for v in tags.values() if isinstance(v, str) and v)
            elif lowered == "image":
                image = ""
                if isinstance(value, dict):
                    try:
                        if value.get("registry"):
                            image = f"{value['registry']}/{value['repository']}:{value['tag']}"
                        else:
                            image = f"{value['repository']}:{value['tag']}"
                    except (KeyError, TypeError):
                        image = ""
                elif isinstance(value, str):
                    image = value
                    for tag_key in self.TAG_LIST:
                        if download_imgs_dict.get(tag_key):
                            image = f"{image}:{download_imgs_dict[tag_key]}"
                            break
                if re.search(r"/.+:.+$", image):
                    download_imgs_list.append(image)
            elif isinstance(value, dict):
                self.generate_download_images_list(value, download_imgs_list)
        return sorted(set(download_imgs_list))


def new_hook_info(mode: str, lifecycle_type: str, timing: str, operation: str) -> LifecycleHookInfo:
    """A hook as sysinv builds one with LifecycleHookInfo().init(...)."""
    hook = LifecycleHookInfo()
    hook.init(mode, lifecycle_type, timing, operation)
    return hook
