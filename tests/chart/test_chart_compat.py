"""Values files written for IBM Portieris' chart (v0.14) and for the StarlingX portieris
application, rendered with this chart.

IBM's shapes of the values that share a name with this chart's are taken and mean what they
meant there (`clusterPolicy.allowedRepositories` entries `{name, policy}`,
`ObjectSelectorAdmissionSkip` as a LabelSelector, `priorityClass`, `image.pullSecret`,
`certManagerIssuer.skipCreation`, nulls where IBM's file leaves a value empty); the values this
chart cannot honour are refused, all at once, each with what to write instead. The StarlingX
application's values are its static overrides, the helm plugin's system overrides (computed by
k8sapp_portieris.common.overrides, as tests/app checks) and the operator's overrides, in the order
FluxCD merges them, plus the `reconcile_trigger` sysinv writes into the HelmRelease on a re-apply.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8sapp_portieris.common import overrides
from portieris_webhook.policy.model import parse_policy_object

from .test_chart import (
    CHART,
    NS,
    REPO_ROOT,
    arg_values,
    container,
    crd_validator,
    helm,
    kinds,
    one,
    pod_spec,
    render,
    render_error,
    webhook,
)
from tests.fixtures.pki import TestCA

NAME_KEY = "kubernetes.io/metadata.name"
STATIC_OVERRIDES = (
    REPO_ROOT
    / "stx-manifests"
    / "fluxcd-manifests"
    / "portieris"
    / "portieris-static-overrides.yaml"
)
OUR_IMAGE = {"repository": "registry.example.com/portieris-webhook", "tag": "0.1.0"}


def render_all(
    *documents: Mapping[str, Any] | Path, namespace: str = NS
) -> subprocess.CompletedProcess[str]:
    """`helm template` with several values files in order (later ones win, as FluxCD and helm
    merge them)."""
    with tempfile.TemporaryDirectory(prefix="portieris-values-") as tmp:
        argv = [helm(), "template", "portieris", str(CHART), "--namespace", namespace]
        for number, document in enumerate(documents):
            if isinstance(document, Path):
                path = document
            else:
                path = Path(tmp) / f"values-{number}.yaml"
                path.write_text(yaml.safe_dump(dict(document)))
            argv += ["--values", str(path)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def docs_of(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def requirement_holds(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = requirement["key"], requirement["operator"]
    if operator == "In":
        return labels.get(key) in requirement["values"]
    if operator == "NotIn":
        return labels.get(key) not in requirement["values"]
    if operator == "Exists":
        return key in labels
    return key not in labels


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector selects an object with these labels."""
    matched = all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
    return matched and all(
        requirement_holds(r, labels) for r in selector.get("matchExpressions") or []
    )


def excluded(docs: list[dict[str, Any]]) -> list[str]:
    selector = webhook(docs).get("namespaceSelector") or {}
    (expression,) = [e for e in selector.get("matchExpressions", []) if e["key"] == NAME_KEY]
    assert expression["operator"] == "NotIn"
    return list(expression["values"])


# --- IBM Portieris v0.14.2: a values file in IBM's shapes, with this chart's image

