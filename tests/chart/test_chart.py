"""The helm chart helm-charts/portieris: lint, rendered objects for every value, CRD schemas.

Rendering uses the real helm binary (found by tests/e2e/controlplane.py) and
asserts on the parsed objects. CRD schemas are checked twice: offline with
jsonschema (structure, types, enums, unknown fields as kubectl's strict field
validation rejects them) and, marked e2e, by a real kube-apiserver, which also
runs the CEL rules.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from oslo_config import cfg

from portieris_webhook.config import options
from portieris_webhook.errors import InvalidPolicy
from portieris_webhook.policy.model import parse_policy_object

from tests.e2e.controlplane import ControlPlane, binaries

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm-charts" / "portieris"
CONTAINERFILE = REPO_ROOT / "portieris-webhook" / "Containerfile"
GROUP = "portieris.cloud.ibm.com"
NS = "portieris"
SKIP_LABEL = "securityenforcement.admission.cloud.ibm.com/namespace"
TRUST_STATE = "portieris-trust-state"


# --- helpers


@cache
def helm() -> str:
    return binaries().helm


def run_helm(
    *args: str, values: Mapping[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [helm(), *args]
    if values is not None:
        argv += ["--values", "-"]
    return subprocess.run(
        argv,
        input=yaml.safe_dump(dict(values)) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render(values: Mapping[str, Any] | None = None, namespace: str = NS) -> list[dict[str, Any]]:
    proc = run_helm("template", "portieris", str(CHART), "--namespace", namespace, values=values)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render_error(values: Mapping[str, Any]) -> str:
    proc = run_helm("template", "portieris", str(CHART), "--namespace", NS, values=values)
    assert proc.returncode != 0, "helm template should have refused these values"
    return proc.stderr


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = pod_spec(docs)["containers"]
    return dict(only)


def webhook(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    return dict(hook)


def arg_values(docs: list[dict[str, Any]], option: str) -> list[str]:
    prefix = f"--{option}="
    return [a[len(prefix) :] for a in container(docs)["args"] if a.startswith(prefix)]


def ns_expressions(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    selector = webhook(docs).get("namespaceSelector") or {}
    return list(selector.get("matchExpressions", []))


def label_selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pem_cert(pem: str | bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def dns_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


# --- lint and schema of values


def test_helm_lint_strict_passes() -> None:
    proc = run_helm("lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr


EVERY_OPTION = {
    "replicaCount": 2,
    "image": {"repository": "registry.local:9001/portieris/webhook", "tag": "1.2.3"},
    "imagePullSecrets": [{"name": "default-registry-key"}],
    "webHooks": {"failurePolicy": "Ignore", "timeoutSeconds": 20, "excludedNamespaces": ["x"]},
    "verifyTimeout": 15,
    "remoteTimeout": 4,
    "defaultTrustServer": "https://notary.example:4443",
    "TrustedCACert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "UseCertManager": True,
    "certManagerIssuer": {"kind": "ClusterIssuer", "name": "platform-ca"},
    "AllowAdmissionSkip": True,
    "NamespaceSelectorAdmissionSkip": [{"key": "env", "operator": "NotIn", "values": ["dev"]}],
    "ObjectSelectorAdmissionSkip": [{"key": "app", "operator": "Exists"}],
    "clusterPolicy": {"allowedRepositories": ["registry.local:9001/*"]},
    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    "tolerations": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}],
    "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
    "affinity": {"nodeAffinity": {}},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
    "trustState": {"enabled": True},
    "deploymentAnnotations": {"example.com/owner": "platform-team"},
    "pinnedTrustRoots": [{"server": "https://notary.example:4443", "keyID": "0f" * 32}],
}


def test_helm_lint_strict_passes_with_every_option_set() -> None:
    proc = run_helm("lint", "--strict", str(CHART), values=EVERY_OPTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"useCertManager": True}, "useCertManager"),
        ({"webHooks": {"failurePolicy": "Never"}}, "failurePolicy"),
        ({"webHooks": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"trustState": {"enabled": "yes"}}, "enabled"),
        ({"certManagerIssuer": {"kind": "Vault"}}, "kind"),
        ({"NamespaceSelectorAdmissionSkip": [{"key": "k", "operator": "Maybe"}]}, "operator"),
        ({"clusterPolicy": {"allowedRepositories": ["has space"]}}, "allowedRepositories"),
    ],
)
def test_values_schema_rejects_mistakes(values: dict[str, Any], complaint: str) -> None:
    assert complaint in render_error(values)


# --- objects


def test_default_render_has_exactly_the_expected_objects(
    default_docs: list[dict[str, Any]],
) -> None:
    got = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in default_docs}
    assert got == {
        ("ServiceAccount", NS, "portieris"),
        ("ClusterRole", None, "portieris"),
        ("ClusterRoleBinding", None, "portieris"),
        ("Service", NS, "portieris"),
        ("Deployment", NS, "portieris"),
        ("PodDisruptionBudget", NS, "portieris"),
        ("Secret", NS, "portieris-certs"),
        ("ConfigMap", NS, TRUST_STATE),
        ("Role", NS, TRUST_STATE),
        ("RoleBinding", NS, TRUST_STATE),
        ("MutatingWebhookConfiguration", None, "image-admission-config"),
        ("ValidatingWebhookConfiguration", None, "portieris-policy-validation"),
        ("ImagePolicy", NS, "portieris-self"),
        ("ImagePolicy", "kube-system", "portieris-kube-system"),
        ("ClusterImagePolicy", None, "portieris-default-cluster-policy"),
    }


def test_crds_come_only_from_the_crds_directory(default_docs: list[dict[str, Any]]) -> None:
    # helm installs crds/ before rendering templates, so the default policies
    # the templates create always find their kinds.
    assert not kinds(default_docs, "CustomResourceDefinition")
    assert not list((CHART / "templates").glob("*crd*"))
    assert {p.name for p in (CHART / "crds").iterdir()} == {
        "imagepolicies.yaml",
        "clusterimagepolicies.yaml",
    }


def test_objects_follow_the_release_namespace() -> None:
    docs = render(namespace="ibm-system")
    for doc in docs:
        if doc["kind"] in {
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        }:
            continue
        if (
            doc["kind"] == "ClusterImagePolicy"
            or doc["metadata"]["name"] == "portieris-kube-system"
        ):
            continue
        assert doc["metadata"]["namespace"] == "ibm-system", doc["kind"]
    assert webhook(docs)["clientConfig"]["service"]["namespace"] == "ibm-system"
    (subject,) = one(docs, "ClusterRoleBinding")["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": "portieris", "namespace": "ibm-system"}


# --- deployment


def test_deployment_runs_three_replicas_by_default(default_docs: list[dict[str, Any]]) -> None:
    assert one(default_docs, "Deployment")["spec"]["replicas"] == 3


def test_replica_count_is_configurable() -> None:
    assert one(render({"replicaCount": 5}), "Deployment")["spec"]["replicas"] == 5


def test_deployment_selector_selects_its_pods(default_docs: list[dict[str, Any]]) -> None:
    deployment = one(default_docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector and label_selects(
        selector, deployment["spec"]["template"]["metadata"]["labels"]
    )


def test_pdb_selector_really_selects_the_pods(default_docs: list[dict[str, Any]]) -> None:
    pdb = one(default_docs, "PodDisruptionBudget")
    deployment = one(default_docs, "Deployment")
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert label_selects(
        pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    assert pdb["spec"]["maxUnavailable"] == 1


def test_pdb_min_available_and_disable() -> None:
    pdb = one(render({"podDisruptionBudget": {"minAvailable": 2}}), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in pdb["spec"]
    assert not kinds(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")


def test_service_selects_the_pods_and_maps_443_to_the_https_port(
    default_docs: list[dict[str, Any]],
) -> None:
    service = one(default_docs, "Service")
    labels = one(default_docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert label_selects(service["spec"]["selector"], labels)
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in container(default_docs)["ports"]}
    assert ports["https"]["port"] == 443
    assert container_ports[ports["https"]["targetPort"]] == 8000
    assert ports["metrics"]["port"] == 8080
    assert container_ports[ports["metrics"]["targetPort"]] == 8080
    assert arg_values(default_docs, "port") == ["8000"]
    assert arg_values(default_docs, "metrics-port") == ["8080"]


def test_default_pod_anti_affinity_spreads_replicas_over_nodes(
    default_docs: list[dict[str, Any]],
) -> None:
    affinity = pod_spec(default_docs)["affinity"]
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pod_labels = one(default_docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert label_selects(term["podAffinityTerm"]["labelSelector"]["matchLabels"], pod_labels)


def test_affinity_value_replaces_the_default() -> None:
    affinity: dict[str, Any] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}
    }
    assert pod_spec(render({"affinity": affinity}))["affinity"] == affinity


def test_priority_class(default_docs: list[dict[str, Any]]) -> None:
    assert pod_spec(default_docs)["priorityClassName"] == "system-cluster-critical"
    assert pod_spec(render({"priorityClassName": "high"}))["priorityClassName"] == "high"
    assert "priorityClassName" not in pod_spec(render({"priorityClassName": ""}))


def test_pod_runs_non_root_with_read_only_root_filesystem(
    default_docs: list[dict[str, Any]],
) -> None:
    spec = pod_spec(default_docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    security = container(default_docs)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


def test_tmp_is_a_writable_empty_dir_and_gpg_home(default_docs: list[dict[str, Any]]) -> None:
    spec = pod_spec(default_docs)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container(default_docs)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert not mounts["/tmp"].get("readOnly", False)
    env = {e["name"]: e["value"] for e in container(default_docs)["env"]}
    assert env["HOME"] == "/tmp"


def test_serving_certificate_is_mounted_from_the_cert_secret(
    default_docs: list[dict[str, Any]],
) -> None:
    volumes = {v["name"]: v for v in pod_spec(default_docs)["volumes"]}
    mounts = {m["name"]: m for m in container(default_docs)["volumeMounts"]}
    (certs,) = [
        n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == "portieris-certs"
    ]
    directory = mounts[certs]["mountPath"]
    assert arg_values(default_docs, "tls-cert-file") == [f"{directory}/tls.crt"]
    assert arg_values(default_docs, "tls-key-file") == [f"{directory}/tls.key"]


def test_resource_requests_are_set_and_configurable(default_docs: list[dict[str, Any]]) -> None:
    requests = container(default_docs)["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert container(render({"resources": resources}))["resources"] == resources


@pytest.mark.parametrize(
    ("probe", "path"),
    [("livenessProbe", "/health/liveness"), ("readinessProbe", "/health/readiness")],
)
def test_probes_use_the_health_endpoints_over_https(
    default_docs: list[dict[str, Any]], probe: str, path: str
) -> None:
    get = container(default_docs)[probe]["httpGet"]
    assert (get["path"], get["scheme"], get["port"]) == (path, "HTTPS", "https")


def test_prometheus_scrape_annotations(default_docs: list[dict[str, Any]]) -> None:
    for found in (
        one(default_docs, "Deployment")["spec"]["template"]["metadata"]["annotations"],
        one(default_docs, "Service")["metadata"]["annotations"],
    ):
        assert found["prometheus.io/scrape"] == "true"
        assert found["prometheus.io/port"] == "8080"
        assert found["prometheus.io/path"] == "/metrics"
    docs = render({"metrics": {"scrape": False}})
    pod_annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"] or {}
    assert "prometheus.io/scrape" not in pod_annotations


def test_image_values() -> None:
    docs = render(
        {
            "image": {
                "repository": "registry.local:9001/p/webhook",
                "tag": "9.9",
                "pullPolicy": "Always",
            }
        }
    )
    assert container(docs)["image"] == "registry.local:9001/p/webhook:9.9"
    assert container(docs)["imagePullPolicy"] == "Always"


def test_image_tag_defaults_to_the_app_version(default_docs: list[dict[str, Any]]) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(default_docs)["image"].endswith(f":{app_version}")


def test_image_pull_secrets() -> None:
    docs = render({"imagePullSecrets": [{"name": "default-registry-key"}]})
    assert pod_spec(docs)["imagePullSecrets"] == [{"name": "default-registry-key"}]


def test_tolerations_and_node_selector_pass_through(default_docs: list[dict[str, Any]]) -> None:
    assert "tolerations" not in pod_spec(default_docs)
    assert "nodeSelector" not in pod_spec(default_docs)
    tolerations = [
        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"}
    ]
    node_selector = {"kubernetes.io/os": "linux"}
    spec = pod_spec(render({"tolerations": tolerations, "nodeSelector": node_selector}))
    assert spec["tolerations"] == tolerations
    assert spec["nodeSelector"] == node_selector


def test_trusted_ca_cert_is_mounted_and_passed_as_ca_file() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
    docs = render({"TrustedCACert": pem})
    config_map = one(docs, "ConfigMap", "portieris-trusted-ca")
    (key,) = config_map["data"]
    assert config_map["data"][key].strip() == pem.strip()
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    (volume,) = [
        n
        for n, v in volumes.items()
        if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]
    ]
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == volume]
    assert arg_values(docs, "ca-file") == [f"{mount['mountPath']}/{key}"]
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/trusted-ca" in annotations


def test_no_ca_file_without_trusted_ca_cert(default_docs: list[dict[str, Any]]) -> None:
    assert arg_values(default_docs, "ca-file") == []
    assert [c["metadata"]["name"] for c in kinds(default_docs, "ConfigMap")] == [TRUST_STATE]


def test_default_trust_server_is_passed_when_set(default_docs: list[dict[str, Any]]) -> None:
    assert arg_values(default_docs, "default-trust-server") == []
    docs = render({"defaultTrustServer": "https://notary.registry.local:4443"})
    assert arg_values(docs, "default-trust-server") == ["https://notary.registry.local:4443"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "8"),
        ({"webHooks": {"timeoutSeconds": 30}}, "28"),
        ({"webHooks": {"timeoutSeconds": 2}}, "1"),
        ({"verifyTimeout": 4.5}, "4.5"),
    ],
)
def test_verify_timeout_stays_inside_the_webhook_timeout(
    values: dict[str, Any], expected: str
) -> None:
    assert arg_values(render(values), "verify-timeout") == [expected]


def test_remote_timeout_and_extra_args() -> None:
    docs = render({"remoteTimeout": 3, "extraArgs": ["--trust-refresh-interval=60"]})
    assert arg_values(docs, "remote-timeout") == ["3"]
    assert arg_values(docs, "trust-refresh-interval") == ["60"]


def test_rendered_arguments_are_options_the_webhook_accepts() -> None:
    """The chart and the CLI cannot drift apart: oslo.config parses what the chart renders."""
    docs = render(
        {
            "TrustedCACert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "defaultTrustServer": "https://notary.registry.local:4443",
            "extraArgs": ["--trust-refresh-interval=60"],
        }
    )
    conf = cfg.ConfigOpts()
    for opts in (options.MANIFEST_OPTS, options.VERIFY_OPTS, options.SERVE_OPTS):
        conf.register_cli_opts(opts)
    conf(list(container(docs)["args"]), project="portieris-webhook", default_config_files=[])
    assert conf.port == 8000 and conf.metrics_port == 8080
    assert conf.ca_file == "/etc/portieris/trusted-ca/ca.crt"
    assert conf.default_trust_server == "https://notary.registry.local:4443"
    assert conf.trust_refresh_interval == 60.0 and conf.manifests == []
    assert conf.tls_cert_file.endswith("tls.crt") and conf.tls_key_file.endswith("tls.key")
    assert conf.trust_state_configmap == f"{NS}/{TRUST_STATE}"


# --- RBAC


def test_cluster_role_is_read_only_and_exactly_what_the_webhook_reads(
    default_docs: list[dict[str, Any]],
) -> None:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in one(default_docs, "ClusterRole")["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    watched = {"get", "list", "watch"}
    assert granted == {
        (GROUP, "imagepolicies"): watched,
        (GROUP, "clusterimagepolicies"): watched,
        ("", "secrets"): watched,
        ("", "serviceaccounts"): watched,
        ("", "pods"): {"get"},
        ("", "replicationcontrollers"): {"get"},
        ("apps", "deployments"): {"get"},
        ("apps", "replicasets"): {"get"},
        ("apps", "statefulsets"): {"get"},
        ("apps", "daemonsets"): {"get"},
        ("batch", "jobs"): {"get"},
        ("batch", "cronjobs"): {"get"},
    }


def test_trust_state_config_map_has_no_data_so_upgrades_keep_what_the_webhook_wrote(
    default_docs: list[dict[str, Any]],
) -> None:
    config_map = one(default_docs, "ConfigMap", TRUST_STATE)
    assert config_map["metadata"]["namespace"] == NS
    assert "data" not in config_map and "binaryData" not in config_map
    assert arg_values(default_docs, "trust-state-configmap") == [f"{NS}/{TRUST_STATE}"]


def test_the_webhook_may_write_only_the_trust_state_config_map(
    default_docs: list[dict[str, Any]],
) -> None:
    role = one(default_docs, "Role", TRUST_STATE)
    assert role["metadata"]["namespace"] == NS
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [TRUST_STATE],
            "verbs": ["get", "update", "patch"],
        }
    ]
    binding = one(default_docs, "RoleBinding", TRUST_STATE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": TRUST_STATE,
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": pod_spec(default_docs)["serviceAccountName"],
            "namespace": NS,
        }
    ]


def test_trust_state_can_be_kept_in_memory_only() -> None:
    docs = render({"trustState": {"enabled": False}})
    assert not kinds(docs, "ConfigMap") and not kinds(docs, "Role")
    assert not kinds(docs, "RoleBinding")
    assert arg_values(docs, "trust-state-configmap") == []


def test_cluster_role_binding_binds_the_pods_service_account(
    default_docs: list[dict[str, Any]],
) -> None:
    binding = one(default_docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(default_docs, "ClusterRole")["metadata"]["name"],
    }
    account = one(default_docs, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    assert pod_spec(default_docs)["serviceAccountName"] == account["name"]


# --- webhook configuration


def test_webhook_rules_cover_every_workload_kind_on_create_and_update(
    default_docs: list[dict[str, Any]],
) -> None:
    covered: set[tuple[str, str, str]] = set()
    for rule in webhook(default_docs)["rules"]:
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        for group in rule["apiGroups"]:
            for version in rule["apiVersions"]:
                covered.update((group, version, r) for r in rule["resources"])
    assert covered >= {
        ("", "v1", "pods"),
        ("", "v1", "replicationcontrollers"),
        ("apps", "v1", "deployments"),
        ("apps", "v1", "replicasets"),
        ("apps", "v1", "statefulsets"),
        ("apps", "v1", "daemonsets"),
        ("batch", "v1", "jobs"),
        ("batch", "v1", "cronjobs"),
    }
    # Ephemeral containers are added through a subresource; they are checked too.
    assert ("", "v1", "pods/ephemeralcontainers") in covered


def test_webhook_talks_admission_v1_to_the_service_without_side_effects(
    default_docs: list[dict[str, Any]],
) -> None:
    hook = webhook(default_docs)
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    service = one(default_docs, "Service")
    assert hook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": service["metadata"]["namespace"],
        "path": "/admit",
        "port": 443,
    }


def test_failure_policy_defaults_to_fail_and_can_be_ignore(
    default_docs: list[dict[str, Any]],
) -> None:
    assert webhook(default_docs)["failurePolicy"] == "Fail"
    assert webhook(render({"webHooks": {"failurePolicy": "Ignore"}}))["failurePolicy"] == "Ignore"


def test_timeout_seconds_from_values(default_docs: list[dict[str, Any]]) -> None:
    assert webhook(default_docs)["timeoutSeconds"] == 10
    assert webhook(render({"webHooks": {"timeoutSeconds": 25}}))["timeoutSeconds"] == 25


def test_release_namespace_and_kube_system_are_excluded_so_they_can_always_start(
    default_docs: list[dict[str, Any]],
) -> None:
    # With failurePolicy Fail and no replica answering, pods of excluded namespaces are still
    # created: the webhook's own, and the cluster's (DNS, CNI, kube-proxy, ...).
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [NS, "kube-system"],
    } in ns_expressions(default_docs)
    assert "objectSelector" not in webhook(default_docs)


def test_release_namespace_exclusion_can_be_switched_off() -> None:
    docs = render({"webHooks": {"skipReleaseNamespace": False}})
    (expression,) = [e for e in ns_expressions(docs) if e["key"] == "kubernetes.io/metadata.name"]
    assert expression["values"] == ["kube-system"]


def test_kube_system_is_checked_when_the_excluded_namespaces_leave_it_out() -> None:
    docs = render({"webHooks": {"excludedNamespaces": ["team-tools"]}})
    (expression,) = [e for e in ns_expressions(docs) if e["key"] == "kubernetes.io/metadata.name"]
    assert expression["values"] == [NS, "team-tools"]
    values = {"webHooks": {"skipReleaseNamespace": False, "excludedNamespaces": []}}
    assert "namespaceSelector" not in webhook(render(values))
    values = {"webHooks": {"excludedNamespaces": None}}
    (expression,) = [
        e for e in ns_expressions(render(values)) if e["key"] == "kubernetes.io/metadata.name"
    ]
    assert expression["values"] == [NS]


def test_excluded_namespaces_join_the_release_namespace() -> None:
    docs = render({"webHooks": {"excludedNamespaces": ["kube-system", NS, "sandbox"]}})
    (expression,) = [e for e in ns_expressions(docs) if e["key"] == "kubernetes.io/metadata.name"]
    assert expression == {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [NS, "kube-system", "sandbox"],
    }


def test_allow_admission_skip_adds_the_portieris_skip_label(
    default_docs: list[dict[str, Any]],
) -> None:
    assert all(e["key"] != SKIP_LABEL for e in ns_expressions(default_docs))
    docs = render({"AllowAdmissionSkip": True})
    assert {"key": SKIP_LABEL, "operator": "NotIn", "values": ["skip"]} in ns_expressions(docs)


def test_namespace_selector_admission_skip_adds_requirements() -> None:
    extra = {"key": "environment", "operator": "NotIn", "values": ["sandbox"]}
    docs = render(
        {
            "NamespaceSelectorAdmissionSkip": [extra],
            "webHooks": {"skipReleaseNamespace": False, "excludedNamespaces": []},
        }
    )
    assert ns_expressions(docs) == [extra]


def test_object_selector_admission_skip_becomes_the_object_selector() -> None:
    extra = {"key": "portieris.cloud.ibm.com/skip", "operator": "DoesNotExist"}
    docs = render({"ObjectSelectorAdmissionSkip": [extra]})
    assert webhook(docs)["objectSelector"] == {"matchExpressions": [extra]}


# --- certificates


def test_default_certificate_is_generated_for_the_service_and_matches_the_ca_bundle() -> None:
    docs = render(namespace="secure")
    secret = one(docs, "Secret", "portieris-certs")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    ca_bundle = base64.b64decode(webhook(docs)["clientConfig"]["caBundle"])
    assert ca_bundle == data["ca.crt"]
    ca, cert = pem_cert(ca_bundle), pem_cert(data["tls.crt"])
    cert.verify_directly_issued_by(ca)
    assert "portieris.secure.svc" in dns_names(cert)


def test_generated_certs_from_the_gencerts_script(tmp_path: Path) -> None:
    subprocess.run(
        [str(CHART / "gencerts"), "ibm-system", str(tmp_path)], check=True, capture_output=True
    )
    values = yaml.safe_load((tmp_path / "values-certs.yaml").read_text())
    docs = render(values, namespace="ibm-system")
    secret = one(docs, "Secret", "portieris-certs")
    assert base64.b64decode(secret["data"]["tls.crt"]) == (tmp_path / "tls.crt").read_bytes()
    assert base64.b64decode(secret["data"]["tls.key"]) == (tmp_path / "tls.key").read_bytes()
    ca_bundle = base64.b64decode(webhook(docs)["clientConfig"]["caBundle"])
    assert ca_bundle == (tmp_path / "ca.crt").read_bytes()
    assert "cert-manager.io/inject-ca-from" not in (
        one(docs, "MutatingWebhookConfiguration")["metadata"].get("annotations") or {}
    )


def test_gencerts_makes_a_ca_and_a_serving_certificate_for_the_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [str(CHART / "gencerts"), "team-a", str(tmp_path)], check=True, capture_output=True
    )
    ca = pem_cert((tmp_path / "ca.crt").read_bytes())
    cert = pem_cert((tmp_path / "tls.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert dns_names(cert) == {
        "portieris",
        "portieris.team-a",
        "portieris.team-a.svc",
        "portieris.team-a.svc.cluster.local",
    }
    assert not list(tmp_path.glob("*ca.key*")), "the CA key must not be left behind"


def test_gencerts_refuses_an_invalid_namespace(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(CHART / "gencerts"), "Not_A_Namespace", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "namespace" in proc.stderr


def test_generated_certs_need_every_pem() -> None:
    assert "gencerts" in render_error({"UseGeneratedCerts": {"enabled": True, "tlsCert": "x"}})


def test_cert_manager_and_generated_certs_are_exclusive() -> None:
    values = {"UseCertManager": True, "UseGeneratedCerts": {"enabled": True}}
    assert "mutually exclusive" in render_error(values)


def test_cert_manager_certificate_and_ca_injection() -> None:
    docs = render({"UseCertManager": True}, namespace="secure")
    certificate = one(docs, "Certificate", "portieris-certs")
    assert certificate["spec"]["secretName"] == "portieris-certs"
    assert "portieris.secure.svc" in certificate["spec"]["dnsNames"]
    configuration = one(docs, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "secure/portieris-certs"
    )
    assert "caBundle" not in webhook(docs)["clientConfig"]
    assert not kinds(docs, "Secret"), "cert-manager writes the Secret"


def test_cert_manager_without_an_issuer_gets_a_chart_made_ca_issuer() -> None:
    docs = render({"UseCertManager": True})
    issuers = {d["metadata"]["name"]: d["spec"] for d in kinds(docs, "Issuer")}
    ref = one(docs, "Certificate", "portieris-certs")["spec"]["issuerRef"]
    assert ref["kind"] == "Issuer"
    assert "ca" in issuers[ref["name"]]
    ca_certificate = one(docs, "Certificate", "portieris-ca")["spec"]
    assert ca_certificate["isCA"] is True
    assert issuers[ref["name"]]["ca"]["secretName"] == ca_certificate["secretName"]
    assert "selfSigned" in issuers[ca_certificate["issuerRef"]["name"]]


@pytest.mark.parametrize("kind", ["Issuer", "ClusterIssuer"])
def test_cert_manager_with_a_named_issuer_uses_it(kind: str) -> None:
    docs = render({"UseCertManager": True, "certManagerIssuer": {"kind": kind, "name": "platform"}})
    assert not kinds(docs, "Issuer")
    assert [d["metadata"]["name"] for d in kinds(docs, "Certificate")] == ["portieris-certs"]
    ref = one(docs, "Certificate", "portieris-certs")["spec"]["issuerRef"]
    assert ref == {"kind": kind, "name": "platform"}


# --- default policies


def test_release_namespace_policy_admits_only_the_webhook_image() -> None:
    docs = render({"image": {"repository": "registry.local:9001/portieris/webhook"}})
    policy = one(docs, "ImagePolicy", "portieris-self")
    assert policy["metadata"]["namespace"] == NS
    assert policy["spec"]["repositories"] == [
        {"name": "registry.local:9001/portieris/webhook", "policy": {}}
    ]


def test_kube_system_policy_admits_everything(default_docs: list[dict[str, Any]]) -> None:
    policy = one(default_docs, "ImagePolicy", "portieris-kube-system")
    assert policy["metadata"]["namespace"] == "kube-system"
    assert policy["spec"]["repositories"] == [{"name": "*", "policy": {}}]


def test_default_policies_can_be_left_out() -> None:
    docs = render({"defaultPolicies": {"releaseNamespace": False, "kubeSystem": False}})
    assert not kinds(docs, "ImagePolicy")


def test_cluster_policy_allows_every_repository_by_default(
    default_docs: list[dict[str, Any]],
) -> None:
    policy = one(default_docs, "ClusterImagePolicy")
    assert policy["spec"]["repositories"] == [{"name": "*", "policy": {}}]


def test_cluster_policy_allowed_repositories() -> None:
    allowed = ["registry.local:9001/*", "quay.io/team/app"]
    docs = render({"clusterPolicy": {"allowedRepositories": allowed}})
    repositories = one(docs, "ClusterImagePolicy")["spec"]["repositories"]
    assert repositories == [{"name": name, "policy": {}} for name in allowed]


def test_empty_allowed_repositories_means_no_cluster_policy() -> None:
    assert not kinds(render({"clusterPolicy": {"allowedRepositories": []}}), "ClusterImagePolicy")


def test_default_policies_fit_the_crd_schema_and_the_webhook_parser() -> None:
    docs = render(
        EVERY_OPTION | {"defaultPolicies": {"releaseNamespace": True, "kubeSystem": True}}
    )
    policies = [d for d in docs if d["apiVersion"] == f"{GROUP}/v1"]
    assert len(policies) == 3
    for policy in policies:
        crd_validator(policy["kind"]).validate(policy)
        parse_policy_object(policy)


# --- CRDs


def load_crd(kind: str) -> dict[str, Any]:
    for path in (CHART / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return dict(crd)
    raise AssertionError(f"no CRD for {kind}")


def crd_schema(kind: str) -> dict[str, Any]:
    (version,) = load_crd(kind)["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def walk(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


def strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as the apiserver applies it with strict field validation.

    Unknown fields are an error under `kubectl apply` (--validate=strict, the
    default), which jsonschema expresses as additionalProperties: false, except
    where the schema keeps unknown fields (x-kubernetes-preserve-unknown-fields).
    """
    out = copy.deepcopy(dict(schema))
    keeps_unknown = out.get("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in out if k.startswith("x-kubernetes-")]:
        del out[key]
    if "properties" in out:
        out["properties"] = {
            name: child if name == "metadata" else strict(child)
            for name, child in out["properties"].items()
        }
        if not keeps_unknown:
            out.setdefault("additionalProperties", False)
    if "items" in out:
        out["items"] = strict(out["items"])
    return out


@cache
def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    schema = strict(crd_schema(kind))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize(
    ("kind", "plural", "scope"),
    [
        ("ImagePolicy", "imagepolicies", "Namespaced"),
        ("ClusterImagePolicy", "clusterimagepolicies", "Cluster"),
    ],
)
def test_crd_names_group_version_and_scope(kind: str, plural: str, scope: str) -> None:
    crd = load_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    assert crd["spec"]["group"] == GROUP
    assert crd["spec"]["scope"] == scope
    assert crd["spec"]["names"]["plural"] == plural
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)


