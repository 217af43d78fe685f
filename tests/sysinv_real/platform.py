"""The platform the real-sysinv tests run on.

- A real kube-apiserver (tests/e2e/controlplane.py) holding what bootstrap creates: the platform
  CA Secret cert-manager/system-local-ca and its ClusterIssuer (on stand-ins of cert-manager's
  CRDs), kube-system's registry Secret. sysinv's own KubeOperator talks to it through
  KUBERNETES_ADMIN_CONF, so every Kubernetes call the plugins make is a real API call.
- The application tarball (`make stx-app`), taken through the steps of `system
  application-upload` with sysinv's own functions: the API's tarball checks, then the conductor's
  extraction, plugin install, manifest copy, chart records and metadata load.
- A conductor (sysinv's ConductorManager, set up as its _start() sets up the application
  framework) with its AppOperator and HelmOperator.

Boundaries answered here, beyond those of boundary.py: the other StarlingX services the conductor
asks before an automatic re-apply (USM's deploy state, VIM's software-update strategy), the
health of the kube-controller-manager, scheduler and kubelet (none run beside the test
kube-apiserver: only the kube-apiserver's /readyz is checked) and `helm-upload` (StarlingX's
script that copies a chart into the platform's helm repository: a three-line stand-in).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import eventlet
import yaml
from cryptography import x509
from oslo_context import context as oslo_context
from sysinv.api.controllers.v1 import kube_app as kube_api
from sysinv.api.controllers.v1 import vim_api
from sysinv.common import app_metadata, kubernetes, usm_service
from sysinv.common import constants as sysinv_constants
from sysinv.common import utils as cutils
from sysinv.conductor import kube_app, manager
from sysinv.helm import utils as helm_utils
from sysinv.helm.lifecycle_hook import LifecycleHookInfo
from sysinv.objects import kube_app as kubeapp_obj
from sysinv.tests.helm import base as helm_base

from tests.e2e.controlplane import REPO_ROOT, ControlPlane, binaries
from tests.fixtures.pki import TestCA
from tests.fixtures.stx_objects import (
    establish_cert_manager_crds,
    platform_ca_issuer,
    platform_ca_secret,
    registry_secret,
)
from tests.sysinv_real import boundary

APP = "portieris"
NS = "portieris"
WEBHOOK_LABEL = {"app.kubernetes.io/name": "portieris"}
WEBHOOK_CONFIGURATION = "image-admission-config"
COMPONENT_LABEL = "app.starlingx.io/component"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
BACKUP_SECRET = "portieris-webhook-configuration-backup"

# Stand-ins for cert-manager's CRDs: the plugin asks whether the Certificate CRD and the
# ClusterIssuer system-local-ca exist; no cert-manager controller runs.


HELM_UPLOAD = """#!/bin/sh
# StarlingX's helm-upload <check-only|upload-only> <repository> <chart.tgz>, as far as sysinv
# relies on it: the chart copied into the platform's repository directory, which is indexed.
set -e
[ "$1" = upload-only ] || exit 0
mkdir -p "{repos}/$2"
cp "$3" "{repos}/$2/"
helm repo index "{repos}/$2"
"""

# --------------------------------------------------------------------------- the tarball


def app_tarball() -> Path:
    """dist/portieris-<version>.tgz, as `make stx-app` builds it (PORTIERIS_STX_APP overrides)."""
    given = os.environ.get("PORTIERIS_STX_APP")
    if given:
        path = Path(given)
    else:
        version = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "build-stx-app.sh"), "--print-version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        path = REPO_ROOT / "dist" / f"portieris-{version}.tgz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build it with `make stx-app`")
    return path


# --------------------------------------------------------------------------- the cluster


def apply(plane: ControlPlane, *objects: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects), check=True)


def get(plane: ControlPlane, *args: str) -> dict[str, Any]:
    """An object as JSON, {} when it does not exist."""
    proc = plane.kubectl("get", *args, "-o", "json")
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def bootstrap_cluster(plane: ControlPlane, platform_ca: TestCA) -> None:
    """What the bootstrap playbook leaves in the cluster for the platform's applications."""
    establish_cert_manager_crds(plane)
    apply(
        plane,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}},
        platform_ca_secret(platform_ca),
        platform_ca_issuer(),
        {
            # kubeadm's record of the cluster, which sysinv reads the Kubernetes version from.
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {
                "ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\n"
                "kind: ClusterConfiguration\n"
                f"kubernetesVersion: {plane.get_json('/version')['gitVersion']}\n"
            },
        },
        registry_secret(sysinv_constants.DOCKER_REGISTRY_SERVER),
    )