IBM_SKIP_SELECTOR = {
    "matchLabels": {"team": "payments"},
    "matchExpressions": [{"key": "portieris.example.com/skip", "operator": "DoesNotExist"}],
}
IBM_AFFINITY = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "topologyKey": "topology.kubernetes.io/zone",
                    "labelSelector": {
                        "matchExpressions": [
                            {"key": "app", "operator": "In", "values": ["portieris"]}
                        ]
                    },
                },
            }
        ]
    }
}
IBM_VALUES: dict[str, Any] = {
    "replicaCount": 2,
    "deploymentAnnotations": {"secret.reloader.stakater.com/reload": "portieris-certs"},
    "podAnnotations": {"sidecar.istio.io/inject": "false"},
    # IBM's image is {host, image, tag, pullPolicy, pullSecret}; host and image name IBM's own
    # image, so a user coming from it names this chart's image with repository instead.
    "image": {**OUR_IMAGE, "pullSecret": "registry-pull", "pullPolicy": "Always"},
    "service": {"type": "ClusterIP", "port": 443, "targetPort": 8000, "metricsPort": 8080},
    "securityContext": {"runAsUser": 1000060001},
    "webHooks": {"failurePolicy": "Ignore"},
    "SkipSecretCreation": False,
    "UseCertManager": True,
    "certManagerIssuer": {"skipCreation": False, "kind": "Issuer", "name": "portieris"},
    "UseGeneratedCerts": {"enabled": False, "tlsCert": "", "tlsKey": "", "caCert": ""},
    "resources": {
        "limits": {"cpu": "400m", "memory": "600Mi"},
        "requests": {"cpu": "40m", "memory": "60Mi"},
    },
    "nodeSelector": {},
    "tolerations": [],
    "affinity": IBM_AFFINITY,
    "AllowAdmissionSkip": True,
    "ObjectSelectorAdmissionSkip": IBM_SKIP_SELECTOR,
    "NamespaceSelectorAdmissionSkip": [
        {"key": "environment", "operator": "NotIn", "values": ["sandbox"]}
    ],
    "clusterPolicy": {
        "allowedRepositories": [
            {"name": "icr.io/*"},
            {"name": "registry.example.com/*", "policy": {"trust": {"enabled": True}}},
        ]
    },
    "useHostNetwork": False,
    "priorityClass": "portieris-critical",
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "selectByRelease": True,
}


@pytest.fixture(scope="module")
def ibm_docs() -> list[dict[str, Any]]:
    return render(IBM_VALUES)


def test_ibm_allowed_repositories_become_the_cluster_policy(ibm_docs: list[dict[str, Any]]) -> None:
    policy = one(ibm_docs, "ClusterImagePolicy", "portieris-default-cluster-policy")
    assert policy["spec"]["repositories"] == [
        {"name": "icr.io/*", "policy": {}},
        {"name": "registry.example.com/*", "policy": {"trust": {"enabled": True}}},
    ]
    crd_validator("ClusterImagePolicy").validate(policy)
    parse_policy_object(policy)


def test_ibm_object_selector_is_a_label_selector(ibm_docs: list[dict[str, Any]]) -> None:
    assert webhook(ibm_docs)["objectSelector"] == IBM_SKIP_SELECTOR


def test_ibm_namespace_selector_and_skip_label_join_the_exclusions(
    ibm_docs: list[dict[str, Any]],
) -> None:
    expressions = webhook(ibm_docs)["namespaceSelector"]["matchExpressions"]
    assert expressions == [
        {"key": NAME_KEY, "operator": "NotIn", "values": [NS, "kube-system"]},
        {
            "key": "securityenforcement.admission.cloud.ibm.com/namespace",
            "operator": "NotIn",
            "values": ["skip"],
        },
        {"key": "environment", "operator": "NotIn", "values": ["sandbox"]},
    ]


