"""sysinv.common.plugin_manager: plugins discovered by entry points.

`systemconfig.helm_applications` maps an application to the entry-point group of its chart
plugins (`systemconfig.helm_plugins.<app>`); chart plugins are named `[NNN_]<chart>[_NNN]`,
loaded sorted by entry-point name and constructed with the HelmOperator. Lifecycle and
kustomize operators are constructed with no arguments.
"""

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from sysinv.common import utils

PLUGIN_NS_HELM_APPLICATIONS = "systemconfig.helm_applications"
PLUGIN_NS_KUSTOMIZE_OPS = "systemconfig.fluxcd.kustomize_ops"
PLUGIN_NS_LIFECYCLE_OPS = "systemconfig.app_lifecycle"
NAME_PATTERN = re.compile(r"^(?:(?P<prefix>\d{3})_)?(?P<name>.*?)(?:_(?P<suffix>\d{3}))?$")


@dataclass
class Plugin:
    name: str
    entry_point: str
    operator: Any
    prefix: int | None
    suffix: int | None


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


class PluginManager:
    def __init__(self) -> None:
        self._plugins: dict[str, dict[str, Plugin]] = {}
        self._subnamespace_plugins: dict[str, dict[str, list[str]]] = {}

    def _load(self, group: str, args: tuple[Any, ...], key_prefix: str = "") -> list[Plugin]:
        loaded = []
        for ep in _entry_points(group):
            match = NAME_PATTERN.match(ep.name)
            if not match:
                continue
            prefix, suffix = match.group("prefix"), match.group("suffix")
            plugin = Plugin(
                name=match.group("name"),
                entry_point=ep.name,
                operator=ep.load()(*args),
                prefix=int(prefix) if prefix else None,
                suffix=int(suffix) if suffix else None,
            )
            store = self._plugins.setdefault(
                group if not key_prefix else PLUGIN_NS_HELM_APPLICATIONS, {}
            )
            key = f"{key_prefix}{plugin.name}"
            old = store.get(key)
            # A higher suffix overrides (newer operators of the same application).
            if old is None or (plugin.suffix or 0) >= (old.suffix or 0):
                store[key] = plugin
            loaded.append(plugin)
        return loaded

    def discover_plugins(self, helm_operator: Any) -> None:
        self._plugins = {}
        self._subnamespace_plugins = {}
        for ep in _entry_points(PLUGIN_NS_HELM_APPLICATIONS):
            app = utils.find_app_plugin_name(ep.name)
            charts = self._load(ep.value, (helm_operator,), key_prefix=f"{app}:")
            relation = self._subnamespace_plugins.setdefault(PLUGIN_NS_HELM_APPLICATIONS, {})
            names = relation.setdefault(app, [])
            names.extend(c.name for c in charts if c.name not in names)
        self._load(PLUGIN_NS_KUSTOMIZE_OPS, ())
        self._load(PLUGIN_NS_LIFECYCLE_OPS, ())

    def get_plugin(self, namespace: str, plugin_name: str, app_name: str | None = None) -> Any:
        plugins = self._plugins.get(namespace, {})
        if namespace == PLUGIN_NS_HELM_APPLICATIONS:
            if app_name:
                return plugins.get(f"{utils.find_app_plugin_name(app_name)}:{plugin_name}")
            return next((p for p in plugins.values() if p.name == plugin_name), None)
        return plugins.get(plugin_name)

    def get_subnamespace_relation_by_plugin_name(
        self, namespace: str, plugin_name: str
    ) -> list[str]:
        return self._subnamespace_plugins.get(namespace, {}).get(plugin_name, [])
