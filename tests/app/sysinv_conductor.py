"""One step of sysinv's conductor, run inside the virtualenv the application's wheel is
installed in, against the sysinv test double (tests/sysinv_double on PYTHONPATH).

    python sysinv_conductor.py CONTEXT.json COMMAND [ARGUMENT.json]

The database lives in the context's state file between steps (sysinv keeps it in
PostgreSQL); the cluster is the kube-apiserver of the context's kubeconfig. Commands:

  upload      ARGUMENT {"system", "hosts", "certificates", "other_apps", "app"}: a fresh
              database with the platform, its applications, and the application uploaded
              (a helm override row per chart namespace)
  override    ARGUMENT {"chart", "namespace", "values"}: `system helm-override-update --values`
  status      ARGUMENT {"status"}: set the application's status
  discover    the plugins sysinv loads for the application, by entry point
  overrides   write the combined overrides files (system overrides, user overrides over them)
  hook        ARGUMENT {"mode", "type", "timing", "operation", "extra"}: one lifecycle hook

It prints one JSON object: the command's result, or {"error": {"type", "message"}}.
Standard library and the double only: it must not import the repository's tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from sysinv.common import constants, kubernetes
from sysinv.conductor import kube_app, manager
from sysinv.db import api
from sysinv.helm import helm
from sysinv.helm.lifecycle_hook import LifecycleHookInfo

ROWS = {
    "hosts": api.Host,
    "apps": api.KubeApp,
    "overrides": api.HelmOverride,
    "certificates": api.Certificate,
}


def configure(context: dict[str, Any]) -> None:
    """Point the double at the test's cluster, helm and directories."""
    kubernetes.KUBERNETES_ADMIN_CONF = context["kubeconfig"]
    kube_app.HELM = context["helm"]
    kube_app.HELM_ENV.update(context["helm_env"])
    kube_app.APP_INSTALL_PATH = context["install_path"]
    kube_app.APP_FLUXCD_DATA_PATH = context["fluxcd_path"]
    kube_app.HELM_OVERRIDES_PATH = context["overrides_path"]
    constants.PLATFORM_CONF_PATH = context["platform_conf_path"]
    constants.USM_UPGRADE_IN_PROGRESS = os.path.join(
        context["platform_conf_path"], ".usm_upgrade_in_progress"
    )
    constants.ANSIBLE_BOOTSTRAP_FLAG = os.path.join(
        context["platform_conf_path"], ".ansible_bootstrap"
    )
    constants.SSL_CERT_CA_LIST_SHARED_DIR = context["ssl_ca_dir"]


def load(state: Path) -> api.Connection:
    db = api.reset_instance()
    if not state.exists():
        return db
    saved = json.loads(state.read_text())
    db.system = api.System(**saved["system"])
    for name, row in ROWS.items():
        setattr(db, name, [row(**values) for values in saved[name]])
    ids = [r.id for r in (*db.apps, *db.overrides)]
    db._ids = iter(range(max(ids, default=0) + 1, 1 << 31))
    return db


def save(db: api.Connection, state: Path) -> None:
    saved = {"system": dataclasses.asdict(db.system)}
    for name in ROWS:
        saved[name] = [dataclasses.asdict(row) for row in getattr(db, name)]
    state.write_text(json.dumps(saved, indent=1))


def the_app(db: api.Connection, context: dict[str, Any]) -> api.KubeApp:
    return db.kube_app_get(context["app_name"])


def upload(db: api.Connection, context: dict[str, Any], argument: dict[str, Any]) -> Any:
    db.system = api.System(**argument["system"])
    db.hosts = [api.Host(**host) for host in argument["hosts"]]
    db.certificates = [api.Certificate(**cert) for cert in argument["certificates"]]
    # Other applications, already applied: their charts' override rows name their namespaces.
    for other in argument.get("other_apps", []):
        charts = other.pop("charts")
        row = db.kube_app_create(other)
        for chart, namespaces in charts.items():
            for namespace in namespaces:
                db.helm_override_create({"app_id": row.id, "name": chart, "namespace": namespace})
    app = db.kube_app_create(argument["app"])
    operator = helm.HelmOperator(db)
    for chart, namespaces in operator.get_helm_application_namespaces(app.name).items():
        for namespace in namespaces:
            db.helm_override_create({"app_id": app.id, "name": chart, "namespace": namespace})
    return {"app_id": app.id}


def override(db: api.Connection, context: dict[str, Any], argument: dict[str, Any]) -> Any:
    app = the_app(db, context)
    row = db.helm_override_update(
        app.id,
        argument["chart"],
        argument["namespace"],
        {"user_overrides": argument["values"]},
    )
    return {"user_overrides": row.user_overrides}


def status(db: api.Connection, context: dict[str, Any], argument: dict[str, Any]) -> Any:
    app = the_app(db, context)
    app.status = argument["status"]
    return {"status": app.status}


def discover(db: api.Connection, context: dict[str, Any], argument: Any) -> Any:
    operator = helm.HelmOperator(db)
    charts = operator.get_helm_system_application_relation(context["app_name"])
    found: dict[str, Any] = {"charts": charts, "modules": {}}
    for chart in charts:
        plugin = operator.get_chart_operator(chart, app_name=context["app_name"])
        found[chart] = describe(plugin) | {
            "CHART": plugin.CHART,
            "HELM_RELEASE": plugin.HELM_RELEASE,
        }
    found["lifecycle"] = describe(operator.get_app_lifecycle_operator(context["app_name"]))
    return found


def describe(plugin: Any) -> dict[str, Any]:
    module = sys.modules[type(plugin).__module__]
    return {"class": f"{module.__name__}.{type(plugin).__name__}", "file": module.__file__}


def overrides(db: api.Connection, context: dict[str, Any], argument: Any) -> Any:
    operator = helm.HelmOperator(db)
    app = kube_app.AppOperator.Application(the_app(db, context))
    files = operator.generate_helm_application_overrides(
        app.sync_overrides_dir, app.name, mode=None, cnamespace=None, combined=True
    )
    return {"files": files}


def conductor(db: api.Connection) -> manager.ConductorManager:
    return manager.ConductorManager(db, helm.HelmOperator(db))


def hook(db: api.Connection, context: dict[str, Any], argument: dict[str, Any]) -> Any:
    info = LifecycleHookInfo()
    info.init(argument["mode"], argument["type"], argument["timing"], argument["operation"])
    info.extra.update(argument.get("extra") or {})
    conductor(db).app_lifecycle_actions(None, the_app(db, context), info)
    return {"ran": True}


COMMANDS = {
    "upload": upload,
    "override": override,
    "status": status,
    "discover": discover,
    "overrides": overrides,
    "hook": hook,
}


def main(argv: list[str]) -> int:
    context = json.loads(Path(argv[1]).read_text())
    argument = json.loads(Path(argv[3]).read_text()) if len(argv) > 3 else None
    configure(context)
    state = Path(context["state"])
    db = load(state)
    try:
        result = COMMANDS[argv[2]](db, context, argument)
    except Exception as error:  # reported to the test, which decides
        result = {
            "error": {
                "type": type(error).__name__,
                "message": str(error),
                "traceback": traceback.format_exc(),
            }
        }
    save(db, state)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
