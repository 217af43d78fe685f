"""The webhook over real HTTPS: answers, bad bodies, health, metrics, TLS floor, certificate reload."""

import asyncio
import json
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from portieris_webhook.enforce import Enforcer
from portieris_webhook.http import HttpClient
from portieris_webhook.metrics import Metrics
from portieris_webhook.server import WebhookApp, running
from portieris_webhook.settings import Settings
from portieris_webhook.simple.verifier import SimpleVerifier
from portieris_webhook.state import MemoryState
from portieris_webhook.tls import ReloadingTLS
from portieris_webhook.verifiers import VerifierContext

from tests.builders import REJECT, cluster_policy, pod_spec, review, workload
from tests.fixtures.pki import TestCA
from tests.fixtures.procs import free_port

MAX_BODY = 64 * 1024


class Served:
    def __init__(self, url, metrics_url, tls, state, ca_file, cert_dir, enforcer):
        self.url, self.metrics_url, self.tls, self.state = url, metrics_url, tls, state
        self.enforcer = enforcer
        self.ca_file, self.cert_dir = ca_file, cert_dir

    def client_context(self, **limits):
        context = ssl.create_default_context(cafile=str(self.ca_file))
        for name, value in limits.items():
            setattr(context, name, value)
        return context


@pytest.fixture
async def served(tmp_path):
    ca = TestCA.create()
    ca_file = ca.write(tmp_path)
    cert, key = ca.write_leaf(tmp_path, "serving")
    state = MemoryState()
    state.put_policy(cluster_policy("c", ("allowed/*", {}), ("*", REJECT)))
    state.mark_ready()
    settings = Settings()
    context = VerifierContext(settings, state, HttpClient(None))
    enforcer = Enforcer(state, {"simple": SimpleVerifier(context)}, settings)
    webhook = WebhookApp(enforcer, state, Metrics(), MAX_BODY)
    tls = ReloadingTLS(str(cert), str(key))
    port, metrics_port = free_port(), free_port()
    async with running(webhook, tls, "127.0.0.1", port, metrics_port, 0.05):
        yield Served(
            f"https://127.0.0.1:{port}",
            f"http://127.0.0.1:{metrics_port}",
            tls,
            state,
            ca_file,
            tmp_path,
            enforcer,
        )


async def post(served, body, **headers):
    connector = aiohttp.TCPConnector(ssl=served.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"{served.url}/admit", data=body, headers=headers) as resp:
            return resp.status, await resp.json()


async def get(served, url):
    connector = aiohttp.TCPConnector(ssl=served.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as resp:
            return resp.status, await resp.text()


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
