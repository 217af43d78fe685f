"""What a hostile registry or signature store can make the webhook read is bounded.

Per answer (a manifest at distribution's 4 MiB limit, a signature, a signature list, a
token; error bodies are hardly read at all), per image (ReadBudget) and per admission
request, with a deny that names the limit and the server. Normal images from the real
docker-registry fit within every limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from portieris_webhook.errors import RemoteError, VerificationError
from portieris_webhook.images import parse_image
from portieris_webhook.registry import auth as auth_module
from portieris_webhook.registry.auth import MAX_TOKEN_BYTES, AuthenticatedClient
from portieris_webhook.registry.client import MAX_MANIFEST_BYTES, RegistryClient
from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.remote.outbound import IMAGE_READ_BYTES, REQUEST_READ_BYTES, ReadBudget
from portieris_webhook.simple.stores import (
    MAX_SIGNATURE_BYTES,
    MAX_SIGNATURE_LIST_BYTES,
    MAX_SIGNATURES,
)

from tests.builders import memory_state, pod_request
from tests.fixtures.hostile import routes_app, stream
from tests.fixtures.simple_helpers import (
    NAMESPACE,
    ExtensionRegistry,
    alice_secret,
    decide_with_policy,
    extension_entry,
    policy_under_test,
    pull_secret,
    serve,
    server_ssl_context,
    signed_by,
    simple_enforcer,
)

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def tls_serve(test_ca, tmp_path):
    """`async with tls_serve(app) as host`: `app` over TLS with a test-CA certificate."""

    def start(app: web.Application):
        return serve(app, server_ssl_context(test_ca, tmp_path))

    return start


@pytest.fixture
async def client(test_ca_file) -> AsyncIterator[RegistryClient]:
    http = HttpClient(str(test_ca_file))
    try:
        yield RegistryClient(AuthenticatedClient(http))
    finally:
        await http.close()


def manifest_route(size: int | None, *, declare_length: bool = True, status: int = 200):
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(
            request, size, content_type=OCI_MANIFEST, declare_length=declare_length, status=status
        )

    return {"/v2/{repo:.+}/manifests/{ref}": handler}


# --- the registry client -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "declare_length"),
    [(MAX_MANIFEST_BYTES + 1, True), (MAX_MANIFEST_BYTES + 1, False), (None, False)],
    ids=["declared", "one-byte-over", "endless"],
)
async def test_a_manifest_over_the_limit_is_refused_naming_the_limit_and_the_registry(
    client, tls_serve, size, declare_length
) -> None:
    async with tls_serve(routes_app(manifest_route(size, declare_length=declare_length))) as host:
        with pytest.raises(RemoteError) as raised:
            await client.resolve(parse_image(f"{host}/team/app:v1"), timeout=30)
    assert str(raised.value).startswith(f"{host} (GET https://{host}/v2/team/app/manifests/v1)")
    assert f"larger than {MAX_MANIFEST_BYTES} bytes, the most portieris reads" in str(raised.value)


async def test_a_manifest_at_the_limit_is_read(client, tls_serve) -> None:
    async with tls_serve(routes_app(manifest_route(MAX_MANIFEST_BYTES))) as host:
        resolved = await client.resolve(parse_image(f"{host}/team/app:v1"), timeout=30)
    assert resolved.body == b"x" * MAX_MANIFEST_BYTES


async def test_an_error_answer_is_judged_by_its_status_without_reading_its_body(
    client, tls_serve
) -> None:
    async with tls_serve(routes_app(manifest_route(None, status=404))) as host:
        with pytest.raises(VerificationError, match="the registry has no such manifest"):
            await client.resolve(parse_image(f"{host}/team/app:v1"), timeout=30)


async def test_an_oversized_token_answer_is_refused_naming_the_limit_and_the_realm(
    client, tls_serve
) -> None:
    async def manifest(request: web.Request) -> web.Response:
        challenge = f'Bearer realm="https://{request.host}/token",service="s",scope="x"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    async def token(request: web.Request) -> web.StreamResponse:
        return await stream(request, None, content_type="application/json", declare_length=False)

    app = routes_app({"/v2/{repo:.+}/manifests/{ref}": manifest, "/token": token})
    async with tls_serve(app) as host:
        with pytest.raises(RemoteError) as raised:
            await client.resolve(parse_image(f"{host}/team/app:v1"), timeout=30)
    assert str(raised.value).startswith(f"{host} (GET https://{host}/token?")
    assert f"larger than {MAX_TOKEN_BYTES} bytes" in str(raised.value)


async def test_a_real_manifest_is_charged_to_the_images_budget(client, image_factory) -> None:
    image = image_factory("v1")
    budget = ReadBudget(IMAGE_READ_BYTES, f"image {image.ref}")
    resolved = await client.resolve(parse_image(image.ref), timeout=30, budget=budget)
    assert resolved.digest == image.digest
    assert budget.used == len(image.manifest)


async def test_a_budget_too_small_for_a_real_manifest_stops_the_read(client, image_factory) -> None:
    image = image_factory("v1")
    budget = ReadBudget(len(image.manifest) - 1, f"image {image.ref}")
    with pytest.raises(RemoteError) as raised:
        await client.resolve(parse_image(image.ref), timeout=30, budget=budget)
    assert str(raised.value).startswith(f"{image.host} (GET https://{image.host}/v2/")
    assert (
        f"stopped reading at the limit of {len(image.manifest) - 1} bytes that remote servers "
        f"may send for image {image.ref}" in str(raised.value)
    )


# --- one admission request --------------------------------------------------------------


async def test_the_images_of_one_request_share_its_read_budget(
    tls_serve, test_ca_file, alice
) -> None:
    """Five images whose registry serves 4 MiB manifests: 20 MiB, over the request's 16 MiB."""
    count = REQUEST_READ_BYTES // MAX_MANIFEST_BYTES + 1

    async def no_signature(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = routes_app({**manifest_route(MAX_MANIFEST_BYTES), "/sigs/{tail:.*}": no_signature})
    async with tls_serve(app) as host:
        policy = {
            "simple": {"requirements": [signed_by("alice")], "storeURL": f"https://{host}/sigs"}
        }
        state = memory_state(policy_under_test(policy), alice_secret(alice))
        async with simple_enforcer(state, test_ca_file) as enforcer:
            images = [f"{host}/team/app{n}:v1" for n in range(count)]
            decision = await enforcer.decide(pod_request(images, NAMESPACE))
    assert decision.response.allowed is False
    over = [d for d in decision.images if "for one admission request" in " ".join(d.reasons)]
    assert over, decision.response.message
    assert all(
        f"{host} (GET https://{host}/" in reason
        and f"stopped reading at the limit of {REQUEST_READ_BYTES} bytes" in reason
        for d in over
        for reason in d.reasons
    )


# --- lookaside signature stores -----------------------------------------------------------


def store_app(signature: bytes | None, size: int | None = None, until: int | None = None):
    """A lookaside store answering every `signature-N` (N <= `until`, when given) with
    `signature`, or with `size` bytes of junk; 404 past `until`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        index = int(request.match_info["tail"].rpartition("-")[2])
        if until is not None and index > until:
            return web.Response(status=404)
        if signature is not None:
            return web.Response(body=signature)
        return await stream(request, size)

    return routes_app({"/{tail:.*signature-[0-9]+}": handler})


async def test_a_store_with_endless_signatures_is_refused_naming_the_limit_and_the_store(
    registry, image_factory, simple_signer, alice
) -> None:
    image = image_factory("v1")
    valid = simple_signer.sign(image, alice.fingerprint).read_bytes()
    async with serve(store_app(valid)) as host:
        policy = {"simple": {"requirements": [signed_by("alice")], "storeURL": f"http://{host}"}}
        decision = await decide_with_policy(registry, policy, image.ref, alice_secret(alice))
    assert not decision.allowed
    assert (
        f"signature store http://{host} has more than {MAX_SIGNATURES} signatures for "
        f"{image.digest}, the most portieris reads for an image" in decision.reasons[0]
    )


async def test_a_store_with_the_most_signatures_portieris_reads_is_accepted(
    registry, image_factory, simple_signer, alice
) -> None:
    image = image_factory("v1")
    valid = simple_signer.sign(image, alice.fingerprint).read_bytes()
    async with serve(store_app(valid, until=MAX_SIGNATURES)) as host:
        policy = {"simple": {"requirements": [signed_by("alice")], "storeURL": f"http://{host}"}}
        decision = await decide_with_policy(registry, policy, image.ref, alice_secret(alice))
    assert decision.allowed, decision.reasons


@pytest.mark.parametrize("size", [MAX_SIGNATURE_BYTES + 1, None], ids=["one-byte-over", "endless"])
async def test_an_oversized_signature_is_refused_naming_the_limit_and_the_store(
    registry, image_factory, alice, size
) -> None:
    image = image_factory("v1")
    async with serve(store_app(None, size)) as host:
        policy = {"simple": {"requirements": [signed_by("alice")], "storeURL": f"http://{host}"}}
        decision = await decide_with_policy(registry, policy, image.ref, alice_secret(alice))
    assert not decision.allowed
    assert f"simple: {host} (GET http://{host}/" in decision.reasons[0]
    assert f"larger than {MAX_SIGNATURE_BYTES} bytes" in decision.reasons[0]


# --- the registry extension API ---------------------------------------------------------


async def extension_decision(
    registry, test_ca, tmp_path, image, alice, simple_signer, entries: Callable[..., list]
):
    fake = ExtensionRegistry({f"{image.repo}:v1": image.manifest})
    policy = {"simple": {"requirements": [signed_by("alice")]}}
    async with serve(fake.app(), server_ssl_context(test_ca, tmp_path)) as host:
        fake.host = host
        ref = f"{host}/{image.repo}:v1"
        valid = simple_signer.standalone_sign(image.manifest, ref, alice.fingerprint)
        fake.signatures[image.digest] = entries(image.digest, valid)
        objects = (
            alice_secret(alice),
            pull_secret("regcred", host, ExtensionRegistry.USER, ExtensionRegistry.PASSWORD),
        )
        return host, await decide_with_policy(
            registry, policy, ref, *objects, pull_secrets=("regcred",)
        )


async def test_an_extension_api_list_with_too_many_signatures_is_refused(
    registry, test_ca, tmp_path, image_factory, simple_signer, alice
) -> None:
    def entries(digest: str, valid: bytes) -> list[dict[str, Any]]:
        return [extension_entry(digest, f"s{n}", valid) for n in range(MAX_SIGNATURES + 1)]

    image = image_factory("v1")
    host, decision = await extension_decision(
        registry, test_ca, tmp_path, image, alice, simple_signer, entries
    )
    assert not decision.allowed
    assert (
        f"https://{host}/extensions/v2/{image.repo}/signatures/{image.digest}: the signature "
        f"list has more than {MAX_SIGNATURES} signatures" in decision.reasons[0]
    )


async def test_an_extension_api_signature_over_the_limit_is_refused(
    registry, test_ca, tmp_path, image_factory, simple_signer, alice
) -> None:
    def entries(digest: str, valid: bytes) -> list[dict[str, Any]]:
        return [extension_entry(digest, "big", b"\x00" * (MAX_SIGNATURE_BYTES + 1))]

    image = image_factory("v1")
    host, decision = await extension_decision(
        registry, test_ca, tmp_path, image, alice, simple_signer, entries
    )
    assert not decision.allowed
    assert f"signature 1 is larger than {MAX_SIGNATURE_BYTES} bytes" in decision.reasons[0]
    assert f"https://{host}/extensions/v2/" in decision.reasons[0]


async def test_an_extension_api_list_over_the_limit_is_refused(
    registry, test_ca, tmp_path, image_factory, simple_signer, alice
) -> None:
    # One entry too long for the list limit even though each signature would pass.
    padding = "A" * MAX_SIGNATURE_LIST_BYTES

    def entries(digest: str, valid: bytes) -> list[dict[str, Any]]:
        return [{**extension_entry(digest, "alice", valid), "padding": padding}]

    image = image_factory("v1")
    host, decision = await extension_decision(
        registry, test_ca, tmp_path, image, alice, simple_signer, entries
    )
    assert not decision.allowed
    assert f"larger than {MAX_SIGNATURE_LIST_BYTES} bytes" in decision.reasons[0]
    assert f"{host} (GET https://{host}/extensions/v2/" in decision.reasons[0]


async def test_tokens_and_challenges_are_remembered_for_a_bounded_number_of_repositories(
    test_ca_file, tls_serve, monkeypatch
) -> None:
    monkeypatch.setattr(auth_module, "MAX_REMEMBERED", 8)

    async def manifest(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer t":
            scope = f"repository:{request.match_info['repo']}:pull"
            challenge = f'Bearer realm="https://{request.host}/token",service="s",scope="{scope}"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(body=b"{}", content_type=OCI_MANIFEST)

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"token": "t", "expires_in": 300})

    http = HttpClient(str(test_ca_file))
    auth = AuthenticatedClient(http)
    app = routes_app({"/v2/{repo:.+}/manifests/{ref}": manifest, "/token": token})
    try:
        async with tls_serve(app) as host:
            for n in range(30):
                resolved = await RegistryClient(auth).resolve(
                    parse_image(f"{host}/team/app{n}:v1"), timeout=30
                )
                assert resolved.body == b"{}"
    finally:
        await http.close()
    assert len(auth._tokens) == 8
    assert len(auth._remembered) == 8
