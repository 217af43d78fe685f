"""sysinv.db.api: an in-memory dbapi with the methods the plugins call, same signatures.

Rows are objects with attribute and item access, as sysinv's objects are.
"""

import itertools
from dataclasses import dataclass, field
from typing import Any

from sysinv.common import constants, exception


class _Row:
    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


@dataclass
class System(_Row):
    system_type: str = constants.TIS_AIO_BUILD
    system_mode: str = constants.SYSTEM_MODE_SIMPLEX
    name: str = "controller"
    capabilities: dict[str, Any] = field(default_factory=dict)


@dataclass
class Host(_Row):
    hostname: str
    personality: str = constants.CONTROLLER
    administrative: str = constants.ADMIN_UNLOCKED
    operational: str = constants.OPERATIONAL_ENABLED
    availability: str = constants.AVAILABILITY_AVAILABLE
    vim_progress_status: str = constants.VIM_SERVICES_ENABLED
    recordtype: str = "standard"


@dataclass
class KubeApp(_Row):
    id: int
    name: str
    app_version: str
    status: str = constants.APP_UPLOAD_SUCCESS
    active: bool = False
    mode: str | None = None
    progress: str | None = None
    manifest_name: str = "fluxcd-manifests"
    manifest_file: str = "fluxcd-manifests"
    recovery_attempts: int = 0
    app_metadata: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        """Objects are saved in place here."""


@dataclass
class HelmOverride(_Row):
    id: int
    name: str
    namespace: str
    app_id: int
    user_overrides: str | None = None
    system_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Certificate(_Row):
    uuid: str
    certtype: str
    signature: str
    subject: str = ""
    issuer: str = ""


def _matches(value: Any, wanted: Any) -> bool:
    if not wanted:
        return True
    return value in wanted if isinstance(wanted, list) else value == wanted


class Connection:
    def __init__(self) -> None:
        self.system = System()
        self.hosts: list[Host] = []
        self.apps: list[KubeApp] = []
        self.overrides: list[HelmOverride] = []
        self.certificates: list[Certificate] = []
        self._ids = itertools.count(1)

    # --- system and hosts

    def isystem_get_one(self) -> System:
        return self.system

    def count_hosts_matching_criteria(
        self,
        personality: Any = None,
        administrative: Any = None,
        operational: Any = None,
        availability: Any = None,
        vim_progress_status: Any = None,
        reboot_needed: Any = None,
    ) -> int:
        return sum(
            1
            for h in self.hosts
            if h.recordtype == "standard"
            and _matches(h.personality, personality)
            and _matches(h.administrative, administrative)
            and _matches(h.operational, operational)
            and _matches(h.availability, availability)
            and _matches(h.vim_progress_status, vim_progress_status)
        )

    # --- applications

    def kube_app_create(self, values: dict[str, Any]) -> KubeApp:
        app = KubeApp(id=next(self._ids), **values)
        self.apps.append(app)
        return app

    def kube_app_get(self, name: str) -> KubeApp:
        for app in self.apps:
            if app.name == name and app.status != constants.APP_INACTIVE_STATE:
                return app
        raise exception.KubeAppNotFound(name=name)

    def kube_app_get_all(self) -> list[KubeApp]:
        return [a for a in self.apps if a.status != constants.APP_INACTIVE_STATE]

    def kube_app_get_inactive(self, name: str, **kwargs: Any) -> list[KubeApp]:
        return [a for a in self.apps if a.name == name and a.status == constants.APP_INACTIVE_STATE]

    # --- helm overrides

    def _override(self, app_id: int, name: str, namespace: str) -> HelmOverride:
        for row in self.overrides:
            if (row.app_id, row.name, row.namespace) == (app_id, name, namespace):
                return row
        raise exception.HelmOverrideNotFound(name=name, namespace=namespace)

    def helm_override_create(self, values: dict[str, Any]) -> HelmOverride:
        # sysinv builds the row from `values`: app_id, name and namespace are required columns.
        key = (values["app_id"], values["name"], values["namespace"])
        if any((r.app_id, r.name, r.namespace) == key for r in self.overrides):
            raise exception.HelmOverrideAlreadyExists(name=key[1], namespace=key[2])
        row = HelmOverride(id=next(self._ids), **values)
        self.overrides.append(row)
        return row

    def helm_override_get(self, app_id: int, name: str, namespace: str) -> HelmOverride:
        return self._override(app_id, name, namespace)

    def helm_override_get_all(self, app_id: int) -> list[HelmOverride]:
        return [r for r in self.overrides if r.app_id == app_id]

    def helm_override_update(
        self, app_id: int, name: str, namespace: str, values: dict[str, Any]
    ) -> HelmOverride:
        row = self._override(app_id, name, namespace)
        for key, value in values.items():
            setattr(row, key, value)
        return row

    def helm_override_destroy(self, app_id: int, name: str, namespace: str) -> None:
        self.overrides.remove(self._override(app_id, name, namespace))

    # --- certificates

    def certificate_get_list(self, **kwargs: Any) -> list[Certificate]:
        return list(self.certificates)


_INSTANCE: Connection | None = None


def get_instance() -> Connection:
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = Connection()
    return _INSTANCE


def reset_instance() -> Connection:
    """Tests only: a fresh, empty database."""
    global _INSTANCE
    _INSTANCE = Connection()
    return _INSTANCE