def test_ibm_priority_class_and_pull_secret(ibm_docs: list[dict[str, Any]]) -> None:
    spec = pod_spec(ibm_docs)
    assert spec["priorityClassName"] == "portieris-critical"
    assert spec["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert spec["securityContext"]["runAsUser"] == 1000060001
    assert container(ibm_docs)["image"] == "registry.example.com/portieris-webhook:0.1.0"
    assert container(ibm_docs)["imagePullPolicy"] == "Always"


def test_ibm_affinity_selects_the_webhook_pods(ibm_docs: list[dict[str, Any]]) -> None:
    deployment = one(ibm_docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (term,) = pod_spec(ibm_docs)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert selects(term["podAffinityTerm"]["labelSelector"], labels)


def test_ibm_annotations_replicas_and_budget(ibm_docs: list[dict[str, Any]]) -> None:
    deployment = one(ibm_docs, "Deployment")
    assert deployment["metadata"]["annotations"] == IBM_VALUES["deploymentAnnotations"]
    pod_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["sidecar.istio.io/inject"] == "false"
    assert deployment["spec"]["replicas"] == 2
    assert one(ibm_docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert webhook(ibm_docs)["failurePolicy"] == "Ignore"


def test_ibm_issuer_created_by_the_chart_when_skip_creation_is_false(
    ibm_docs: list[dict[str, Any]],
) -> None:
    # IBM's chart creates the issuer it names unless skipCreation; this chart creates its own
    # CA issuer, and the name IBM would have created is not looked for.
    reference = one(ibm_docs, "Certificate", "portieris-certs")["spec"]["issuerRef"]
    issuers = {d["metadata"]["name"] for d in kinds(ibm_docs, "Issuer")}
    assert reference == {"kind": "Issuer", "name": "portieris-ca-issuer"}
    assert "portieris-ca-issuer" in issuers and "portieris" not in issuers


@pytest.mark.parametrize("kind", ["Issuer", "ClusterIssuer"])
def test_ibm_skip_creation_uses_the_named_issuer(kind: str) -> None:
    issuer = {"skipCreation": True, "kind": kind, "name": "corporate-ca"}
    docs = render({"UseCertManager": True, "certManagerIssuer": issuer})
    assert not kinds(docs, "Issuer")
    reference = one(docs, "Certificate", "portieris-certs")["spec"]["issuerRef"]
    assert reference == {"kind": kind, "name": "corporate-ca"}


def test_ibm_skip_creation_needs_an_issuer_name() -> None:
    values = {"UseCertManager": True, "certManagerIssuer": {"skipCreation": True, "name": ""}}
    assert "certManagerIssuer.skipCreation: true needs certManagerIssuer.name" in render_error(
        values
    )


def test_ibm_empty_values_are_nulls_and_mean_none() -> None:
    # IBM's values.yaml leaves these empty (null): no selector, no pull secret.
    docs = render(
        {
            "image": {**OUR_IMAGE, "pullSecret": None},
            "ObjectSelectorAdmissionSkip": None,
            "NamespaceSelectorAdmissionSkip": None,
            "priorityClass": None,
        }
    )
    assert "objectSelector" not in webhook(docs)
    assert "imagePullSecrets" not in pod_spec(docs)
    assert pod_spec(docs)["priorityClassName"] == "system-cluster-critical"
    assert excluded(docs) == [NS, "kube-system"]


def test_ibm_empty_priority_class_means_none() -> None:
    assert "priorityClassName" not in pod_spec(render({"priorityClass": ""}))


def test_namespace_selector_may_be_a_label_selector() -> None:
    selector = {
        "matchLabels": {"portieris.example.com/enforce": "true"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}],
    }
    namespace = webhook(render({"NamespaceSelectorAdmissionSkip": selector}))["namespaceSelector"]
    assert namespace["matchLabels"] == selector["matchLabels"]
    assert namespace["matchExpressions"][-1] == selector["matchExpressions"][0]
    assert namespace["matchExpressions"][0]["key"] == NAME_KEY


def test_values_ibm_chart_defaults_hold_that_this_chart_cannot_honour_are_refused_at_once() -> None:
    # IBM's defaults: its own image (host and name) and PolicySet None. Each is named with what
    # to write instead, in one message.
    values = {
        **IBM_VALUES,
        "image": {"host": "icr.io/portieris", "image": "portieris", "tag": "v0.14.2"},
        "PolicySet": "None",
    }
    error = render_error(values)
    assert "image.host and image.image name IBM Portieris' image" in error
    assert "set image.repository (and image.tag)" in error
    assert "PolicySet: remove it" in error
    assert "clusterPolicy.allowedRepositories: []" in error


@pytest.mark.parametrize(
    ("values", "advice"),
    [
        ({"SkipSecretCreation": True}, "use UseCertManager: true, or UseGeneratedCerts"),
        ({"useHostNetwork": True}, "useHostNetwork: true is not supported"),
        ({"PolicySet": "IKS"}, "For IBM's IKS policies, write them as ImagePolicies"),
        ({"images": {"tags": {"portieris": "icr.io/portieris/portieris:v0.13.28"}}}, "images is"),
        ({"namespace": "portieris"}, "helm --namespace"),
        ({"livenessProbe": {"initialDelaySeconds": 17}}, "livenessProbe: remove it"),
        ({"PostUpgradePolicy": "Fail"}, "set webHooks.failurePolicy"),
        ({"ReapplyAdmissionWebhook": False}, "ReapplyAdmissionWebhook is the upstream"),
    ],
)
def test_foreign_values_are_refused_with_what_to_write(values: dict[str, Any], advice: str) -> None:
    assert advice in render_error(values)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"clusterPolicy": {"allowedRepositories": [{"name": "a b"}]}}, "allowedRepositories"),
        ({"clusterPolicy": {"allowedRepositories": [{"policy": {}}]}}, "allowedRepositories"),
        ({"clusterPolicy": {"allowedRepositories": [{"name": "a", "polcy": {}}]}}, "polcy"),
        (
            {"ObjectSelectorAdmissionSkip": {"matchLabel": {"a": "b"}}},
            "ObjectSelectorAdmissionSkip",
        ),
        ({"ObjectSelectorAdmissionSkip": "app=x"}, "ObjectSelectorAdmissionSkip"),
        ({"certManagerIssuer": {"skipCreation": "no"}}, "skipCreation"),
        ({"priorityClass": 3}, "priorityClass"),
    ],
)
def test_schema_refuses_mistakes_in_ibm_shapes(values: dict[str, Any], complaint: str) -> None:
    assert complaint in render_error(values)