def forget_application(plane: ControlPlane) -> None:
    """Remove what a test left of the application (namespaces cannot be deleted: no
    kube-controller-manager finalizes them; their content and labels can)."""
    plane.kubectl("delete", "deployment,secret", "--all", "-n", NS, "--ignore-not-found")
    selector = ",".join(f"{k}={v}" for k, v in WEBHOOK_LABEL.items())
    plane.kubectl("delete", "mutatingwebhookconfiguration", "-l", selector, "--ignore-not-found")
    plane.kubectl("label", "namespace", NS, f"{COMPONENT_LABEL}-")


def webhook_configuration(failure_policy: str = "Fail") -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration (pods only, so it stops nothing here)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION, "labels": dict(WEBHOOK_LABEL)},
        "webhooks": [
            {
                "name": "trust.hooks.securityenforcement.admission.cloud.ibm.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "clientConfig": {
                    "service": {"name": "portieris", "namespace": NS, "path": "/admit"}
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ],
            }
        ],
    }


def deployment() -> dict[str, Any]:
    """The chart's Deployment (no scheduler runs: its pods stay pending)."""
    labels = {"app": "portieris"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "portieris", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "portieris", "image": "portieris:test"}]},
            },
        },
    }


def start_cluster() -> Iterator[tuple[ControlPlane, TestCA]]:
    """The kube-apiserver, with sysinv's KubeOperator, helm and kubectl pointed at it."""
    platform_ca = TestCA.create("system-local-ca")
    with ControlPlane() as plane:
        bootstrap_cluster(plane, platform_ca)
        tools = boundary.ROOT / "bin"
        tools.mkdir(exist_ok=True)
        helm_upload = tools / "helm-upload"
        helm_upload.write_text(HELM_UPLOAD.format(repos=boundary.PATHS["helm_repos"]))
        helm_upload.chmod(0o755)
        saved_path = os.environ.get("PATH", "")
        bins = binaries()
        os.environ["PATH"] = os.pathsep.join(
            [str(tools), os.path.dirname(bins.helm), os.path.dirname(bins.kubectl), saved_path]
        )
        saved_conf = kubernetes.KUBERNETES_ADMIN_CONF
        saved_health = kubernetes.k8s_wait_for_endpoints_health
        kubernetes.KUBERNETES_ADMIN_CONF = plane.kubeconfig

        def apiserver_health(
            tries: int = 20, try_sleep: int = 5, timeout: int = 5, **_: Any
        ) -> bool:
            return bool(
                kubernetes.k8s_health_check(tries, try_sleep, timeout, f"{plane.url}/readyz")
            )

        kubernetes.k8s_wait_for_endpoints_health = apiserver_health
        try:
            yield plane, platform_ca
        finally:
            kubernetes.KUBERNETES_ADMIN_CONF = saved_conf
            kubernetes.k8s_wait_for_endpoints_health = saved_health
            os.environ["PATH"] = saved_path


# --------------------------------------------------------------------------- sysinv


def make_conductor(dbapi: Any, helm_op: Any) -> manager.ConductorManager:
    """sysinv's conductor with its application framework set up as ConductorManager._start()
    sets it up (the rest of _start() configures the host and is not needed here)."""
    conductor = manager.ConductorManager("controller-0", manager.MANAGER_TOPIC)
    conductor.dbapi = dbapi
    conductor._helm = helm_op
    conductor._kube = kubernetes.KubeOperator()
    conductor._kube_app_helper = kube_api.KubeAppHelper(dbapi)
    conductor._app = kube_app.AppOperator(dbapi, helm_op, conductor.apps_metadata)
    return conductor


