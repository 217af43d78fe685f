"""sysinv.helm.helm: HelmOperator, the system overrides of the applications' charts."""

import contextlib
import copy
import os
import tempfile
from typing import Any

import yaml

from sysinv.common import exception, plugin_manager, utils


def build_overrides_filename(chart_name: str, namespace: str | None = None) -> str:
    """sysinv.helm.utils.build_overrides_filename."""
    filename = chart_name + ".yaml"
    return f"{namespace}-{filename}" if namespace else filename


def coalesce(base: Any, override: Any) -> Any:
    """Merge values as helm merges --values files: maps merge, null deletes, the rest replaces."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class HelmOperator:
    def __init__(self, dbapi: Any = None) -> None:
        self.dbapi = dbapi
        self._context: dict[str, Any] = {}
        self.plugins = plugin_manager.PluginManager()
        self.discover_plugins()

    def discover_plugins(self) -> None:
        self.plugins.discover_plugins(self)

    @property
    def context(self) -> dict[str, Any]:
        return self._context

    def get_app_lifecycle_operator(self, plugin_name: str) -> Any:
        plugin = self.plugins.get_plugin(
            plugin_manager.PLUGIN_NS_LIFECYCLE_OPS, utils.find_app_plugin_name(plugin_name)
        )
        return plugin.operator if plugin else None

    def get_helm_system_application_relation(self, plugin_name: str) -> list[str]:
        return self.plugins.get_subnamespace_relation_by_plugin_name(
            plugin_manager.PLUGIN_NS_HELM_APPLICATIONS, plugin_name
        )

    def get_chart_operator(self, plugin_name: str, app_name: str | None = None) -> Any:
        plugin = self.plugins.get_plugin(
            plugin_manager.PLUGIN_NS_HELM_APPLICATIONS, plugin_name, app_name=app_name
        )
        return plugin.operator if plugin else None

    def get_helm_chart_namespaces(self, chart_name: str) -> list[str]:
        chart_op = self.get_chart_operator(chart_name)
        return list(chart_op.SUPPORTED_NAMESPACES) if chart_op else []

    def get_helm_chart_namespaces_by_app(self, chart_name: str, app_name: str) -> list[str]:
        chart_op = self.get_chart_operator(chart_name, app_name=app_name)
        if not chart_op:
            return []
        return list(chart_op.get_namespaces_by_app(utils.find_app_plugin_name(app_name)))

    def get_helm_chart_overrides(
        self, chart_name: str, cnamespace: str | None = None, app_name: str | None = None
    ) -> dict[str, Any]:
        self._context = {}  # sysinv's @helm_context: a fresh context per call
        overrides: dict[str, Any] = {}
        chart_op = self.get_chart_operator(chart_name, app_name=app_name)
        if chart_op:
            overrides.update(chart_op.get_overrides(cnamespace))
        return overrides

    def get_helm_application_namespaces(self, app_name: str) -> dict[str, list[str]]:
        app = self.dbapi.kube_app_get(app_name)
        charts = self.get_helm_system_application_relation(utils.find_app_plugin_name(app_name))
        if charts:
            result = {}
            for chart in charts:
                with contextlib.suppress(exception.InvalidHelmNamespace):
                    result[chart] = self.get_helm_chart_namespaces_by_app(chart, app_name)
            return result
        generic: dict[str, list[str]] = {}
        for row in self.dbapi.helm_override_get_all(app.id):
            generic.setdefault(row.name, []).append(row.namespace)
        return generic

    def get_helm_application_overrides(
        self, app_name: str, cnamespace: str | None = None
    ) -> dict[str, Any]:
        overrides = {}
        for chart in self.get_helm_system_application_relation(
            utils.find_app_plugin_name(app_name)
        ):
            try:
                overrides[chart] = self.get_helm_chart_overrides(chart, cnamespace, app_name)
            except exception.InvalidHelmNamespace:
                continue
        return overrides

    def merge_overrides(self, file_overrides: list[str] | None = None) -> str:
        merged: dict[str, Any] = {}
        for document in file_overrides or []:
            merged = coalesce(merged, yaml.safe_load(document) or {})
        return yaml.dump(merged)

    def generate_helm_application_overrides(
        self,
        path: str,
        app_name: str,
        mode: Any = None,
        cnamespace: str | None = None,
        chart_info: Any = None,
        combined: bool = False,
    ) -> list[str]:
        """Write each chart's overrides ({ns: values}, with the user's merged over them)."""
        app = self.dbapi.kube_app_get(app_name)
        files = []
        for chart_name, overrides in self.get_helm_application_overrides(
            app_name, cnamespace
        ).items():
            if combined:
                documents = []
                for chart_namespace in overrides:
                    try:
                        row = self.dbapi.helm_override_get(app.id, chart_name, chart_namespace)
                    except exception.HelmOverrideNotFound:
                        continue
                    if row.user_overrides:
                        user = yaml.safe_load(row.user_overrides)
                        documents.append(yaml.dump({chart_namespace: user}))
                if documents:
                    documents.insert(0, yaml.dump(overrides))
                    overrides = yaml.safe_load(self.merge_overrides(file_overrides=documents))
            files.append(self._write_chart_overrides(path, chart_name, cnamespace, overrides))
        return files

    def _write_chart_overrides(
        self, path: str, chart_name: str, cnamespace: str | None, overrides: dict[str, Any]
    ) -> str:
        filename = build_overrides_filename(chart_name, cnamespace)
        # A chart with a single namespace is written without the namespace level.
        if len(overrides) == 1:
            return self._write_overrides(path, filename, overrides[next(iter(overrides))])
        return self._write_overrides(path, filename, overrides)

    def _write_overrides(self, path: str, filename: str, overrides: Any) -> str:
        os.makedirs(path, exist_ok=True)
        filepath = os.path.join(path, filename)
        fd, tmppath = tempfile.mkstemp(dir=path, prefix=filename, text=True)
        with os.fdopen(fd, "w") as f:
            yaml.dump(overrides, f, default_flow_style=False)
        os.rename(tmppath, filepath)
        os.chmod(filepath, 0o644)
        return filepath