def test_both_crds_share_one_spec_schema() -> None:
    spec = crd_schema("ImagePolicy")["properties"]["spec"]
    assert spec == crd_schema("ClusterImagePolicy")["properties"]["spec"]


@pytest.mark.parametrize("kind", ["ImagePolicy", "ClusterImagePolicy"])
def test_crd_schema_is_structural_and_keeps_unknown_fields_for_the_webhook(kind: str) -> None:
    # Structural: every node says its type and every object names its fields, so known fields
    # are type-checked. Every object also keeps unknown fields: pruned, a misspelt
    # `requirement:` or IBM's `vulnerability:` would vanish before the webhook could refuse it.
    for path, node in walk(crd_schema(kind)):
        assert "type" in node, f"{kind}{path} has no type"
        if node["type"] == "object" and path != ".metadata":
            assert "properties" in node, f"{kind}{path} is an object without properties"
            assert node.get("x-kubernetes-preserve-unknown-fields") is True, (
                f"{kind}{path} prunes unknown fields"
            )


def test_crd_schema_names_every_policy_field() -> None:
    paths = {path for path, _ in walk(crd_schema("ImagePolicy"))}
    policy = ".spec.repositories[].policy"
    requirement = f"{policy}.simple.requirements[]"
    assert paths >= {
        ".spec.repositories[].name",
        f"{policy}.trust.enabled",
        f"{policy}.trust.trustServer",
        f"{policy}.trust.signerSecrets[].name",
        f"{requirement}.type",
        f"{requirement}.keySecret",
        f"{requirement}.keySecretNamespace",
        f"{requirement}.signedIdentity.type",
        f"{requirement}.signedIdentity.dockerReference",
        f"{requirement}.signedIdentity.dockerRepository",
        f"{requirement}.signedIdentity.prefix",
        f"{requirement}.signedIdentity.signedPrefix",
        f"{policy}.simple.storeURL",
        f"{policy}.simple.storeSecret",
        f"{policy}.mutateImage",
    }
    authority = f"{policy}.sigstore.authorities[]"
    material = ("data", "secretRef.name", "secretRef.key", "secretRef.namespace")
    assert paths >= {
        f"{authority}.name",
        f"{authority}.key.hashAlgorithm",
        *(f"{authority}.key.{m}" for m in material),
        f"{authority}.keyless.url",
        *(f"{authority}.keyless.ca-cert.{m}" for m in material),
        *(
            f"{authority}.keyless.identities[].{f}"
            for f in ("issuer", "issuerRegExp", "subject", "subjectRegExp")
        ),
        *(
            f"{where}.ctlog.{f}"
            for where in (authority, f"{policy}.sigstore")
            for f in ("enabled", "url")
        ),
        *(f"{authority}.ctlog.publicKey.{m}" for m in material),
        *(f"{policy}.sigstore.ctlog.publicKey.{m}" for m in material),
        *(f"{authority}.rfc3161timestamp.certChain.{m}" for m in material),
        *(f"{policy}.sigstore.rfc3161timestamp.certChain.{m}" for m in material),
        f"{authority}.source[].oci",
        f"{authority}.source[].signaturePullSecrets[].name",
        f"{authority}.attestations[].name",
        f"{authority}.attestations[].predicateType",
    }