def check_tarball(tarball: Path) -> tuple[str, str, str, str]:
    """What the API checks before it accepts an application-upload: (name, version,
    manifest name, manifest directory)."""
    helper = kube_api.KubeAppHelper(None)
    with cutils.TempDirectory() as app_path:
        assert cutils.extract_tarfile(app_path, str(tarball)), f"cannot extract {tarball}"
        assert cutils.verify_checksum(app_path), f"{tarball}: checksum.md5 does not verify"
        name, version, _patches = helper._verify_metadata_file(app_path, None, None)
        mname, manifest = helper._find_manifest(app_path, name)
        helper._extract_helm_charts(app_path)
    return name, version, mname, os.path.basename(manifest)


def upload(conductor: manager.ConductorManager, tarball: Path) -> kubeapp_obj.KubeApp:
    """`system application-upload <tarball>`: the API's checks and database row, then what the
    conductor's perform_app_upload does, step by step with its own functions.

    Left out: running tar as the sysinv user (no such user here: tar runs as this process),
    FluxCD's server-side validation of the manifests (no FluxCD controllers run) and the image
    list (images are not pulled here).
    """
    name, version, mname, manifest = check_tarball(tarball)
    dbapi = conductor.dbapi
    dbapi.kube_app_create(
        {
            "name": name,
            "app_version": version,
            "manifest_name": mname,
            "manifest_file": manifest,
            "status": sysinv_constants.APP_UPLOAD_IN_PROGRESS,
        }
    )
    rpc_app = kubeapp_obj.get_by_name(oslo_context.get_admin_context(), name)
    app_op = conductor._app
    app = kube_app.AppOperator.Application(rpc_app)
    app.tarfile = str(tarball)

    os.makedirs(app.sync_fluxcd_manifest_dir)
    kube_app.create_app_path(app.inst_path)
    assert cutils.extract_tarfile(app.inst_path, app.tarfile)
    app_metadata.validate_metadata_file(app.inst_path, sysinv_constants.APP_METADATA_FILE)
    app_op._utils._extract_helm_charts(app.inst_path)
    app_op._helm.plugins.install_plugins(
        app_name=app.name,
        inst_plugins_dir=app.inst_plugins_dir,
        sync_plugins_dir=app.sync_plugins_dir,
    )
    shutil.copytree(app.inst_mfile, app.sync_fluxcd_manifest)
    shutil.copy(
        os.path.join(app.inst_path, sysinv_constants.APP_METADATA_FILE), app.sync_metadata_file
    )
    app_op._upload_helm_charts(app)
    app_op.load_application_metadata_from_file(rpc_app)
    app_op._update_app_status(app, sysinv_constants.APP_UPLOAD_SUCCESS, "completed")
    return kubeapp_obj.get_by_name(oslo_context.get_admin_context(), name)


def write_overrides(conductor: manager.ConductorManager, rpc_app: Any) -> dict[str, Any]:
    """The system overrides file an apply writes (<sync_overrides_dir>/portieris.yaml), as the
    conductor writes it: the plugin's overrides with the user overrides merged over them."""
    app_op = conductor._app
    app = kube_app.AppOperator.Application(rpc_app)
    app.charts = app_op._get_list_of_charts(app)
    conductor._helm.generate_helm_application_overrides(
        app.sync_overrides_dir,
        app.name,
        app.mode,
        cnamespace=None,
        chart_info=app.charts,
        combined=True,
    )
    return read_overrides(rpc_app)


def read_overrides(rpc_app: Any) -> dict[str, Any]:
    app = kube_app.AppOperator.Application(rpc_app)
    path = Path(app.sync_overrides_dir) / helm_utils.build_overrides_filename(APP)
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def set_status(rpc_app: Any, status: str, active: bool = True) -> None:
    rpc_app.status = status
    rpc_app.active = active
    rpc_app.save()


