"""Connections are bounded in time and number: idle, slow and handshake-less clients are
dropped, their memory is returned, the webhook keeps answering, and the log does not grow
with each dropped connection."""

import asyncio
import gc
import json
import logging
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import aiohttp
import pytest

from portieris_webhook.serving.listener import ACCEPT_OUT_OF_RESOURCES, ConnectionLimits, fd_limited
from portieris_webhook.serving.server import BAD_REQUEST_BURST

from tests.builders import pod_spec, review, workload
from tests.fixtures.pki import TestCA
from tests.fixtures.procs import free_port
from tests.fixtures.webhook import get, metric_samples, post, serving

ROOT = Path(__file__).resolve().parents[2]
SHORT = ConnectionLimits(
    handshake_timeout=4.0, request_read_timeout=4.0, idle_timeout=4.0, max_connections=1000
)
HELD = {"idle": 200, "trickle": 40, "slow-body": 40, "no-handshake": 40, "partial-handshake": 20}
DEADLINE_SLACK = 20.0
"""Generous: a deadline of 4 s must close a connection well within 4 + 20 s."""


async def start_clients(port, ca_file, counts):
    argv = [sys.executable, "-m", "tests.fixtures.slow_clients", "--port", str(port)]
    argv += ["--cafile", str(ca_file), *(f"{kind}={n}" for kind, n in counts.items())]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert json.loads(line) == {"established": sum(counts.values())}
    return proc


async def clients_closed(proc, timeout=60):
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return json.loads(line)["closed"]


def traced_bytes():
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def admission_allowed(served):
    body = json.dumps(review(workload("Pod", pod_spec("allowed/app:1")), uid="u-meanwhile"))
    status, answer = await post(served, body)
    return status == 200 and answer["response"] == {"uid": "u-meanwhile", "allowed": True}


async def test_idle_slow_and_handshakeless_connections_are_dropped_and_their_memory_returned(
    tmp_path,
):
    async with serving(tmp_path, limits=SHORT) as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert await admission_allowed(served)  # warm up before measuring
        tracemalloc.start()
        try:
            before = traced_bytes()
            clients = await start_clients(port, served.ca_file, HELD)
            await asyncio.sleep(0.5)
            held = traced_bytes() - before
            # Meanwhile the webhook answers.
            assert await admission_allowed(served)
            assert (await get(served, f"{served.url}/health/liveness"))[0] == 200
            closed = await clients_closed(clients)
            after = traced_bytes() - before
        finally:
            tracemalloc.stop()
        samples = await metric_samples(served)
    assert {kind: count for kind, (count, _) in closed.items()} == HELD
    assert all(seconds < 4.0 + DEADLINE_SLACK for _, seconds in closed.values()), closed
    # Each held connection cost memory (TLS buffers); all of it came back.
    assert held > sum(HELD.values()) * 100 * 1024, held
    assert after < held / 20, (held, after)
    dropped = {
        key.partition('reason="')[2].rstrip('"}'): value
        for key, value in samples.items()
        if key.startswith("portieris_connections_dropped_total")
    }
    assert dropped == {
        "idle": HELD["idle"],
        "slow-request": HELD["trickle"] + HELD["slow-body"],
        "handshake-timeout": HELD["no-handshake"] + HELD["partial-handshake"],
    }


async def test_connections_over_the_limit_are_closed_at_once_and_slots_come_back(tmp_path):
    limits = ConnectionLimits(handshake_timeout=60.0, max_connections=20)
    async with serving(tmp_path, limits=limits) as served:
        port = int(served.url.rsplit(":", 1)[1])
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        await asyncio.sleep(0.2)
        extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
        # Closed by the server long before the 60 s handshake timeout.
        for reader, _writer in extra:
            assert await asyncio.wait_for(_read_until_closed(reader), 10) == b""
        for _reader, writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        assert await admission_allowed(served)
        samples = await metric_samples(served)
    assert samples['portieris_connections_dropped_total{reason="over-limit"}'] == 10