def test_crd_sigstore_levels_name_exactly_the_fields_the_webhook_knows() -> None:
    """Each object of the sigstore part lists the fields its level in the webhook's parser
    knows (policy/sigstore_part.py FIELDS): no field the parser refuses is documented, and
    none it reads is left out."""
    from portieris_webhook.policy.sigstore_part import FIELDS

    schema = dict(walk(crd_schema("ImagePolicy")))
    sigstore = ".spec.repositories[].policy.sigstore"
    authority = f"{sigstore}.authorities[]"
    levels = {
        "sigstore": sigstore,
        "authorities[]": authority,
        "key": f"{authority}.key",
        "secretRef": f"{authority}.key.secretRef",
        "keyless": f"{authority}.keyless",
        "ca-cert": f"{authority}.keyless.ca-cert",
        "identities[]": f"{authority}.keyless.identities[]",
        "ctlog": f"{authority}.ctlog",
        "publicKey": f"{authority}.ctlog.publicKey",
        "rfc3161timestamp": f"{authority}.rfc3161timestamp",
        "certChain": f"{authority}.rfc3161timestamp.certChain",
        "source[]": f"{authority}.source[]",
        "signaturePullSecrets[]": f"{authority}.source[].signaturePullSecrets[]",
        "attestations[]": f"{authority}.attestations[]",
    }
    assert set(levels) == set(FIELDS)
    for level, path in levels.items():
        assert set(schema[path]["properties"]) == set(FIELDS[level].known), level
    assert schema[f"{sigstore}.ctlog"] == schema[f"{authority}.ctlog"] | {
        "description": schema[f"{sigstore}.ctlog"]["description"]
    }
    assert schema[f"{sigstore}.rfc3161timestamp"] == schema[f"{authority}.rfc3161timestamp"] | {
        "description": schema[f"{sigstore}.rfc3161timestamp"]["description"]
    }