# --------------------------------------------------------------------------- the test case


class PortierisPlatform(helm_base.HelmTestCaseMixin):
    """Mixed into one of sysinv's database test cases (dbbase.*HostTestCase): the system and its
    hosts are sysinv's; the portieris tarball is uploaded; a conductor runs the application
    framework. `cluster`, `platform_ca` and `tarball` are set by the autouse fixture."""

    cluster: ControlPlane
    platform_ca: TestCA
    tarball: Path

    def setUp(self) -> None:
        super().setUp()
        # The platform services the conductor asks before an automatic apply: no software
        # deployment (USM's REST API) and no update strategy (VIM's) is in progress.
        for module, name, answer in (
            (usm_service, "is_deploy_in_progress", False),
            (vim_api, "vim_get_sw_update_strategy", {}),
        ):
            patcher = mock.patch.object(module, name, return_value=answer)
            patcher.start()
            self.addCleanup(patcher.stop)
        self.context = oslo_context.get_admin_context()
        self.conductor = make_conductor(self.dbapi, self.operator)
        self.app_op = self.conductor._app
        self.rpc_app = upload(self.conductor, self.tarball)
        self.applies: list[dict[str, Any]] = []

    def record_applies(self) -> None:
        """Stop an apply where sysinv would hand the manifests to FluxCD: AppOperator's
        perform_app_apply records the call instead (the conductor's own perform_app_apply,
        with the lifecycle hooks around it, runs)."""

        def perform_app_apply(
            rpc_app: Any, mode: Any, hook_info: Any, *args: Any, **kwargs: Any
        ) -> bool:
            self.applies.append(
                {"app": rpc_app.name, "mode": mode, "hook": hook_info.operation, **kwargs}
            )
            return True

        patcher = mock.patch.object(self.app_op, "perform_app_apply", side_effect=perform_app_apply)
        patcher.start()
        self.addCleanup(patcher.stop)
        # The conductor runs its apply in a greenthread: note when one has finished.
        self.conductor_applies_done = 0
        conductor_apply = self.conductor.perform_app_apply

        def observed(*args: Any, **kwargs: Any) -> Any:
            try:
                return conductor_apply(*args, **kwargs)
            finally:
                self.conductor_applies_done += 1

        patcher = mock.patch.object(self.conductor, "perform_app_apply", side_effect=observed)
        patcher.start()
        self.addCleanup(patcher.stop)

    def wait_for_conductor_applies(self, count: int, timeout: float = 20.0) -> int:
        """Let the conductor's apply greenthreads run until `count` of them have finished (or
        the timeout passes); the number finished."""
        deadline = time.monotonic() + timeout
        while self.conductor_applies_done < count and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        return self.conductor_applies_done

    def hook(
        self, mode: str, lifecycle_type: str, timing: str | None, operation: str, **extra: Any
    ) -> LifecycleHookInfo:
        info = LifecycleHookInfo()
        info.init(mode, lifecycle_type, timing, operation)
        info.extra.update(extra)
        return info

    def run_hook(self, info: LifecycleHookInfo, *, from_conductor: bool = True) -> None:
        """The hook as sysinv runs it: from the conductor (checks, operations), or from inside
        AppOperator (resources: no context, no conductor)."""
        rpc_app = kubeapp_obj.get_by_name(self.context, APP)
        if from_conductor:
            self.conductor.app_lifecycle_actions(self.context, rpc_app, info)
        else:
            self.app_op.app_lifecycle_actions(None, None, rpc_app, info)

    def _clear_attrs(self) -> None:
        # pytest binds the test method on the instance and deletes it after the run
        # (_pytest/unittest.py); sysinv's cleanup deletes every public attribute before that.
        method = self.__dict__.pop(self._testMethodName, None)
        super()._clear_attrs()
        if method is not None:
            setattr(self, self._testMethodName, method)

    # --- the platform's facts

    def install_ssl_ca(self, ca: TestCA) -> str:
        """`system certificate-install -m ssl_ca`: a certificate row and the PEM file named by
        its signature in the shared ssl_ca directory."""
        signature = f"ssl_ca_{ca.cert.serial_number}"
        self.dbapi.certificate_create(
            {
                "certtype": sysinv_constants.CERT_MODE_SSL_CA,
                "signature": signature,
                "start_date": ca.cert.not_valid_before_utc.replace(tzinfo=None),
                "expiry_date": ca.cert.not_valid_after_utc.replace(tzinfo=None),
            }
        )
        directory = Path(sysinv_constants.SSL_CERT_CA_LIST_SHARED_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / signature).write_bytes(ca.cert_pem)
        return signature

    def set_user_overrides(self, values: dict[str, Any] | None) -> None:
        """What `system helm-override-update portieris portieris portieris --values` stores."""
        text = yaml.safe_dump(values) if values is not None else None
        self.dbapi.helm_override_update(self.rpc_app.id, APP, NS, {"user_overrides": text})

    def applied(self) -> dict[str, Any]:
        """The application applied: its status, its plugins active (as the conductor activates
        those of applied applications when it starts), the overrides file the apply wrote."""
        set_status(self.rpc_app, sysinv_constants.APP_APPLY_SUCCESS)
        self.rpc_app = kubeapp_obj.get_by_name(self.context, APP)
        self.app_op.activate_apps_plugins()
        return write_overrides(self.conductor, self.rpc_app)

    def flagged_for_reapply(self) -> bool:
        return bool(self.app_op.needs_reapply(APP))

    def system_overrides(self) -> dict[str, Any]:
        """`system helm-override-show portieris portieris portieris`: the conductor's answer."""
        values: dict[str, Any] = self.conductor.get_helm_chart_overrides(
            self.context, APP, APP, cnamespace=NS
        )
        return values


