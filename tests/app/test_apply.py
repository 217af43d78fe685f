"""`system application-apply portieris` on example platforms, as sysinv and FluxCD do it.

The application tarball is unpacked as at upload; its plugin wheel is installed into a fresh
virtualenv, where sysinv (the test double) finds the plugins by entry point and runs them.
For each platform (simplex and duplex, with the operator's helm-override-update values):
  1. the semantic check and the resource hooks run, and the plugin's system overrides, with the
     user overrides merged over them, are written into the system overrides file;
  2. `kubectl kustomize` renders the manifests; the HelmRelease and HelmRepository are checked by
     FluxCD's real CRD schemas in the real kube-apiserver (`kubectl apply --dry-run=server`),
     then applied;
  3. the HelmRelease's values are merged from its valuesFrom Secrets in order and the bundled
     chart is installed into the real kube-apiserver with helm;
  4. the installed objects are checked against what the platform facts imply.
Then the lifecycle hooks of an update and of a backup and restore run against the release.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.app import artifacts, fluxcd, platforms
from tests.app.conductor import Conductor, make_venv
from tests.app.platforms import Platform
from tests.e2e.conftest import control_plane  # noqa: F401 - the real kube-apiserver
from tests.e2e.controlplane import ControlPlane

pytestmark = pytest.mark.e2e

NS = "portieris"
RELEASE = "portieris-portieris"
WEBHOOK = "image-admission-config"
COMPONENT_LABEL = "app.starlingx.io/component"
CRD_NAMES = [
    "helm.toolkit.fluxcd.io_helmreleases.yaml",
    "source.toolkit.fluxcd.io_helmrepositories.yaml",
    "cert-manager.io_certificates.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
]


def crds_dir() -> Path:
    out = subprocess.run(
        ["bash", str(artifacts.REPO_ROOT / "scripts" / "build-crds.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Path(dict(line.split("=", 1) for line in out.splitlines())["crds"])


def get(plane: ControlPlane, *args: str) -> dict[str, Any]:
    result = plane.kubectl("get", *args, "-o", "json", check=True)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def exists(plane: ControlPlane, *args: str) -> bool:
    return plane.kubectl("get", *args).returncode == 0


def hook(mode: str, kind: str, timing: str, operation: str, **extra: Any) -> dict[str, Any]:
    return {"mode": mode, "type": kind, "timing": timing, "operation": operation, "extra": extra}


def pem_certificates(bundle: str) -> list[bytes]:
    return [
        cert.public_bytes(Encoding.PEM) for cert in x509.load_pem_x509_certificates(bundle.encode())
    ]


# --- the cluster, the application as uploaded, and sysinv


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:  # noqa: F811
    """The kube-apiserver with FluxCD's and cert-manager's real CRDs, and the platform's local
    registry credentials in kube-system (sysinv copies them into the app's namespace)."""
    directory = crds_dir()
    for name in CRD_NAMES:
        control_plane.kubectl("apply", "--server-side", "-f", str(directory / name), check=True)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/helmreleases.helm.toolkit.fluxcd.io",
        "crd/helmrepositories.source.toolkit.fluxcd.io",
        "crd/certificates.cert-manager.io",
        "crd/issuers.cert-manager.io",
        "crd/clusterissuers.cert-manager.io",
        check=True,
    )
    auth = base64.b64encode(b"admin:registry-password").decode()
    config = {"auths": {"registry.local:9001": {"auth": auth}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": platforms.REGISTRY_SECRET, "namespace": "kube-system"},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret), check=True)
    return control_plane


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts.unpack(artifacts.app_tarball(), tmp_path_factory.mktemp("uploaded"))


@pytest.fixture(scope="module")
def metadata(app_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((app_dir / "metadata.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def sysinv_python(app_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the application's plugin wheel installed."""
    return make_venv(
        tmp_path_factory.mktemp("venv") / "sysinv", sorted((app_dir / "plugins").iterdir())
    )


def test_sysinv_finds_the_plugins_of_the_wheel_by_entry_point(
    sysinv_python: Path, cluster: ControlPlane, tmp_path: Path
) -> None:
    found = Conductor(sysinv_python, tmp_path, cluster, "portieris").run("discover")
    assert found["charts"] == ["portieris"]
    assert found["portieris"]["class"] == "k8sapp_portieris.helm.portieris.PortierisHelm"
    assert (found["portieris"]["CHART"], found["portieris"]["HELM_RELEASE"]) == (NS, NS)
    assert found["lifecycle"]["class"] == (
        "k8sapp_portieris.lifecycle.lifecycle_portieris.PortierisAppLifecycleOperator"
    )
    venv = sysinv_python.parent.parent
    for plugin in (found["portieris"], found["lifecycle"]):
        assert Path(plugin["file"]).is_relative_to(venv), plugin["file"]


# --- the apply


@dataclass
class Applied:
    plane: ControlPlane
    platform: Platform
    conductor: Conductor
    manifests: Path
    charts: Path
    system_overrides: dict[str, Any]
    objects: list[dict[str, Any]]
    dry_run: Any
    values: dict[str, Any]


def set_platform_cluster_state(plane: ControlPlane, platform: Platform) -> None:
    """What bootstrap and the platform's applications left in the cluster."""
    for app in platform.other_apps:
        for namespace in app.namespaces:
            plane.kubectl("create", "namespace", namespace)
    plane.kubectl("delete", "clusterissuer", platforms.PLATFORM_CA, "--ignore-not-found")
    plane.kubectl(
        "delete",
        "secret",
        platforms.SIGSTORE_TRUST_ROOTS,
        "-n",
        "kube-system",
        "--ignore-not-found",
    )
    trust_roots = platform.trust_roots_secret()
    if trust_roots:
        plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(trust_roots), check=True)
    plane.kubectl(
        "delete", "secret", platforms.PLATFORM_CA, "-n", "cert-manager", "--ignore-not-found"
    )
    if not platform.platform_ca:
        return
    ca = platforms.ca(platforms.PLATFORM_CA)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": platforms.PLATFORM_CA, "namespace": "cert-manager"},
        "data": {
            key: base64.b64encode(value).decode()
            for key, value in (
                ("ca.crt", ca.cert_pem),
                ("tls.crt", ca.cert_pem),
                ("tls.key", ca.key_pem),
            )
        },
    }
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": platforms.PLATFORM_CA},
        "spec": {"ca": {"secretName": platforms.PLATFORM_CA}},
    }
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([secret, issuer]), check=True)


def upload(conductor: Conductor, app_dir: Path, version: str) -> tuple[Path, Path]:
    """Lay the application out as sysinv does at upload: the charts, plugins and metadata where
    it installs them, the manifests where it keeps its FluxCD copy. Returns (manifests, charts)."""
    installed = conductor.install_path / "portieris" / version
    for part in ("charts", "plugins"):
        shutil.copytree(app_dir / part, installed / part)
    shutil.copy(app_dir / "metadata.yaml", installed / "metadata.yaml")
    shutil.copytree(app_dir / "plugins", conductor.install_path / "plugins" / "portieris" / version)
    manifests = conductor.fluxcd_path / "portieris" / version / "portieris-fluxcd-manifests"
    shutil.copytree(app_dir / "fluxcd-manifests", manifests)
    return manifests, installed / "charts"


def flux_apply(
    plane: ControlPlane, conductor: Conductor, manifests: Path, charts: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], Any, dict[str, Any]]:
    """sysinv writes the overrides and applies the manifests; FluxCD installs the release."""
    (overrides_file,) = conductor.run("overrides")["files"]
    text = Path(overrides_file).read_text()
    (manifests / "portieris" / "portieris-system-overrides.yaml").write_text(text)
    plane.kubectl("create", "namespace", "portieris")  # sysinv's apply creates it first
    objects = fluxcd.kustomize(manifests)
    dry_run = fluxcd.apply(plane, objects, dry_run=True)
    assert dry_run.returncode == 0, dry_run.stderr
    applied = fluxcd.apply(plane, objects)
    assert applied.returncode == 0, applied.stderr
    release = fluxcd.only(objects, "HelmRelease")
    values = fluxcd.values_from(plane, release)
    chart = charts / f"portieris-{release['spec']['chart']['spec']['version']}.tgz"
    installed = fluxcd.install(plane, release, chart, values)
    assert installed.returncode == 0, installed.stderr
    return yaml.safe_load(text), objects, dry_run, values