def test_crd_enums_match_the_webhook() -> None:
    from portieris_webhook.policy.model import IDENTITY_TYPES, REQUIREMENT_TYPES

    schema = dict(walk(crd_schema("ImagePolicy")))
    requirement = ".spec.repositories[].policy.simple.requirements[]"
    assert set(schema[f"{requirement}.type"]["enum"]) == set(REQUIREMENT_TYPES)
    assert set(schema[f"{requirement}.signedIdentity.type"]["enum"]) == set(IDENTITY_TYPES)
    from portieris_webhook.policy.sigstore_part import HASH_ALGORITHMS, MAX_AUTHORITIES

    authorities = schema[".spec.repositories[].policy.sigstore.authorities"]
    assert authorities["maxItems"] == MAX_AUTHORITIES
    key = ".spec.repositories[].policy.sigstore.authorities[].key"
    assert set(schema[f"{key}.hashAlgorithm"]["enum"]) == set(HASH_ALGORITHMS)


def policy(
    kind: str, policy_body: Mapping[str, Any], name: str = "registry.local:9001/app/*"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "sample"}
    if kind == "ImagePolicy":
        metadata["namespace"] = "default"
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": {"repositories": [{"name": name, "policy": dict(policy_body)}]},
    }


def signed_by(**extra: Any) -> dict[str, Any]:
    return {"simple": {"requirements": [{"type": "signedBy", "keySecret": "k", **extra}]}}


