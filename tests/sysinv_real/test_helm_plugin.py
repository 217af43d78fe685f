"""The helm plugin from the tarball, loaded and asked for overrides by sysinv's HelmOperator."""

from __future__ import annotations

import base64
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sysinv.common import exception
from sysinv.conductor import kube_app
from sysinv.helm import helm
from sysinv.tests.db import base as dbbase

from tests.fixtures.pki import TestCA
from tests.sysinv_real.platform import APP, NS, PortierisPlatform, apply

SIGSTORE_TRUST_ROOTS = "portieris-sigstore-trust-roots"


def ca_bundle(overrides: dict[str, Any]) -> str:
    return str(overrides["platform"]["trustedCACerts"])


def pem(ca: TestCA) -> str:
    return ca.cert_pem.decode().strip()


class SimplexSystem(PortierisPlatform, dbbase.AIOSimplexHostTestCase):
    def test_one_replica(self) -> None:
        self.assertOverridesParameters(self.system_overrides(), {"replicaCount": 1})

    def test_plugin_is_the_one_from_the_tarball(self) -> None:
        self.applied()
        chart_op = self.operator.get_chart_operator(APP, app_name=APP)
        module = sys.modules[type(chart_op).__module__]
        sync_plugins_dir = kube_app.AppOperator.Application(self.rpc_app).sync_plugins_dir
        self.assertEqual(type(chart_op).__name__, "PortierisHelm")
        self.assertTrue(module.__file__.startswith(sync_plugins_dir), module.__file__)

    def test_platform_ca_and_its_issuer_from_the_cluster(self) -> None:
        overrides = self.system_overrides()
        issuer = {"kind": "ClusterIssuer", "name": "system-local-ca"}
        self.assertOverridesParameters(
            overrides, {"UseCertManager": True, "certManagerIssuer": issuer}
        )
        self.assertIn(pem(self.platform_ca), ca_bundle(overrides))

    def test_ssl_ca_certificate_in_the_bundle(self) -> None:
        ca = TestCA.create("Example Root CA")
        self.install_ssl_ca(ca)
        self.assertIn(pem(ca), ca_bundle(self.system_overrides()))

    def test_sigstore_trust_roots_from_the_platform_secret(self) -> None:
        """The operator's Secret kube-system/portieris-sigstore-trust-roots, read through
        sysinv's KubeOperator, becomes sigstore.trustRoots."""
        delete = ("delete", "secret", SIGSTORE_TRUST_ROOTS, "-n", "kube-system")
        self.cluster.kubectl(*delete, "--ignore-not-found")
        self.addCleanup(self.cluster.kubectl, *delete, "--ignore-not-found")
        self.assertEqual(self.system_overrides()["sigstore"], {"trustRoots": {}})
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        rekor = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        apply(
            self.cluster,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SIGSTORE_TRUST_ROOTS, "namespace": "kube-system"},
                "stringData": {"rekor": rekor},
            },
        )
        self.assertEqual(self.system_overrides()["sigstore"], {"trustRoots": {"rekor": rekor}})

    def test_other_namespace_refused(self) -> None:
        self.assertRaises(
            exception.InvalidHelmNamespace,
            self.conductor.get_helm_chart_overrides,
            self.context,
            APP,
            APP,
            cnamespace="kube-system",
        )

    def test_restarted_conductor_discovers_the_plugin(self) -> None:
        self.applied()
        operator = helm.HelmOperator(self.dbapi)  # a new HelmOperator: entry points on the path
        self.assertEqual(operator.get_helm_application_namespaces(APP), {APP: [NS]})
        notary = TestCA.create("Notary CA")
        self.set_user_overrides({"TrustedCACert": base64.b64encode(notary.cert_pem).decode()})
        overrides = operator.get_helm_chart_overrides(APP, cnamespace=NS)
        self.assertEqual(overrides["replicaCount"], 1)
        self.assertIn(pem(notary), ca_bundle(overrides))


class ProvisionedDuplexSystem(PortierisPlatform, dbbase.ProvisionedAIODuplexSystemTestCase):
    def test_two_replicas(self) -> None:
        self.assertOverridesParameters(self.system_overrides(), {"replicaCount": 2})
