"""What a StarlingX controller has and this machine lacks, provided before sysinv is imported.

Nothing inside sysinv is replaced (see <starlingx>/SOURCES.md); only the world around it:

- the `sysinv` user and group, which sysinv looks up when it is imported (to own its lock
  directory), answered as sysinv's own tests/unit_coverage/conftest.py answers them;
- the lock directory itself: sysinv's own TOX_WORK_DIR hook sets SYSINV_VOLATILE_PATH;
- the Debian release sysinv reads from /etc/os-release to choose its code paths (ruamel.yaml's
  API, importlib.metadata's): bullseye on Python 3.9, trixie on 3.13, as on the controllers;
- the platform's directories (/opt/platform, /scratch, /var/stx_app/plugins, the flags in
  /var/run and /etc/platform), redirected under one temporary root, emptied between tests.

`fm_core` (fault management's C extension) and sysinv's own entry points come from the venv
scripts/sysinv-venv.sh builds. Import this module before anything imports sysinv.
"""

from __future__ import annotations

import eventlet

# What sysinv's own harness (sysinv/tests/base.py) does on import, done first here: before
# anything (the Kubernetes client, urllib3) imports ssl, or eventlet's green ssl recurses.
eventlet.monkey_patch(os=False)

import atexit  # noqa: E402
import datetime  # noqa: E402
import grp  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from unittest import mock  # noqa: E402

ROOT = Path(tempfile.mkdtemp(prefix="portieris-sysinv-real-"))
atexit.register(shutil.rmtree, ROOT, True)
LOCKS = ROOT / "var-run-sysinv"
LOCKS.mkdir()
PLATFORM = ROOT / "platform"
"""Everything below is emptied before each test."""

os.environ["TOX_WORK_DIR"] = str(LOCKS)
os.environ.setdefault("PBR_VERSION", "1.0.0")  # fmclient imports pbr from its source folder

_real_getpwnam = pwd.getpwnam


def _getpwnam(name: str) -> pwd.struct_passwd:
    """The sysinv user is this process's user (root here, sysinv on a controller)."""
    if name == "sysinv":
        return pwd.getpwuid(os.getuid())
    return _real_getpwnam(name)


mock.patch("pwd.getpwnam", side_effect=_getpwnam).start()
mock.patch("grp.getgrnam", return_value=grp.getgrgid(os.getgid())).start()

if not hasattr(datetime, "UTC"):  # Python < 3.11: tests/fixtures/pki.py names datetime.UTC
    datetime.UTC = datetime.timezone.utc  # type: ignore[attr-defined,misc]

DEBIAN_CODENAME = "bullseye" if sys.version_info < (3, 10) else "trixie"

_real_open = open


def _open(file: object, *args: object, **kwargs: object) -> object:
    if file == "/etc/os-release":
        return io.StringIO(f"ID=debian\nVERSION_CODENAME={DEBIAN_CODENAME}\n")
    return _real_open(file, *args, **kwargs)  # type: ignore[call-overload]


# sysinv.common.utils.get_debian_codename() reads /etc/os-release once (lru_cache), while
# sysinv.common.utils is imported: the answer is the controller's release from then on.
with mock.patch("builtins.open", side_effect=_open):
    from sysinv.common import utils as _cutils

    assert _cutils.get_debian_codename() == DEBIAN_CODENAME

import tsconfig.tsconfig as tsc  # noqa: E402
from sysinv.common import constants, plugin_manager  # noqa: E402
from sysinv.helm import common as helm_common  # noqa: E402

PATHS = {
    # a controller's directory -> where it is here
    "helm_overrides": PLATFORM / "opt-platform" / "helm",
    "fluxcd": PLATFORM / "opt-platform" / "fluxcd",
    "ssl_ca": PLATFORM / "opt-platform" / "config" / "ssl_ca",
    "scratch": PLATFORM / "scratch",
    "plugins_pth": PLATFORM / "var-stx_app-plugins",
    "iso_apps": PLATFORM / "usr-local-share-applications-helm",
    "volatile": PLATFORM / "var-run",
    "platform_conf": PLATFORM / "etc-platform",
    "helm_repos": PLATFORM / "var-www-pages-helm_charts",
}

_REDIRECTS = [
    (helm_common, "HELM_OVERRIDES_PATH", str(PATHS["helm_overrides"])),
    (helm_common, "HELM_REPO_BASE_PATH", str(PATHS["helm_repos"])),
    (plugin_manager, "HELM_OVERRIDES_PATH", str(PATHS["helm_overrides"])),
    (constants, "APP_PENDING_REAPPLY_FLAG", str(PATHS["helm_overrides"] / ".app_reapply")),
    (constants, "APP_FLUXCD_BASE_PATH", str(PATHS["fluxcd"])),
    (constants, "APP_FLUXCD_DATA_PATH", str(PATHS["fluxcd"])),
    (constants, "SSL_CERT_CA_LIST_SHARED_DIR", str(PATHS["ssl_ca"])),
    (constants, "APP_INSTALL_ROOT_PATH", str(PATHS["scratch"])),
    (constants, "APP_INSTALL_PATH", str(PATHS["scratch"] / "apps")),
    (plugin_manager, "APP_PLUGIN_PATH", str(PATHS["plugins_pth"])),
    (constants, "HELM_APP_ISO_INSTALL_PATH", str(PATHS["iso_apps"])),
    (constants, "ANSIBLE_BOOTSTRAP_FLAG", str(PATHS["volatile"] / ".ansible_bootstrap")),
    (
        tsc,
        "VOLATILE_CONTROLLER_CONFIG_COMPLETE",
        str(PATHS["volatile"] / ".controller_config_complete"),
    ),
    (tsc, "RESTORE_IN_PROGRESS_FLAG", str(PATHS["platform_conf"] / ".restore_in_progress")),
    (
        constants,
        "USM_UPGRADE_IN_PROGRESS",
        str(PATHS["platform_conf"] / ".usm_upgrade_in_progress"),
    ),
]
for _module, _name, _value in _REDIRECTS:
    setattr(_module, _name, _value)

REAL_PLATFORM_PATHS = (
    "/opt/platform",
    "/scratch",
    "/var/stx_app",
    "/var/run/sysinv",
    "/usr/local/share/applications/helm",
    "/var/www/pages/helm_charts",
)
"""Paths of a controller sysinv would write to: none may appear on this machine."""
EXISTING_REAL_PATHS = {p for p in REAL_PLATFORM_PATHS if os.path.exists(p)}


def reset_platform() -> None:
    """An empty platform, as a new conductor process finds it: the directories exist, nothing
    is in them, and no application plugin of an earlier test is on the path or imported."""
    platform = str(PLATFORM)
    sys.path[:] = [p for p in sys.path if not p.startswith(platform)]
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(platform):
            del sys.modules[name]
    importlib.invalidate_caches()
    shutil.rmtree(PLATFORM, ignore_errors=True)
    for path in PATHS.values():
        path.mkdir(parents=True)


reset_platform()