@pytest.fixture(scope="module", params=platforms.PLATFORMS, ids=lambda p: p.name)
def applied(
    request: pytest.FixtureRequest,
    cluster: ControlPlane,
    app_dir: Path,
    metadata: dict[str, Any],
    sysinv_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Applied]:
    platform: Platform = request.param
    conductor = Conductor(
        sysinv_python, tmp_path_factory.mktemp(f"sysinv-{platform.name}"), cluster, "portieris"
    )
    manifests, charts = upload(conductor, app_dir, metadata["app_version"])
    for name, pem in platform.ssl_ca_files().items():
        (conductor.ssl_ca_dir / name).write_bytes(pem)
    set_platform_cluster_state(cluster, platform)
    conductor.run("upload", platform.database(metadata["app_version"], metadata))
    conductor.run(
        "override", {"chart": "portieris", "namespace": NS, "values": platform.user_values()}
    )
    # sysinv's apply: the semantic check, OPERATION/pre, RESOURCE/pre, the manifests,
    # RESOURCE/post, then OPERATION/post once the application is applied.
    conductor.run("hook", hook("manual", "check", "pre", "apply"))
    conductor.run("hook", hook("manual", "operation", "pre", "apply"))
    conductor.run("hook", hook("manual", "resource", "pre", "apply"))
    system, objects, dry_run, values = flux_apply(cluster, conductor, manifests, charts)
    conductor.run("hook", hook("manual", "resource", "post", "apply"))
    conductor.run("status", {"status": "applied"})
    conductor.run("hook", hook("manual", "operation", "post", "apply", app_applied=True))
    yield Applied(cluster, platform, conductor, manifests, charts, system, objects, dry_run, values)
    cluster.helm("uninstall", RELEASE, "--namespace", NS, "--wait")
    cluster.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK, "--ignore-not-found")


