"""A minute of admissions as fast as this machine answers them, against a `serve` process.

Warm trust (a notary-signed image, trust data cached), 8 keep-alive connections, every
request with its own uid. Every answer must be a valid AdmissionReview allowing the pod
(pinned to the signed digest) for that uid; the process's memory and open file
descriptors, sampled after a warm-up and at the end while the same connections are
open, must not grow. This checks behaviour under load, not speed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.notary import NotaryServer, NotarySigner
from tests.fixtures.pki import TestCA
from tests.fixtures.registry import PushedImage, Registry
from tests.fixtures.serve import Webhook, pod_review, write_manifests
from tests.fixtures.trust_helpers import trust_policy

pytestmark = pytest.mark.integration

WARM_UP = 5.0
SOAK = 60.0
CONNECTIONS = 8
RSS_GROWTH_LIMIT = 5 * 1024 * 1024
FD_SLACK = 2
"""Descriptors that may come and go on their own (a log file being rotated, say)."""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def signed(registry: Registry, notary_server: NotaryServer, tmp_path_factory) -> PushedImage:
    image = registry.push_image("soak/app", "v1")
    NotarySigner(notary_server, tmp_path_factory.mktemp("soak-trust")).sign(
        image.name, image.tag, image.size, image.hex
    )
    return image


@pytest.fixture(scope="module")
def webhook(
    signed: PushedImage,
    notary_server: NotaryServer,
    test_ca: TestCA,
    test_ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Webhook]:
    work = tmp_path_factory.mktemp("soak")
    manifests = write_manifests(
        work / "manifests", trust_policy(f"{signed.host}/soak/*", notary_server.url)
    )
    served = Webhook(work, test_ca, test_ca_file, manifests, []).start()
    try:
        yield served
    finally:
        served.stop()


class Load:
    """Admissions on CONNECTIONS kept-alive connections until `stop`; what came back, counted."""

    def __init__(self, url: str, ca_file: Path, image: PushedImage) -> None:
        self.url, self.image = url, image
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.pinned = f"{image.name}@{image.digest}"
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stop = asyncio.Event()

    def judge(self, uid: str, status: int, body: bytes) -> str:
        """ "allowed", or what was wrong with the answer."""
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        answer = json.loads(body)
        response = answer.get("response") or {}
        if (answer.get("apiVersion"), answer.get("kind")) != (
            "admission.k8s.io/v1",
            "AdmissionReview",
        ):
            return f"not an AdmissionReview: {answer}"
        if response.get("uid") != uid:
            return f"answer for uid {response.get('uid')!r}, asked {uid!r}"
        if response.get("allowed") is not True:
            return f"denied: {response.get('status')}"
        patch = json.loads(base64.b64decode(response["patch"]))
        if [op["value"] for op in patch] != [self.pinned]:
            return f"patch {patch}"
        return "allowed"

    async def worker(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            uid = str(uuid.uuid4())
            body = json.dumps(pod_review([self.image.ref], uid)).encode()
            try:
                async with session.post(
                    f"{self.url}/admit", data=body, headers={"Content-Type": "application/json"}
                ) as answer:
                    verdict = self.judge(uid, answer.status, await answer.read())
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                verdict = f"{type(exc).__name__}: {exc}"
            self.outcomes["allowed" if verdict == "allowed" else "failed"] += 1
            if verdict != "allowed" and len(self.failures) < 10:
                self.failures.append(verdict)


async def test_a_minute_at_full_rate_answers_every_admission_with_flat_memory_and_fds(
    webhook: Webhook, signed: PushedImage, test_ca_file: Path
) -> None:
    load = Load(f"https://127.0.0.1:{webhook.port}", test_ca_file, signed)
    connector = aiohttp.TCPConnector(ssl=load.context, limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        workers = [asyncio.ensure_future(load.worker(session)) for _ in range(CONNECTIONS)]
        try:
            await asyncio.sleep(WARM_UP)
            rss_warm, fds_warm = rss_bytes(webhook.pid), open_fds(webhook.pid)
            warm_count = load.outcomes["allowed"]
            await asyncio.sleep(SOAK)
            rss_end, fds_end = rss_bytes(webhook.pid), open_fds(webhook.pid)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
    assert load.outcomes["failed"] == 0, load.failures
    assert load.outcomes["allowed"] > warm_count > 0
    assert rss_end - rss_warm <= RSS_GROWTH_LIMIT, (rss_warm, rss_end, load.outcomes)
    assert fds_end <= fds_warm + FD_SLACK, (fds_warm, fds_end)
    status, _text = webhook.get("/health/liveness")
    assert status == 200
