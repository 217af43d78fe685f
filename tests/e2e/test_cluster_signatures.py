"""End to end with real signatures: notary trust and simple signing, through kubectl and the API server."""

from __future__ import annotations

import pytest

from .conftest import Cluster
from .test_cluster_admission import eventually, k8s_workload, set_policy
from tests.builders import key_secret
from tests.fixtures.notary import make_delegation_key
from tests.fixtures.trust_helpers import signer_secret

pytestmark = pytest.mark.e2e


def stored_image(cluster: Cluster, kind: str, name: str = "demo") -> str:
    obj = cluster.get(kind, name)
    spec = obj["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    if kind != "Pod":
        spec = spec["template"]["spec"]
    return str(spec["containers"][0]["image"])


@pytest.fixture
def notary_signed(image_factory, notary_signer):
    image = image_factory("v1")
    notary_signer.sign(image.name, image.tag, image.size, image.hex)
    return image


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_notary_signed_workload_is_stored_pinned_to_the_signed_digest(
    cluster: Cluster, notary_signed, notary_server, kind: str
) -> None:
    set_policy(
        cluster,
        (f"{notary_signed.host}/*", {"trust": {"enabled": True, "trustServer": notary_server.url}}),
    )
    assert eventually(lambda: cluster.create(k8s_workload(kind, notary_signed.ref)).returncode == 0)
    assert stored_image(cluster, kind) == f"{notary_signed.name}@{notary_signed.digest}"


def test_unsigned_tag_is_denied_with_the_reason(
    cluster: Cluster, image_factory, notary_signer, notary_server
) -> None:
    signed = image_factory("v1")
    notary_signer.sign(signed.name, signed.tag, signed.size, signed.hex)
    unsigned = image_factory("v2", repo=signed.repo)
    set_policy(
        cluster,
        (f"{signed.host}/*", {"trust": {"enabled": True, "trustServer": notary_server.url}}),
    )
    assert eventually(
        lambda: cluster.create(k8s_workload("Pod", signed.ref, name="ok")).returncode == 0
    )
    result = cluster.create(k8s_workload("Pod", unsigned.ref))
    assert result.returncode != 0
    assert f"image {unsigned.ref}: trust:" in result.stderr and "v2" in result.stderr


def test_required_signer_that_did_not_sign_is_named(
    cluster: Cluster, notary_signed, notary_server
) -> None:
    other = make_delegation_key("bob")
    cluster.apply(
        signer_secret("bob", "bob", other.public_key_pem, namespace=cluster.namespace)
    ).check_returncode()
    trust = {"enabled": True, "trustServer": notary_server.url, "signerSecrets": [{"name": "bob"}]}
    set_policy(cluster, (f"{notary_signed.host}/*", {"trust": trust}))
    assert eventually(
        lambda: "bob" in cluster.create(k8s_workload("Pod", notary_signed.ref)).stderr
    )


def test_simple_signed_pod_is_stored_pinned_and_a_foreign_key_is_refused(
    cluster: Cluster, image_factory, simple_signer, gpg_key, lookaside_store
) -> None:
    alice, mallory = gpg_key("e2e-alice"), gpg_key("e2e-mallory")
    good = image_factory("v1")
    simple_signer.sign(good, alice.fingerprint)
    forged = image_factory("v1")
    simple_signer.sign(forged, mallory.fingerprint)
    cluster.apply(key_secret("alice", alice.public_armored, namespace=None)).check_returncode()
    requirement = {"type": "signedBy", "keySecret": "alice"}
    set_policy(
        cluster,
        (
            f"{good.host}/*",
            {"simple": {"requirements": [requirement], "storeURL": lookaside_store.url}},
        ),
    )
    assert eventually(lambda: cluster.create(k8s_workload("Pod", good.ref)).returncode == 0)
    assert stored_image(cluster, "Pod") == f"{good.name}@{good.digest}"
    result = cluster.create(k8s_workload("Pod", forged.ref, name="forged"))
    assert result.returncode != 0 and f"image {forged.ref}: simple:" in result.stderr