# --- FluxCD's view


def test_helmrelease_and_helmrepository_pass_fluxcd_crd_schemas(applied: Applied) -> None:
    checked = [line.split()[0] for line in applied.dry_run.stdout.splitlines()]
    assert "helmrelease.helm.toolkit.fluxcd.io/portieris" in checked
    assert "helmrepository.source.toolkit.fluxcd.io/stx-platform" in checked
    # Stored as rendered, with the schema's defaults added: a new chart version is a new release.
    stored = get(applied.plane, "helmrelease", "portieris", "-n", NS)["spec"]
    rendered = fluxcd.only(applied.objects, "HelmRelease")["spec"]
    assert stored["chart"]["spec"].pop("reconcileStrategy") == "ChartVersion"
    assert {key: stored[key] for key in rendered} == rendered


@pytest.mark.parametrize(
    ("kind", "path", "bad", "complaint"),
    [
        pytest.param(
            "HelmRelease",
            ("spec", "upgrade", "crds"),
            "Sometimes",
            "spec.upgrade.crds",
            id="crds policy",
        ),
        pytest.param(
            "HelmRelease", ("spec", "interval"), "every minute", "spec.interval", id="interval"
        ),
        pytest.param(
            "HelmRepository", ("spec", "interval"), "soon", "spec.interval", id="repo interval"
        ),
        pytest.param("HelmRepository", ("spec", "type"), "git", "spec.type", id="repo type"),
    ],
)
def test_fluxcd_crd_schemas_refuse_a_broken_manifest(
    applied: Applied, kind: str, path: tuple[str, ...], bad: str, complaint: str
) -> None:
    broken = copy.deepcopy(fluxcd.only(applied.objects, kind))
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    result = fluxcd.apply(applied.plane, [broken], dry_run=True)
    assert result.returncode != 0 and complaint in result.stderr


def test_system_overrides_secret_holds_what_sysinv_wrote(applied: Applied) -> None:
    secret = get(applied.plane, "secret", "portieris-system-overrides", "-n", NS)
    text = base64.b64decode(secret["data"]["portieris-system-overrides.yaml"]).decode()
    assert yaml.safe_load(text) == applied.system_overrides


def test_release_values_are_static_then_system_overrides(applied: Applied) -> None:
    static = yaml.safe_load(
        (applied.manifests / "portieris" / "portieris-static-overrides.yaml").read_text()
    )
    assert applied.values == fluxcd.merge_maps(static, applied.system_overrides)
    deployed = json.loads(
        applied.plane.helm("get", "values", RELEASE, "-n", NS, "-o", "json", check=True).stdout
    )
    assert deployed == applied.values


def test_release_is_the_bundled_chart(applied: Applied) -> None:
    listed = json.loads(applied.plane.helm("list", "-n", NS, "-o", "json", check=True).stdout)
    assert [(r["name"], r["chart"], r["status"]) for r in listed] == [
        (RELEASE, f"portieris-{artifacts.chart_version()}", "deployed")
    ]


# --- what the platform facts imply


def test_user_overrides_reach_the_release(applied: Applied) -> None:
    user = yaml.safe_load(applied.platform.user_values())
    assert fluxcd.merge_maps(applied.values, user) == applied.values


def test_replicas_follow_the_platform(applied: Applied) -> None:
    deployment = get(applied.plane, "deployment", "portieris", "-n", NS)
    assert deployment["spec"]["replicas"] == applied.platform.replicas