# Only the schema and the parser look at these: neither parses the PEM.
PEM_KEY = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
REKOR = {"publicKey": {"secretRef": {"name": "portieris-sigstore-trust-roots", "key": "rekor"}}}


def keyed(**extra: Any) -> dict[str, Any]:
    """A sigstore authority with an inline key and a log."""
    return {"key": {"data": PEM_KEY}, "ctlog": REKOR, **extra}


def keyless(**extra: Any) -> dict[str, Any]:
    """A sigstore keyless authority with its roots in a Secret and a log."""
    return {
        "keyless": {
            "url": "https://fulcio.example.com",
            "ca-cert": {"secretRef": {"name": "fulcio", "namespace": "portieris"}},
            "identities": [
                {"issuer": "https://dex.example.com", "subject": "release@example.com"},
                {
                    "issuerRegExp": "https://token\\.actions\\.example\\.com",
                    "subjectRegExp": "https://git\\.example\\.com/team/.*",
                },
            ],
        },
        "ctlog": REKOR,
        **extra,
    }


def sigstore(*authorities: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"sigstore": {"authorities": list(authorities), **extra}}


GOOD_POLICIES: dict[str, dict[str, Any]] = {
    "empty": {},
    "trust": {
        "trust": {
            "enabled": True,
            "trustServer": "https://notary.example:4443",
            "signerSecrets": [{"name": "alice"}, {"name": "bob"}],
        },
        "mutateImage": False,
    },
    "simple every field": {
        "simple": {
            "requirements": [
                {
                    "type": "signedBy",
                    "keySecret": "key",
                    "keySecretNamespace": "keys",
                    "signedIdentity": {
                        "type": "remapIdentity",
                        "prefix": "registry.local:9001",
                        "signedPrefix": "quay.io",
                    },
                }
            ],
            "storeURL": "https://sigstore.example/sigs",
            "storeSecret": "store",
        }
    },
    "insecure accept anything": {"simple": {"requirements": [{"type": "insecureAcceptAnything"}]}},
    "reject": {"simple": {"requirements": [{"type": "reject"}]}},
    **{
        f"identity {t}": signed_by(signedIdentity={"type": t})
        for t in ("matchExact", "matchRepoDigestOrExact", "matchRepository")
    },
    "identity matchExactReference": signed_by(
        signedIdentity={"type": "matchExactReference", "dockerReference": "quay.io/a/b:1"}
    ),
    "identity matchExactRepository": signed_by(
        signedIdentity={"type": "matchExactRepository", "dockerRepository": "quay.io/a/b"}
    ),
    "trust and simple": {"trust": {"enabled": True}, **signed_by()},
    "sigstore keyed": {"sigstore": {"authorities": [keyed()]}},
    "sigstore keyed from a Secret, no log": {
        "sigstore": {
            "authorities": [
                {
                    "key": {
                        "secretRef": {"name": "cosign-pub", "key": "cosign.pub"},
                        "hashAlgorithm": "sha384",
                    },
                    "ctlog": {"enabled": False},
                }
            ]
        }
    },
    "sigstore keyless": {"sigstore": {"authorities": [keyless()]}},
    "sigstore keyless, timestamps without a log": {
        "sigstore": {
            "authorities": [keyless(ctlog={"enabled": False})],
            "rfc3161timestamp": {"certChain": {"data": PEM_CERT}},
        }
    },
    "sigstore every field": {
        "sigstore": {
            "ctlog": {"url": "https://rekor.example.com", "publicKey": {"data": PEM_KEY}},
            "rfc3161timestamp": {
                "certChain": {
                    "secretRef": {"name": "roots", "key": "tsa", "namespace": "portieris"}
                }
            },
            "authorities": [
                {
                    **keyless(),
                    "name": "release pipeline",
                    "rfc3161timestamp": {"certChain": {"data": PEM_CERT}},
                    "source": [
                        {
                            "oci": "registry.example.com/signatures/app",
                            "signaturePullSecrets": [{"name": "signature-pull"}],
                        }
                    ],
                    "attestations": [
                        {"name": "provenance", "predicateType": "https://slsa.dev/provenance/v1"},
                        {"predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1"},
                    ],
                },
                {**keyed(), "name": "release key"},
            ],
        }
    },
    "trust, simple and sigstore": {
        "trust": {"enabled": True},
        **signed_by(),
        "sigstore": {"authorities": [keyed()]},
    },
}

