"""The webhook over real HTTPS: answers, bad bodies, health, metrics, TLS floor, certificate reload."""

import asyncio
import gzip
import json
import socket
import ssl
import zlib
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from portieris_webhook.cluster.state import ADDED
from portieris_webhook.errors import InvalidAdmissionReview

from tests.builders import ACCEPT, cluster_policy, pod_spec, review, workload
from tests.fixtures.pki import TestCA
from tests.fixtures.webhook import MAX_BODY, get, post, serving


@pytest.fixture
async def served(tmp_path):
    async with serving(tmp_path) as served:
        yield served


async def test_admit_answers_with_an_admission_review(served):
    allowed = review(workload("Pod", pod_spec("allowed/app:1")), uid="u-allow")
    status, body = await post(served, json.dumps(allowed), **{"Content-Type": "application/json"})
    assert status == 200 and body["response"] == {"uid": "u-allow", "allowed": True}
    denied = review(workload("Pod", pod_spec("other/app:1")), uid="u-deny")
    status, body = await post(served, json.dumps(denied))
    assert status == 200 and body["response"]["allowed"] is False
    assert body["response"]["uid"] == "u-deny"
    assert "image other/app:1" in body["response"]["status"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not JSON"),
        (b"", "request body is not JSON"),
        (b"\xff\xfe", "request body is not JSON"),
        (json.dumps({"kind": "AdmissionReview"}).encode(), "expected apiVersion"),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "x"},
                }
            ).encode(),
            "request.kind must be an object",
        ),
        (b"[" + b"1," * MAX_BODY + b"1]", f"larger than {MAX_BODY} bytes"),
    ],
    ids=["broken-json", "empty", "not-utf8", "not-a-review", "no-kind", "too-large"],
)
async def test_bad_bodies_get_400_with_a_message(served, body, message):
    status, answer = await post(served, body)
    assert status == 400 and message in answer["error"]


