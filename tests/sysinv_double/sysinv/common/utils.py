"""sysinv.common.utils: the helpers the plugins call."""

from typing import Any

from sysinv.common import constants


def is_aio_simplex_system(dbapi: Any) -> bool:
    system = dbapi.isystem_get_one()
    return bool(
        system.system_type == constants.TIS_AIO_BUILD
        and system.system_mode == constants.SYSTEM_MODE_SIMPLEX
    )


def is_app_openstack(app_name: str) -> bool:
    return app_name.startswith("stx-openstack") or app_name == "openstack"


def find_app_plugin_name(app_name: str) -> str:
    return "openstack" if is_app_openstack(app_name) else app_name