async def _read_until_closed(reader):
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def test_a_keep_alive_connection_in_use_is_never_dropped(tmp_path):
    limits = ConnectionLimits(handshake_timeout=2.0, request_read_timeout=1.0, idle_timeout=1.0)
    async with serving(tmp_path, limits=limits) as served:
        opened = []
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(lambda *_: _async_append(opened))
        connector = aiohttp.TCPConnector(ssl=served.client_context(), limit=1)
        body = json.dumps(review(workload("Pod", pod_spec("allowed/app:1"))))
        async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
            for _ in range(8):  # 8 x 0.5 s: twice the idle timeout, on one connection
                async with session.post(f"{served.url}/admit", data=body) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["response"]["allowed"] is True
                await asyncio.sleep(0.5)
        samples = await metric_samples(served)
    assert len(opened) == 1
    assert not any(k.startswith("portieris_connections_dropped_total") for k in samples)


async def _async_append(items):
    items.append(1)


async def test_a_request_started_on_an_idle_connection_is_held_to_the_shorter_read_deadline(
    tmp_path,
):
    """The idle deadline (60 s) is pending when the request begins; the read deadline (1 s)
    replaces it, so a client trickling its headers is cut long before the idle one."""
    limits = ConnectionLimits(request_read_timeout=1.0, idle_timeout=60.0)
    async with serving(tmp_path, limits=limits) as served:
        port = int(served.url.rsplit(":", 1)[1])
        clients = await start_clients(port, served.ca_file, {"trickle": 5, "slow-body": 5})
        closed = await clients_closed(clients, timeout=40)
    assert {kind: count for kind, (count, _) in closed.items()} == {"trickle": 5, "slow-body": 5}
    assert all(seconds < 1.0 + DEADLINE_SLACK for _, seconds in closed.values()), closed


async def test_a_decision_that_takes_longer_than_the_read_timeout_is_answered(tmp_path):
    limits = ConnectionLimits(request_read_timeout=0.5, idle_timeout=0.5)
    async with serving(tmp_path, limits=limits) as served:
        decide = served.enforcer.decide

        async def slow(request):
            await asyncio.sleep(2)
            return await decide(request)

        served.enforcer.decide = slow
        assert await admission_allowed(served)


