"""The real-component fixtures work: registry, notary-server, GnuPG, lookaside, skopeo oracle."""

from __future__ import annotations

import hashlib
import ssl
import urllib.request

import pytest

from tests.fixtures.gpg import policy_for, signed_by_requirement
from tests.fixtures.notary import RELEASES, make_delegation_key

pytestmark = pytest.mark.integration


def test_pushed_image_digest_reads_back_with_skopeo_inspect(registry, image_factory):
    image = image_factory("v1")

    assert registry.digest_of(image.ref) == image.digest
    assert (
        image.digest == "sha256:" + hashlib.sha256(registry.manifest_bytes(image.ref)).hexdigest()
    )


def test_image_seed_decides_the_digest(image_factory):
    a, a_again, b = image_factory(seed="a"), image_factory(seed="a"), image_factory(seed="b")

    assert a.digest == a_again.digest != b.digest


def test_registry_serves_tls_from_the_test_ca(registry):
    context = ssl.create_default_context(cafile=str(registry.ca_file))
    with urllib.request.urlopen(f"{registry.url}/v2/", context=context) as resp:
        assert resp.status == 200


def test_notary_lists_a_tag_signed_in_a_delegation(notary_server, notary_signer, image_factory):
    image = image_factory("v1")
    gun = image.name

    key = notary_signer.sign(
        gun, image.tag, image.size, image.hex
    )  # init, key import, delegation, addhash, publish

    targets = notary_signer.list(gun)
    assert [(t.name, t.digest, t.size, t.role) for t in targets] == [
        (image.tag, image.digest, image.size, RELEASES)
    ]
    delegations = notary_server.fetch_json(gun, "targets")["signed"]["delegations"]
    assert [r["name"] for r in delegations["roles"]] == [RELEASES]
    assert key is not None and any(
        k["keytype"] == "ecdsa-x509" for k in delegations["keys"].values()
    )


def test_notary_signer_steps_compose(notary_signer, image_factory):
    image = image_factory("v2")
    key = make_delegation_key("alice")

    notary_signer.init(image.name, publish=False)
    notary_signer.import_delegation_key(key.key_pem, "targets/alice")
    notary_signer.add_delegation(image.name, "targets/alice", key.cert_pem, paths=["v"])
    notary_signer.add_hash(image.name, image.tag, image.size, image.hex, roles=["targets/alice"])
    notary_signer.publish(image.name)

    assert [(t.name, t.digest, t.role) for t in notary_signer.list(image.name)] == [
        (image.tag, image.digest, "targets/alice")
    ]


def test_sign_by_writes_signature_1_served_over_http(
    simple_signer, lookaside_store, gpg_key, image_factory
):
    image = image_factory("v1")

    path = simple_signer.sign(image, gpg_key("alice").fingerprint)

    assert path == lookaside_store.dir / f"{image.repo}@sha256={image.hex}" / "signature-1"
    with urllib.request.urlopen(lookaside_store.signature_url(image.repo, image.digest)) as resp:
        assert resp.read() == path.read_bytes()


def test_skopeo_policy_accepts_the_signing_key_and_rejects_another(
    simple_signer, skopeo_verdict, gpg_key, image_factory, registry
):
    image = image_factory("v1")
    simple_signer.sign(image, gpg_key("alice").fingerprint)

    def signed_by(name):
        return policy_for(registry.host, [signed_by_requirement(gpg_key(name).public_armored)])

    assert skopeo_verdict(signed_by("alice"), image.ref) is True
    assert skopeo_verdict(signed_by("bob"), image.ref) is False


def test_skopeo_policy_rejects_an_unsigned_image(skopeo_verdict, gpg_key, image_factory, registry):
    image = image_factory("v1")
    policy = policy_for(registry.host, [signed_by_requirement(gpg_key("alice").public_armored)])

    assert skopeo_verdict(policy, image.ref) is False


def test_registry_with_auth_takes_its_credentials(auth_registry):
    image = auth_registry.push_image("team/private", "v1")

    assert auth_registry.digest_of(image.ref) == image.digest