def test_disruption_budget_lets_one_replica_go_and_selects_the_pods(applied: Applied) -> None:
    plane = applied.plane
    pdb = get(plane, "pdb", "portieris", "-n", NS)["spec"]
    deployment = get(plane, "deployment", "portieris", "-n", NS)["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    replicas = applied.platform.replicas
    allowed = pdb["maxUnavailable"] if "maxUnavailable" in pdb else replicas - pdb["minAvailable"]
    assert allowed == 1


def test_image_comes_from_the_platform_registry_with_its_pull_secret(applied: Applied) -> None:
    plane = applied.plane
    pod = get(plane, "deployment", "portieris", "-n", NS)["spec"]["template"]["spec"]
    chart = yaml.safe_load((artifacts.CHART_DIR / "Chart.yaml").read_text())
    assert pod["containers"][0]["image"] == f"{platforms.IMAGE}:{chart['appVersion']}"
    assert pod["imagePullSecrets"] == [{"name": platforms.REGISTRY_SECRET}]
    copied = get(plane, "secret", platforms.REGISTRY_SECRET, "-n", NS)
    source = get(plane, "secret", platforms.REGISTRY_SECRET, "-n", "kube-system")
    assert copied["data"] == source["data"]


def test_serving_certificate_issuer_follows_the_platform_ca(applied: Applied) -> None:
    plane = applied.plane
    certificate = get(plane, "certificate", "portieris-certs", "-n", NS)
    reference = certificate["spec"]["issuerRef"]
    kind, name = applied.platform.expected_issuer
    assert reference["kind"] == kind
    if name is not None:
        assert reference["name"] == name
    else:
        issuer = get(plane, "issuer", reference["name"], "-n", NS)
        assert issuer["spec"]["ca"]["secretName"]
    configuration = get(plane, "mutatingwebhookconfiguration", WEBHOOK)
    annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NS}/portieris-certs"


def test_ca_bundle_is_the_platform_and_operator_cas_each_once(applied: Applied) -> None:
    plane = applied.plane
    bundle = get(plane, "configmap", "portieris-trusted-ca", "-n", NS)["data"]["ca.crt"]
    certificates = pem_certificates(bundle)
    assert len(certificates) == len(set(certificates))
    assert set(certificates) == applied.platform.expected_cas
    container = get(plane, "deployment", "portieris", "-n", NS)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "--ca-file=/etc/portieris/trusted-ca/ca.crt" in container["args"]


def test_sigstore_trust_roots_are_the_platforms_and_the_operators(applied: Applied) -> None:
    """From Secret kube-system/portieris-sigstore-trust-roots and sigstore.trustRoots, through
    the overrides, to the chart's Secret in the release namespace that policies name."""
    expected = applied.platform.expected_trust_roots
    assert applied.system_overrides["sigstore"]["trustRoots"] == expected
    secret = get(applied.plane, "secret", platforms.SIGSTORE_TRUST_ROOTS, "-n", NS)
    found = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert found == expected


def test_webhook_leaves_the_platform_namespaces_alone(applied: Applied) -> None:
    configuration = get(applied.plane, "mutatingwebhookconfiguration", WEBHOOK)
    (webhook,) = configuration["webhooks"]
    (excluded,) = [
        expression["values"]
        for expression in webhook["namespaceSelector"]["matchExpressions"]
        if expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "NotIn"
    ]
    assert set(excluded) >= applied.platform.excluded_namespaces
    assert not set(excluded) & applied.platform.admitted_namespaces


def test_webhook_fails_closed_with_the_operators_timeout(applied: Applied) -> None:
    (webhook,) = get(applied.plane, "mutatingwebhookconfiguration", WEBHOOK)["webhooks"]
    assert webhook["failurePolicy"] == "Fail"
    expected = applied.platform.user_overrides.get("webHooks", {}).get("timeoutSeconds", 10)
    assert webhook["timeoutSeconds"] == expected


def test_namespace_is_labelled_as_a_platform_component_after_apply(applied: Applied) -> None:
    namespace = get(applied.plane, "namespace", NS)
    assert namespace["metadata"]["labels"][COMPONENT_LABEL] == "platform"