async def test_dropped_connections_and_bad_requests_are_summarised_not_logged_each(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    limits = ConnectionLimits(handshake_timeout=1.0, idle_timeout=1.0, max_connections=1000)
    held, bad_requests, malformed_http = {"idle": 150, "no-handshake": 50}, 600, 100
    async with serving(tmp_path, limits=limits, summary_interval=1.0) as served:
        port = int(served.url.rsplit(":", 1)[1])
        started = time.monotonic()
        clients = await start_clients(port, served.ca_file, held)
        connector = aiohttp.TCPConnector(ssl=served.client_context(), limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(bad_requests):
                async with session.post(f"{served.url}/admit", data=b"nope") as resp:
                    assert resp.status == 400
        for _ in range(malformed_http):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=served.client_context()
            )
            writer.write(b"POST /admit HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.0 400 Bad Request")
            writer.close()
        await clients_closed(clients)
        await asyncio.sleep(1.1)
        intervals = int(time.monotonic() - started) + 2
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    logged = " ".join(r.getMessage() for r in records)
    events = bad_requests + malformed_http + sum(held.values())
    # Per interval: a few rejected requests and HTTP errors in full, one summary line per kind.
    assert len(records) <= intervals * (BAD_REQUEST_BURST + 3 + 3) < events / 4
    assert _summed(logged, "http-error") + logged.count("Error handling request") == (
        malformed_http
    )
    assert _summed(logged, "idle") == held["idle"]
    assert _summed(logged, "handshake-timeout") == held["no-handshake"]
    assert _summed(logged, "bad-request") + logged.count("rejected admission request:") == (
        bad_requests
    )


async def test_failed_accepts_are_counted_not_logged_each(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with serving(tmp_path, summary_interval=0.2) as served:
        loop = asyncio.get_running_loop()
        for _ in range(500):  # what asyncio reports when accept() hits the open-file limit
            loop.call_exception_handler(
                {
                    "message": ACCEPT_OUT_OF_RESOURCES,
                    "exception": OSError(24, "Too many open files"),
                }
            )
        loop.call_exception_handler({"message": "something else"})
        await asyncio.sleep(0.5)
        samples = await metric_samples(served)
    assert samples['portieris_connections_dropped_total{reason="accept-failed"}'] == 500
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert _summed(" ".join(messages), "accept-failed") == 500
    assert "something else" in messages
    assert len(messages) <= 3


def _summed(text, kind):
    return sum(int(part.split("=")[1].split(";")[0].rstrip(",")) for part in _parts(text, kind))


def _parts(text, kind):
    return [word for word in text.split() if word.startswith(f"{kind}=")]


@pytest.mark.parametrize(
    ("configured", "fd_limit", "cap"),
    [(512, 1_048_576, 512), (512, 1024, 512), (512, 256, 128), (512, 1, 1), (10, 64, 10)],
)
def test_the_connection_cap_leaves_half_the_file_descriptors(configured, fd_limit, cap):
    assert fd_limited(configured, fd_limit) == cap


@pytest.mark.parametrize(("soft", "hard", "raised"), [(128, 256, 256), (128, 128, 128)])
def test_the_open_file_limit_is_raised_to_the_hard_limit(soft, hard, raised):
    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    probe = (
        "import resource; from portieris_webhook.serving.listener import raise_fd_limit; "
        "print(raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, preexec_fn=limits, check=True
    )
    assert result.stdout.split() == [str(raised), str(raised)]


def test_serve_at_a_low_file_limit_keeps_its_log_small_and_recovers(tmp_path):
    ca = TestCA.create()
    ca_file = ca.write(tmp_path)
    cert, key = ca.write_leaf(tmp_path, "serving")
    port = free_port()
    log = tmp_path / "serve.log"

    def low_file_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    with open(log, "wb") as err:
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portieris_webhook.cli",
                "serve",
                "--manifests",
                str(ROOT / "examples" / "manifests"),
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--metrics-port",
                "0",
                "--handshake-timeout",
                "2",
                "--idle-timeout",
                "2",
                "--log-summary-interval",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=low_file_limit,
        )
    try:
        _wait_for_liveness(port, ca_file)
        clients = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fixtures.slow_clients",
                "--port",
                str(port),
                "--cafile",
                str(ca_file),
                "no-handshake=300",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert json.loads(clients.stdout.readline()) == {"established": 300}
            closed = json.loads(clients.stdout.readline())["closed"]
        finally:
            clients.kill()
            clients.wait()
        assert closed["no-handshake"][0] == 300
        _wait_for_liveness(port, ca_file)
    finally:
        serve.terminate()
        serve.wait(30)
    text = log.read_text()
    assert "at most 64 connections, not 512" in text
    assert "Too many open files" not in text
    assert len(text) < 20_000, text[-2000:]


def _wait_for_liveness(port, ca_file, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(
            [
                "curl",
                "-sS",
                "-m",
                "2",
                "--cacert",
                str(ca_file),
                f"https://127.0.0.1:{port}/health/liveness",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            assert json.loads(probe.stdout) == {"status": "alive"}
            return
        assert time.monotonic() < deadline, probe.stderr
        time.sleep(0.2)


async def _exchange(reader, writer, body):
    writer.write(
        b"POST /admit HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
    length = int(head.split("content-length:")[1].split("\r\n")[0])
    return head, json.loads(await reader.readexactly(length))


async def test_once_draining_each_answer_closes_its_kept_alive_connection(tmp_path):
    """A stopping webhook must not close a kept-alive connection under a client that may be
    sending on it: it answers what comes and tells the client to close."""
    body = json.dumps(review(workload("Pod", pod_spec("allowed/app:1")))).encode()
    async with serving(tmp_path) as served:
        port = int(served.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=served.client_context(), server_hostname="127.0.0.1"
        )
        try:
            head, answer = await _exchange(reader, writer, body)
            assert answer["response"]["allowed"] is True and "connection: close" not in head
            served.listeners.drain()
            # Kept alive: the same connection takes the next request, answered in full.
            head, answer = await _exchange(reader, writer, body)
            assert answer["response"]["allowed"] is True and "connection: close" in head
            assert await asyncio.wait_for(_read_until_closed(reader), 10) == b""
        finally:
            writer.close()
        readiness = await get(served, f"{served.url}/health/readiness")
        assert readiness[0] == 503
        assert await admission_allowed(served)  # new connections are still answered