# --- TrustedCACert: PEM, or base64 of PEM (the StarlingX application's form)

PEM = "-----BEGIN CERTIFICATE-----\nMIIBcompat\n-----END CERTIFICATE-----\n"


def trusted_ca(docs: list[dict[str, Any]]) -> str:
    return str(one(docs, "ConfigMap", "portieris-trusted-ca")["data"]["ca.crt"])


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(PEM.encode()).decode(),
        # as `base64` wraps it, at 76 characters with newlines
        base64.encodebytes((PEM * 3).encode()).decode(),
    ],
    ids=["one line", "wrapped"],
)
def test_base64_trusted_ca_cert_is_decoded(encoded: str) -> None:
    docs = render({"TrustedCACert": encoded})
    assert trusted_ca(docs).strip() == base64.b64decode(encoded).decode().strip()
    assert arg_values(docs, "ca-file") == ["/etc/portieris/trusted-ca/ca.crt"]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("%%% not base64 %%%", "neither a PEM bundle of CA certificates nor base64 of one"),
        (base64.b64encode(b"hello").decode(), "neither a PEM bundle"),
        ("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n", "no -----BEGIN CERT"),
        (PEM + "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "a private key"),
        (
            base64.b64encode(
                (
                    PEM + "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"
                ).encode()
            ).decode(),
            "a private key",
        ),
    ],
)
def test_a_trusted_ca_cert_that_is_not_certificates_is_refused(value: str, complaint: str) -> None:
    assert complaint in render_error({"TrustedCACert": value})


# --- the StarlingX application: static, system and user overrides, then sysinv's trigger


@pytest.fixture(scope="module")
def cas() -> dict[str, TestCA]:
    return {name: TestCA.create(name) for name in ("system-local-ca", "harbor-ca", "operator")}