# Caught by the schema's structure (types, enums, required, unknown fields).
STRUCTURALLY_BAD: dict[str, dict[str, Any]] = {
    "enabled not a boolean": {"trust": {"enabled": "yes"}},
    "mutateImage not a boolean": {"mutateImage": "false"},
    "signer without name": {"trust": {"enabled": True, "signerSecrets": [{"secret": "alice"}]}},
    "signerSecrets not a list": {"trust": {"signerSecrets": "alice"}},
    "unknown requirement type": {"simple": {"requirements": [{"type": "signedByAnyone"}]}},
    "requirement without type": {"simple": {"requirements": [{"keySecret": "k"}]}},
    "requirements not a list": {"simple": {"requirements": {"type": "reject"}}},
    "unknown identity type": signed_by(signedIdentity={"type": "matchAnything"}),
    "storeURL not a string": {"simple": {"storeURL": 42, "requirements": [{"type": "reject"}]}},
    "sigstore authorities not a list": {"sigstore": {"authorities": keyed()}},
    "sigstore without authorities": {"sigstore": {"authorities": []}},
    "sigstore with 17 authorities": sigstore(*[keyed()] * 17),
    "sigstore unknown hash algorithm": sigstore(
        keyed(key={"data": PEM_KEY, "hashAlgorithm": "md5"})
    ),
    "sigstore key data not PEM": sigstore(keyed(key={"data": "MFkwEwYHKoZIzj0CAQ"})),
    "sigstore secretRef without name": sigstore(keyed(key={"secretRef": {"key": "cosign.pub"}})),
    "sigstore keyless without ca-cert": sigstore(
        keyless(keyless={"identities": [{"issuer": "i", "subject": "s"}]})
    ),
    "sigstore keyless without identities": sigstore(
        keyless(keyless={"ca-cert": {"data": PEM_CERT}, "identities": []})
    ),
    "sigstore ctlog enabled not a boolean": sigstore(keyed(ctlog={"enabled": "no"})),
    "sigstore timestamp without certChain": sigstore(keyed(rfc3161timestamp={})),
    "sigstore two sources": sigstore(
        keyed(source=[{"oci": "a.example/s"}, {"oci": "b.example/s"}])
    ),
    "sigstore source without oci": sigstore(keyed(source=[{"signaturePullSecrets": []}])),
    "sigstore attestation without predicateType": sigstore(keyed(attestations=[{"name": "x"}])),
}