def test_pinned_notary_roots_of_the_operator_reach_the_webhook(applied: Applied) -> None:
    """pinnedTrustRoots, given with `system helm-override-update`, become --pinned-trust-root
    arguments; a certificate pin is mounted from the chart's ConfigMap."""
    pins = applied.platform.user_overrides["pinnedTrustRoots"]
    pod = get(applied.plane, "deployment", "portieris", "-n", NS)["spec"]["template"]["spec"]
    prefix = "--pinned-trust-root="
    args = [a[len(prefix) :] for a in pod["containers"][0]["args"] if a.startswith(prefix)]
    assert len(args) == len(pins)
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    for pin, arg in zip(pins, args, strict=True):
        server, _, root = arg.rpartition("=")
        assert server == pin["server"]
        if "keyID" in pin:
            assert root == pin["keyID"]
            continue
        directory, _, key = root.rpartition("/")
        assert directory == mounts["pinned-trust-roots"]
        data = get(applied.plane, "configmap", "portieris-pinned-trust-roots", "-n", NS)["data"]
        assert data[key].strip() == pin["certificate"].strip()


def test_reapply_upgrades_the_release_and_restores_a_deleted_webhook_configuration(
    applied: Applied,
) -> None:
    """The break-glass on StarlingX, undone: `kubectl delete mutatingwebhookconfiguration`, then
    `system application-apply portieris` on the applied application. sysinv forces FluxCD to
    reconcile by patching the HelmRelease's spec.values with reconcile_trigger (its
    helm/utils.call_fluxcd_reconciliation); helm-controller merges that over the valuesFrom
    Secrets and upgrades the release, which creates the configuration again."""
    plane = applied.plane
    before = webhooks(plane)
    plane.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK, check=True)
    applied.conductor.run("hook", hook("manual", "check", "pre", "apply"))
    patch = {"spec": {"values": {"reconcile_trigger": int(time.time())}}}
    plane.kubectl(
        "patch", "helmrelease", "portieris", "-n", NS, "--type=merge", "-p", json.dumps(patch),
        check=True,
    )  # fmt: skip
    release = get(plane, "helmrelease", "portieris", "-n", NS)
    values = fluxcd.values_from(plane, release)
    assert values["reconcile_trigger"] == patch["spec"]["values"]["reconcile_trigger"]
    chart = applied.charts / f"portieris-{release['spec']['chart']['spec']['version']}.tgz"
    upgraded = fluxcd.install(plane, release, chart, values)
    assert upgraded.returncode == 0, upgraded.stderr
    assert webhooks(plane) == before


# --- lifecycle: an update, a backup, a restore


def failure_policy(plane: ControlPlane) -> str:
    (webhook,) = get(plane, "mutatingwebhookconfiguration", WEBHOOK)["webhooks"]
    policy: str = webhook["failurePolicy"]
    return policy


def test_update_admits_unchecked_while_it_runs_then_fails_closed_again(applied: Applied) -> None:
    conductor, plane = applied.conductor, applied.plane
    upgrade_flag = conductor.workdir / "platform" / ".usm_upgrade_in_progress"
    # sysinv's update: the application is updating; its new version is checked and applied.
    conductor.run("status", {"status": "updating"})
    conductor.run("hook", hook("manual", "check", "pre", "update", to_app=True))
    conductor.run("hook", hook("manual", "resource", "pre", "update"))
    flux_apply(plane, conductor, applied.manifests, applied.charts)
    assert failure_policy(plane) == "Ignore"
    conductor.run("status", {"status": "applied"})
    # The periodic check after the update leaves it alone while the platform upgrades...
    upgrade_flag.touch()
    conductor.run("hook", hook("auto", "check", "pre", "update"))
    assert failure_policy(plane) == "Ignore"
    # ...and re-applies the application once the upgrade is over.
    upgrade_flag.unlink()
    conductor.run("hook", hook("auto", "check", "pre", "update"))
    assert failure_policy(plane) == "Fail"


def webhooks(plane: ControlPlane) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get(plane, "mutatingwebhookconfiguration", WEBHOOK)["webhooks"]
    return found


@pytest.mark.parametrize("after", ["backup", "restore"])
def test_backup_removes_the_webhook_and_the_platform_gets_it_back(
    applied: Applied, after: str
) -> None:
    """The hooks sysinv runs on an applied application around a platform backup (pre- and
    post-backup-action) and after a restore (post-restore-action): (auto, operation, timing)."""
    conductor, plane = applied.conductor, applied.plane
    before = webhooks(plane)
    conductor.run("hook", hook("auto", "operation", "pre", "backup", success=True))
    # Nothing can block the platform's pods while etcd is saved (or restored).
    assert not exists(plane, "mutatingwebhookconfiguration", WEBHOOK)
    conductor.run("hook", hook("auto", "operation", "post", after, success=True))
    assert webhooks(plane) == before