# --------------------------------------------------------------------------- the report


def shortened(value: Any) -> Any:
    """Long strings (base64 certificates) as their length."""
    if isinstance(value, dict):
        return {k: shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shortened(v) for v in value]
    if isinstance(value, str) and len(value) > 100:
        return f"<{len(value)} characters>"
    return value


def summary(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides with the CA bundle shown as its certificates' subjects."""
    shown: dict[str, Any] = json.loads(json.dumps(overrides))
    bundle = (shown.get("platform") or {}).get("trustedCACerts")
    if bundle:
        shown["platform"]["trustedCACerts"] = [
            x509.load_pem_x509_certificate(
                ("-----BEGIN CERTIFICATE-----" + block).encode()
            ).subject.rfc4514_string()
            for block in bundle.split("-----BEGIN CERTIFICATE-----")[1:]
        ]
    shortened_values: dict[str, Any] = shortened(shown)
    return shortened_values


def changes(before: Any, after: Any, path: str = "") -> dict[str, Any]:
    """{dotted path: {before, after}} of the values that differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: dict[str, Any] = {}
        for key in sorted(set(before) | set(after)):
            found.update(changes(before.get(key), after.get(key), f"{path}{key}."))
        return found
    if before == after:
        return {}
    return {path.rstrip("."): {"before": before, "after": after}}


def report(title: str, before: dict[str, Any], after: dict[str, Any], **outcome: Any) -> None:
    """The overrides before and after a trigger, on stdout (pytest -s) and appended to
    $PORTIERIS_SYSINV_REPORT when set (`make sysinv-real` sets it)."""
    shown_before, shown_after = summary(before), summary(after)
    document = {
        "scenario": title,
        "python": "{}.{}".format(*sys.version_info[:2]),
        "changed": changes(shown_before, shown_after),
        **outcome,
        "before": shown_before,
        "after": shown_after,
    }
    # (a JSON round trip: no YAML anchors for the values `changed` shares with before/after)
    text = yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, width=100)
    print(f"---\n{text}")
    path = os.environ.get("PORTIERIS_SYSINV_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"---\n{text}")