# Kept by the apiserver (the schema keeps unknown fields) and refused by the webhook's parser,
# which denies the images the policy governs, naming the field.
KEPT_FOR_THE_WEBHOOK: dict[str, dict[str, Any]] = {
    "misspelt field": {"trust": {"enable": True}},
    "misspelt requirements": {"simple": {"requirement": [{"type": "reject"}]}},
    "misspelt signer field": {
        "trust": {"enabled": True, "signerSecrets": [{"name": "a", "nmae": "b"}]}
    },
    "misspelt identity field": signed_by(
        signedIdentity={"type": "matchExactReference", "dockerReference": "a/b:1", "prefx": "a"}
    ),
    "IBM vulnerability section": {"vulnerability": {"ICCRVA": {"enabled": True}}},
    "misspelt sigstore field": sigstore(keyed(attestation=[{"predicateType": "x"}])),
    "misspelt sigstore identity field": sigstore(
        keyless(
            keyless={
                "ca-cert": {"data": PEM_CERT},
                "identities": [{"issuer": "i", "subject": "s", "subjet": "t"}],
            }
        )
    ),
    "policy-controller static action": sigstore(keyed(static={"action": "pass"})),
    "policy-controller kms key": sigstore(
        keyed(key={"data": PEM_KEY, "kms": "awskms:///alias/release"})
    ),
    "policy-controller trustRootRef": sigstore(
        keyless(ctlog={**REKOR, "trustRootRef": "sigstore-public"})
    ),
    "policy-controller attestation policy": sigstore(
        keyed(attestations=[{"predicateType": "x", "policy": {"type": "cue", "data": "{}"}}])
    ),
}

# Caught by the CRD's CEL rules (checked by a real apiserver) and by the webhook's parser.
CEL_BAD: dict[str, dict[str, Any]] = {
    "signedBy without keySecret": {"simple": {"requirements": [{"type": "signedBy"}]}},
    "signedBy with empty keySecret": {
        "simple": {"requirements": [{"type": "signedBy", "keySecret": ""}]}
    },
    "matchExactReference without dockerReference": signed_by(
        signedIdentity={"type": "matchExactReference"}
    ),
    "matchExactRepository without dockerRepository": signed_by(
        signedIdentity={"type": "matchExactRepository"}
    ),
    "remapIdentity without signedPrefix": signed_by(
        signedIdentity={"type": "remapIdentity", "prefix": "a"}
    ),
    "sigstore ctlog without authorities": {"sigstore": {"ctlog": {"enabled": False}}},
    "sigstore authority with key and keyless": sigstore({**keyed(), **keyless()}),
    "sigstore authority with neither key nor keyless": sigstore({"ctlog": {"enabled": False}}),
    "sigstore key with data and secretRef": sigstore(
        keyed(key={"data": PEM_KEY, "secretRef": {"name": "cosign-pub"}})
    ),
    "sigstore key with neither data nor secretRef": sigstore(
        keyed(key={"hashAlgorithm": "sha256"})
    ),
    "sigstore identity with issuer and issuerRegExp": sigstore(
        keyless(
            keyless={
                "ca-cert": {"data": PEM_CERT},
                "identities": [{"issuer": "i", "issuerRegExp": "i.*", "subject": "s"}],
            }
        )
    ),
    "sigstore identity without subject": sigstore(
        keyless(keyless={"ca-cert": {"data": PEM_CERT}, "identities": [{"issuer": "i"}]})
    ),
    "sigstore authority without ctlog": sigstore({"key": {"data": PEM_KEY}}),
    "sigstore ctlog without publicKey": sigstore(keyed(ctlog={"url": "https://rekor.example"})),
    "sigstore ctlog off with a publicKey": sigstore(
        keyed(ctlog={"enabled": False, "publicKey": {"data": PEM_KEY}})
    ),
    "sigstore keyless without log or timestamp": sigstore(keyless(ctlog={"enabled": False})),
    "sigstore keyless, the part's log off": {
        "sigstore": {
            "ctlog": {"enabled": False},
            "authorities": [{"keyless": keyless()["keyless"]}],
        }
    },
}