def padded(document, size):
    """`document` as JSON, padded with trailing whitespace to exactly `size` bytes."""
    body = json.dumps(document).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def large_pod_review(size):
    """A valid review of an allowed pod whose environment makes it `size` bytes long."""
    spec = pod_spec("allowed/app:1")
    spec["containers"][0]["env"] = [
        {"name": f"VAR_{i}", "value": "v" * 100} for i in range(size // 150)
    ]
    return padded(review(workload("Pod", spec), uid="u-large"), size)


async def chunked(body, size=16 * 1024):
    for start in range(0, len(body), size):
        yield body[start : start + size]
        await asyncio.sleep(0)


@pytest.mark.parametrize("size", [20_000, 300_000, 1_000_000, 3 * 1024 * 1024])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_large_valid_reviews_are_read_whole(tmp_path, size, framing):
    body = large_pod_review(size)
    async with serving(tmp_path, max_body=3 * 1024 * 1024) as served:
        status, answer = await post(served, body if framing == "content-length" else chunked(body))
    assert status == 200, answer
    assert answer["response"] == {"uid": "u-large", "allowed": True}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(served, framing):
    def send(body):
        return body if framing == "content-length" else chunked(body, 1000)

    at_limit = padded(review(workload("Pod", pod_spec("allowed/a")), uid="u-limit"), MAX_BODY)
    status, answer = await post(served, send(at_limit))
    assert status == 200 and answer["response"]["uid"] == "u-limit"
    status, answer = await post(served, send(at_limit + b" "))
    assert status == 400 and f"larger than {MAX_BODY} bytes" in answer["error"]


@pytest.mark.parametrize(
    "operation", ["create", "PATCH", "update", "GET", "CREATE\n", "DELETE ", "connect"]
)
async def test_an_unknown_operation_gets_400(served, operation):
    body = review(workload("Pod", pod_spec("other/app:1")), operation=operation)
    status, answer = await post(served, json.dumps(body))
    assert status == 400 and "request.operation" in answer["error"]


def nested(depth, opening=b"[", closing=b"]"):
    return opening * depth + closing * depth


@pytest.mark.parametrize(
    "body",
    [
        nested(30_000),
        nested(10_000, b'{"a":', b"}").replace(b"}", b"", 1) + b"1}",
        json.dumps(review(workload("Pod", pod_spec("allowed/a"))))
        .replace('"name": "c0"', '"name": ' + "[" * 25_000 + "]" * 25_000)
        .encode(),
    ],
    ids=["arrays", "objects", "inside-a-review"],
)
async def test_deeply_nested_json_gets_400_not_500(served, body):
    assert len(body) <= MAX_BODY
    status, answer = await post(served, body)
    assert status == 400 and "nested deeper than 100 levels" in answer["error"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_compressed_body_is_refused(served, encoding):
    body = json.dumps(review(workload("Pod", pod_spec("allowed/a"))))
    data = gzip.compress(body.encode()) if encoding == "gzip" else zlib.compress(body.encode())
    status, answer = await post(served, data, **{"Content-Encoding": encoding})
    assert status == 400 and "Content-Encoding" in answer["error"]


async def test_an_invalid_review_found_while_deciding_gets_400(served, monkeypatch):
    async def malformed(_request):
        raise InvalidAdmissionReview("spec.imagePullSecrets must be a list")

    monkeypatch.setattr(served.enforcer, "decide", malformed)
    status, answer = await post(
        served, json.dumps(review(workload("Pod", pod_spec("allowed/a")), uid="u-x"))
    )
    assert status == 400
    assert answer["error"] == "malformed AdmissionReview: spec.imagePullSecrets must be a list"


async def test_oversized_body_without_content_length_is_refused(served):
    async def chunks():
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    status, answer = await post(served, chunks())
    assert status == 400 and "larger than" in answer["error"]


async def test_health_endpoints_follow_policy_loading(served):
    assert (await get(served, f"{served.url}/health/liveness"))[0] == 200
    assert (await get(served, f"{served.url}/health/readiness"))[0] == 200
    served.state.mark_ready(False)
    status, text = await get(served, f"{served.url}/health/readiness")
    assert status == 503 and "not loaded" in text


async def test_metrics_count_decisions_with_portieris_names(served):
    await post(served, json.dumps(review(workload("Pod", pod_spec("allowed/a")))))
    await post(served, json.dumps(review(workload("Pod", pod_spec("bad/a")))))
    await post(served, json.dumps(review(workload("Pod", pod_spec("bad/b")))))
    await post(served, b"nope")
    status, text = await get(served, f"{served.metrics_url}/metrics")
    assert status == 200
    lines = text.splitlines()
    assert "portieris_pod_admission_decision_allow_count 1.0" in lines
    assert "portieris_pod_admission_decision_deny_count 2.0" in lines
    assert 'portieris_admission_deny_reasons_total{reason="verification"} 2.0' in lines
    assert 'portieris_admission_duration_seconds_count{result="deny"} 2.0' in lines
    assert "portieris_admission_bad_requests_total 1.0" in lines


async def test_metrics_count_decision_cache_hits_and_misses(served):
    served.state.apply(ADDED, cluster_policy("accept", ("accepted/*", ACCEPT)))
    for _ in range(3):
        await post(served, json.dumps(review(workload("Pod", pod_spec("accepted/a")))))
    await post(served, json.dumps(review(workload("Pod", pod_spec("bad/a")))))
    _status, text = await get(served, f"{served.metrics_url}/metrics")
    lines = text.splitlines()
    assert "portieris_decision_cache_hits_total 2.0" in lines
    assert "portieris_decision_cache_misses_total 2.0" in lines  # the first accept, the deny
    assert "portieris_decision_cache_entries 1.0" in lines


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
async def test_tls_below_1_2_is_refused(served):
    assert served.tls.context.minimum_version is ssl.TLSVersion.TLSv1_2
    old = served.client_context(maximum_version=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    connector = aiohttp.TCPConnector(ssl=old)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{served.url}/health/liveness"):
                pass


def _peer_serial(served):
    host, port = served.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        with served.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


async def test_rotated_certificate_is_served_without_restart(served):
    before = await asyncio.to_thread(_peer_serial, served)
    ca = TestCA.create("rotated CA")
    new_cert, new_key = ca.issue()
    # Write the key first, then the certificate, as a rotation would; the reloader must
    # keep serving the old pair while the two files do not match yet.
    Path(served.tls.key_file).write_bytes(new_key)
    served.tls.reload_if_changed()
    assert await asyncio.to_thread(_peer_serial, served) == before
    Path(served.tls.cert_file).write_bytes(new_cert)
    Path(served.ca_file).write_bytes(served.ca_file.read_bytes() + ca.cert_pem)
    for _ in range(100):
        if served.tls.reloads:
            break
        await asyncio.sleep(0.05)
    after = await asyncio.to_thread(_peer_serial, served)
    assert served.tls.reloads == 1 and after != before


async def test_an_internal_error_is_a_readable_deny_not_a_500(served, monkeypatch):
    async def explode(_request):
        raise RuntimeError("cache exploded")

    monkeypatch.setattr(served.enforcer, "decide", explode)
    status, body = await post(
        served, json.dumps(review(workload("Pod", pod_spec("allowed/a")), uid="u-x"))
    )
    assert status == 200 and body["response"]["allowed"] is False
    assert body["response"]["uid"] == "u-x"
    assert "internal error: RuntimeError('cache exploded')" in body["response"]["status"]["message"]


async def test_each_endpoint_answers_its_method_only_and_other_paths_are_not_found(served):
    """The listener's own small router: what aiohttp's router answered before."""
    body = json.dumps(review(workload("Pod", pod_spec("allowed/app:1")), uid="u-q"))
    connector = aiohttp.TCPConnector(ssl=served.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        # kube-apiserver calls webhooks with a query (?timeout=10s): the path alone routes.
        async with session.post(f"{served.url}/admit?timeout=10s", data=body) as resp:
            assert resp.status == 200 and (await resp.json())["response"]["allowed"] is True
        async with session.get(f"{served.url}/admit") as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "POST"
        async with session.post(f"{served.url}/health/liveness", data=b"") as resp:
            assert resp.status == 405 and set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
        async with session.head(f"{served.url}/health/readiness") as resp:
            assert resp.status == 200
        for path in ("/", "/admit/", "/metrics", "/health"):
            async with session.get(f"{served.url}{path}") as resp:
                assert resp.status == 404, path
        async with session.get(f"{served.metrics_url}/metrics") as resp:
            assert resp.status == 200 and "portieris_pod_admission_decision_allow_count" in (
                await resp.text()
            )
        async with session.get(f"{served.metrics_url}/admit") as resp:
            assert resp.status == 404