def starlingx_layers(cas: dict[str, TestCA]) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(static overrides file, system overrides, user overrides) of a duplex system whose
    operator gave TrustedCACert in base64, as the upstream application took it."""
    user = {
        "TrustedCACert": base64.b64encode(cas["operator"].cert_pem).decode(),
        "webHooks": {"excludedNamespaces": ["sandbox"]},
        "pinnedTrustRoots": [{"server": "https://notary.example.com:4443", "keyID": "ab" * 32}],
    }
    facts = overrides.PlatformFacts(
        replicas=2,
        simplex=False,
        trusted_ca_certs=(("ssl_ca harbor", cas["harbor-ca"].cert_pem.decode()),),
        platform_ca_certs=(("system-local-ca", cas["system-local-ca"].cert_pem.decode()),),
        platform_issuer=True,
        cert_manager=True,
        platform_namespaces=("cert-manager", "flux-helm", "kube-system", "vault"),
        user_overrides=user,
    )
    return STATIC_OVERRIDES, overrides.system_overrides(facts), user


def test_starlingx_overrides_render_as_fluxcd_merges_them(cas: dict[str, TestCA]) -> None:
    static, system, user = starlingx_layers(cas)
    docs = docs_of(render_all(static, system, user))
    spec = pod_spec(docs)
    assert container(docs)["image"] == (
        "registry.local:9001/docker.io/starlingx/stx-portieris-webhook:0.1.0"
    )
    assert spec["imagePullSecrets"] == [{"name": "default-registry-key"}]
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert {t["key"] for t in spec["tolerations"]} == {
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/control-plane",
    }
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    reference = one(docs, "Certificate", "portieris-certs")["spec"]["issuerRef"]
    assert reference == {"kind": "ClusterIssuer", "name": "system-local-ca"}
    # The platform's bundle (which holds the operator's base64 TrustedCACert, decoded) is used.
    bundle = trusted_ca(docs)
    for name in cas:
        assert cas[name].cert_pem.decode().strip() in bundle
    assert "-----BEGIN CERTIFICATE-----" in bundle and user["TrustedCACert"] not in bundle
    assert excluded(docs) == [NS, "sandbox", "cert-manager", "flux-helm", "kube-system", "vault"]
    assert webhook(docs)["failurePolicy"] == "Fail"
    assert arg_values(docs, "pinned-trust-root") == [f"https://notary.example.com:4443={'ab' * 32}"]


def test_starlingx_reapply_trigger_is_taken(cas: dict[str, TestCA]) -> None:
    """sysinv's re-apply and update patch the HelmRelease's spec.values with reconcile_trigger
    (sysinv.helm.utils.call_fluxcd_reconciliation), which helm-controller merges over the
    valuesFrom Secrets: the schema must take it, or the release would fail to upgrade."""
    static, system, user = starlingx_layers(cas)
    with_trigger = docs_of(render_all(static, system, user, {"reconcile_trigger": 1767225600}))
    without = docs_of(render_all(static, system, user))
    strip = [d for d in with_trigger if d["kind"] != "Secret"]
    assert strip == [d for d in without if d["kind"] != "Secret"]


def test_starlingx_user_overrides_without_platform_values_render(cas: dict[str, TestCA]) -> None:
    # The operator's overrides alone (no plugin, e.g. the chart checked on its own): the
    # base64 TrustedCACert is decoded by the chart itself.
    _, _, user = starlingx_layers(cas)
    docs = docs_of(render_all(STATIC_OVERRIDES, user))
    assert trusted_ca(docs).strip() == cas["operator"].cert_pem.decode().strip()


UPSTREAM_STARLINGX_VALUES: dict[str, Any] = {
    # The upstream application's static overrides, over IBM's chart (v0.13.28).
    "replicaCount": 3,
    "namespace": "portieris",
    "images": {"tags": {"portieris": "icr.io/portieris/portieris:v0.13.28"}},
    "image": {
        "host": "registry.local:9001/icr.io/portieris",
        "pullSecret": "default-registry-key",
        "image": "portieris",
        "tag": "v0.13.28",
    },
    "livenessProbe": {"initialDelaySeconds": 17, "periodSeconds": 19, "timeoutSeconds": 11},
    "readinessProbe": {"initialDelaySeconds": 17, "periodSeconds": 19, "timeoutSeconds": 11},
    "SkipSecretCreation": False,
    "UseCertManager": True,
    # Its lifecycle's bookkeeping, in the user overrides.
    "PostUpgradePolicy": "~",
    "ReapplyAdmissionWebhook": False,
}


def test_the_upstream_starlingx_applications_values_are_refused_each_with_advice() -> None:
    error = render_error(UPSTREAM_STARLINGX_VALUES)
    for advice in (
        "image.host and image.image",
        "images is the upstream StarlingX application's image list",
        "namespace: remove it",
        "livenessProbe: remove it",
        "readinessProbe: remove it",
        "PostUpgradePolicy is the upstream",
        "ReapplyAdmissionWebhook is the upstream",
    ):
        assert advice in error
    assert "SkipSecretCreation" not in error  # false means what this chart does