BAD_NAMES = {"missing name": None, "empty name": "", "name with space": "registry/app *"}

KINDS = ["ImagePolicy", "ClusterImagePolicy"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(GOOD_POLICIES))
def test_crd_schema_accepts_good_policies(kind: str, case: str) -> None:
    crd_validator(kind).validate(policy(kind, GOOD_POLICIES[case]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(STRUCTURALLY_BAD))
def test_crd_schema_rejects_malformed_policies(kind: str, case: str) -> None:
    assert list(crd_validator(kind).iter_errors(policy(kind, STRUCTURALLY_BAD[case])))


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_crd_schema_rejects_bad_repository_names(case: str) -> None:
    bad = policy("ImagePolicy", {})
    if BAD_NAMES[case] is None:
        del bad["spec"]["repositories"][0]["name"]
    else:
        bad["spec"]["repositories"][0]["name"] = BAD_NAMES[case]
    assert list(crd_validator("ImagePolicy").iter_errors(bad))


@pytest.mark.parametrize("case", sorted(GOOD_POLICIES))
def test_webhook_parser_accepts_what_the_crd_accepts(case: str) -> None:
    parse_policy_object(policy("ImagePolicy", GOOD_POLICIES[case]))


@pytest.mark.parametrize("case", sorted(KEPT_FOR_THE_WEBHOOK))
def test_unknown_fields_pass_the_schema_and_are_refused_by_the_webhook_parser(case: str) -> None:
    crd_validator("ImagePolicy").validate(policy("ImagePolicy", KEPT_FOR_THE_WEBHOOK[case]))
    with pytest.raises(InvalidPolicy, match=r"unknown field|not implemented by this webhook"):
        parse_policy_object(policy("ImagePolicy", KEPT_FOR_THE_WEBHOOK[case]))


@pytest.mark.parametrize("case", sorted(CEL_BAD))
def test_cel_rules_mirror_the_webhook_parser(case: str) -> None:
    # These pass the schema's structure; the CEL rules are what reject them at
    # apply time, and they say the same as the webhook's own parser.
    crd_validator("ImagePolicy").validate(policy("ImagePolicy", CEL_BAD[case]))
    with pytest.raises(InvalidPolicy):
        parse_policy_object(policy("ImagePolicy", CEL_BAD[case]))


# --- CRDs in a real apiserver


@pytest.fixture(scope="module")
def cluster_with_crds() -> Iterator[ControlPlane]:
    with ControlPlane() as plane:
        plane.kubectl("apply", "-f", str(CHART / "crds"), check=True)
        plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", check=True
        )
        yield plane


def server_dry_run(plane: ControlPlane, obj: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(obj))


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_apiserver_accepts_every_good_policy(cluster_with_crds: ControlPlane, kind: str) -> None:
    for case, body in GOOD_POLICIES.items():
        proc = server_dry_run(cluster_with_crds, policy(kind, body))
        assert proc.returncode == 0, f"{case}: {proc.stderr}"


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_apiserver_rejects_every_malformed_policy(
    cluster_with_crds: ControlPlane, kind: str
) -> None:
    for case, body in (STRUCTURALLY_BAD | CEL_BAD).items():
        proc = server_dry_run(cluster_with_crds, policy(kind, body))
        assert proc.returncode != 0, f"{case} was accepted"
        assert re.search(r"invalid|unknown field|Unsupported value|Required", proc.stderr), (
            proc.stderr
        )


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_apiserver_keeps_unknown_fields_for_the_webhook(
    cluster_with_crds: ControlPlane, kind: str
) -> None:
    for case, body in KEPT_FOR_THE_WEBHOOK.items():
        proc = cluster_with_crds.kubectl(
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(policy(kind, body)),
        )
        assert proc.returncode == 0, f"{case}: {proc.stderr}"
        kept = json.loads(proc.stdout)["spec"]["repositories"][0]["policy"]
        assert kept == body, f"{case}: the apiserver stored {kept}"


@pytest.mark.e2e
def test_apiserver_cel_messages_reach_the_user(cluster_with_crds: ControlPlane) -> None:
    proc = server_dry_run(
        cluster_with_crds, policy("ImagePolicy", CEL_BAD["signedBy without keySecret"])
    )
    assert "keySecret is required for a signedBy requirement" in proc.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("sigstore authority with key and keyless", "give exactly one of key and keyless"),
        ("sigstore authority without ctlog", "every authority needs a ctlog"),
        (
            "sigstore keyless without log or timestamp",
            "a keyless authority needs a transparency log",
        ),
        ("sigstore identity without subject", "give exactly one of subject and subjectRegExp"),
    ],
)
def test_apiserver_sigstore_messages_reach_the_user(
    cluster_with_crds: ControlPlane, case: str, message: str
) -> None:
    proc = server_dry_run(cluster_with_crds, policy("ClusterImagePolicy", CEL_BAD[case]))
    assert message in proc.stderr


@pytest.mark.e2e
def test_apiserver_accepts_the_charts_default_policies(cluster_with_crds: ControlPlane) -> None:
    cluster_with_crds.kubectl("create", "namespace", NS)
    for doc in render():
        if doc["apiVersion"] == f"{GROUP}/v1":
            proc = server_dry_run(cluster_with_crds, doc)
            assert proc.returncode == 0, proc.stderr


# --- Containerfile


def containerfile_stages() -> list[list[tuple[str, str]]]:
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def final_stage(instruction: str) -> list[str]:
    return [rest for name, rest in containerfile_stages()[-1] if name == instruction]


def test_image_is_python_311_slim() -> None:
    assert final_stage("FROM") == ["python:3.11-slim"]


def test_image_installs_gpg_and_the_package() -> None:
    runs = " ".join(final_stage("RUN"))
    assert re.search(r"apt-get install [^&]*\bgnupg\b", runs)
    assert re.search(r"pip install [^&]*portieris-webhook", runs)


def test_image_runs_as_the_non_root_user_the_chart_expects() -> None:
    (user,) = final_stage("USER")
    uid, _, gid = user.partition(":")
    values = yaml.safe_load((CHART / "values.yaml").read_text())["securityContext"]
    assert int(uid) != 0
    assert (int(uid), int(gid or uid)) == (values["runAsUser"], values["runAsGroup"])


def test_image_entrypoint_serves() -> None:
    (entrypoint,) = final_stage("ENTRYPOINT")
    assert json.loads(entrypoint) == ["portieris-webhook", "serve"]
