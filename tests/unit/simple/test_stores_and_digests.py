"""Signature store addressing, extension API answers, and manifest digest checks (pure parts)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from portieris_webhook.errors import RemoteError
from portieris_webhook.images import parse_image
from portieris_webhook.registry.client import (
    ResolvedManifest,
    api_base,
    digest_of_body,
    manifest_url,
)
from portieris_webhook.registry.credentials import RegistryCredential
from portieris_webhook.simple.stores import (
    LookasideStore,
    RegistryExtensionStore,
    StoreCredentials,
    parse_signature_list,
)

HEX = "ab" * 32
DIGEST = f"sha256:{HEX}"


def test_lookaside_urls_use_the_repository_path_without_the_host() -> None:
    store = LookasideStore(None, "https://sigs.example/store/")  # type: ignore[arg-type]
    image = parse_image("registry.local:5000/team/app:v1")
    assert store.signature_url(image, DIGEST, 3) == (
        f"https://sigs.example/store/team/app@sha256={HEX}/signature-3"
    )


def test_docker_hub_images_are_addressed_by_their_normalised_path() -> None:
    store = LookasideStore(None, "http://s")  # type: ignore[arg-type]
    assert store.signature_url(parse_image("nginx"), DIGEST, 1) == (
        f"http://s/library/nginx@sha256={HEX}/signature-1"
    )
    assert api_base("docker.io") == "https://registry-1.docker.io"


def test_extension_api_and_manifest_urls() -> None:
    image = parse_image("registry.local:5000/team/app:v1")
    assert RegistryExtensionStore.signatures_url(image, DIGEST) == (
        f"https://registry.local:5000/extensions/v2/team/app/signatures/{DIGEST}"
    )
    assert manifest_url(image, "v1") == "https://registry.local:5000/v2/team/app/manifests/v1"


def entry(content: bytes, version: object = 2, kind: object = "atomic") -> dict[str, object]:
    return {
        "version": version,
        "type": kind,
        "name": f"{DIGEST}@sig",
        "content": base64.b64encode(content).decode(),
    }


def test_the_extension_api_list_keeps_version_2_atomic_signatures_only() -> None:
    body = json.dumps(
        {
            "signatures": [
                entry(b"one"),
                entry(b"old", version=1),
                entry(b"cosign", kind="sigstore"),
                entry(b"two"),
            ]
        }
    ).encode()
    assert parse_signature_list(body, "u") == [b"one", b"two"]


@pytest.mark.parametrize("body", [b"{}", b'{"signatures": null}'])
def test_an_extension_api_answer_without_signatures_is_an_empty_list(body: bytes) -> None:
    assert parse_signature_list(body, "u") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b'{"signatures": {}}', "not a list"),
        (b'{"signatures": [1]}', "not an object"),
        (b'{"signatures": [{"version": 2, "type": "atomic", "content": "%%%"}]}', "not base64"),
    ],
)
def test_a_malformed_extension_api_answer_is_an_error(body: bytes, message: str) -> None:
    with pytest.raises(RemoteError, match=message):
        parse_signature_list(body, "u")


def test_the_digest_of_a_body_is_its_sha256_and_a_matching_header_is_fine() -> None:
    body = b'{"schemaVersion": 2}'
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert digest_of_body(body, None, "x") == digest
    assert digest_of_body(body, digest, "x") == digest
    sha512 = "sha512:" + hashlib.sha512(body).hexdigest()
    assert digest_of_body(body, sha512, "x") == digest


@pytest.mark.parametrize("header", [DIGEST, "md5:00", "sha256:zz"])
def test_a_docker_content_digest_that_does_not_name_the_body_is_an_error(header: str) -> None:
    with pytest.raises(RemoteError, match="bytes it served are"):
        digest_of_body(b"{}", header, "x")


def test_a_resolved_manifest_matches_its_digest_in_any_supported_algorithm() -> None:
    body = b"manifest"
    manifest = ResolvedManifest("sha256:" + hashlib.sha256(body).hexdigest(), "m", body)
    assert manifest.matches(manifest.digest)
    assert manifest.matches("sha512:" + hashlib.sha512(body).hexdigest())
    assert not manifest.matches(DIGEST)
    assert not manifest.matches("md5:" + hashlib.md5(body).hexdigest())
    assert not ResolvedManifest(DIGEST, "m").matches("sha512:" + "0" * 128)


def test_a_store_answer_is_keyed_by_store_repository_digest_and_credentials() -> None:
    image = parse_image("registry.local:5000/team/app:v1")
    other_repo = parse_image("registry.local:5000/team/other:v1")
    reader = StoreCredentials("reader", "s3cret")

    def key(url: str, creds: StoreCredentials | None, img=image, digest=DIGEST):
        return LookasideStore(None, url, creds).answer_key(img, digest)  # type: ignore[arg-type]

    base = key("https://sigs.example", reader)
    assert base == key("https://sigs.example/", StoreCredentials("reader", "s3cret"))
    assert all(
        base != other
        for other in (
            key("https://other.example", reader),
            key("https://sigs.example", StoreCredentials("reader", "other")),
            key("https://sigs.example", None),
            key("https://sigs.example", reader, img=other_repo),
            key("https://sigs.example", reader, digest="sha256:" + "cd" * 32),
        )
    )
    assert "s3cret" not in repr(base)


def test_an_extension_api_answer_is_keyed_by_url_and_pull_credentials() -> None:
    image = parse_image("registry.local:5000/team/app:v1")
    alice = RegistryCredential("registry.local:5000", "alice", "pw", "Secret apps/a")
    same = RegistryCredential("registry.local:5000", "alice", "pw", "Secret other/b")
    mallory = RegistryCredential("registry.local:5000", "alice", "guess", "Secret apps/m")

    def key(*creds: RegistryCredential) -> tuple[str, str]:
        return RegistryExtensionStore(None, creds).answer_key(image, DIGEST)  # type: ignore[arg-type]

    assert key(alice) == key(same)  # the same credentials, whichever secret holds them
    assert key(alice) != key(mallory)
    assert key(alice) != key()
    assert key(alice)[0] == RegistryExtensionStore.signatures_url(image, DIGEST)
