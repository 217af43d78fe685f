"""A `serve` process whose registry, notary server or signature store fails, then comes back.

Each remote sits behind a FaultyRemote proxy that is stopped, slowed past the verification
budget, made to answer HTTP 500 or garbage. Whatever the fault, every admission gets an
answer within the budget (the client gives up a little after it), the answer is a deny
naming the remote, liveness stays healthy, and once the remote is back the same pod is
allowed again. The webhook runs with its caches off, so every admission asks the remotes.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.builders import key_secret
from tests.fixtures.faults import Fault, FaultyRemote
from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner
from tests.fixtures.notary import NotaryServer, NotarySigner
from tests.fixtures.pki import TestCA
from tests.fixtures.registry import Registry
from tests.fixtures.serve import Webhook, caches_off, pod_review, write_manifests

pytestmark = pytest.mark.integration

VERIFY_TIMEOUT = 2.0
SLACK = 3.0
"""What the client adds to the budget before it calls the admission unanswered."""


@dataclass
class Setup:
    webhook: Webhook
    remotes: dict[str, FaultyRemote]
    image: str


def proxy(upstream: str, ca: TestCA, ca_file: Path, workdir: Path, tls: bool) -> FaultyRemote:
    if not tls:
        return FaultyRemote(upstream).start()
    cert, key = ca.write_leaf(workdir, "proxy")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(ca_file))
    return FaultyRemote(upstream, server_tls=server, upstream_tls=client).start()


@pytest.fixture(scope="module")
def setup(
    test_ca: TestCA,
    test_ca_file: Path,
    registry: Registry,
    notary_server: NotaryServer,
    lookaside_store: LookasideStore,
    gpg_home: GpgHome,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("faults")
    remotes = {
        "registry": proxy(registry.url, test_ca, test_ca_file, work / "r", tls=True),
        "notary": proxy(notary_server.url, test_ca, test_ca_file, work / "n", tls=True),
        "store": proxy(lookaside_store.url, test_ca, test_ca_file, work / "s", tls=False),
    }
    webhook = None
    try:
        pushed = registry.push_image("faults/app", "v1")
        host = remotes["registry"].host
        image = f"{host}/{pushed.repo}:v1"
        NotarySigner(notary_server, work / "notary-trust").sign(
            f"{host}/{pushed.repo}", "v1", pushed.size, pushed.hex
        )
        key = gpg_home.new_key("faults publisher")
        SimpleSigner(gpg_home, lookaside_store, registry, work / "signer").sign_as(
            pushed, image, key.fingerprint
        )
        policy = {
            "trust": {"enabled": True, "trustServer": remotes["notary"].url},
            "simple": {
                "requirements": [{"type": "signedBy", "keySecret": "publisher"}],
                "storeURL": remotes["store"].url,
            },
        }
        manifests = write_manifests(
            work / "manifests",
            key_secret("publisher", key.public_armored),
            {
                "apiVersion": "portieris.cloud.ibm.com/v1",
                "kind": "ClusterImagePolicy",
                "metadata": {"name": "faults"},
                "spec": {"repositories": [{"name": f"{host}/*", "policy": policy}]},
            },
        )
        options = [*caches_off(), "--verify-timeout", str(VERIFY_TIMEOUT)]
        webhook = Webhook(work, test_ca, test_ca_file, manifests, options).start()
        yield Setup(webhook, remotes, image)
    finally:
        if webhook is not None:
            webhook.stop()
        for remote in remotes.values():
            remote.close()


def admit(setup: Setup) -> dict[str, Any]:
    """The webhook's answer, which must come within the budget (else socket.timeout)."""
    uid = str(uuid.uuid4())
    status, answer = setup.webhook.admit(pod_review([setup.image], uid), VERIFY_TIMEOUT + SLACK)
    assert status == 200, answer
    assert answer["response"]["uid"] == uid
    return dict(answer["response"])


def alive(setup: Setup) -> bool:
    status, text = setup.webhook.get("/health/liveness")
    return status == 200 and "alive" in text


def test_the_signed_image_is_allowed_while_every_remote_answers(setup: Setup) -> None:
    assert admit(setup)["allowed"] is True


@pytest.mark.parametrize("remote", ["registry", "notary", "store"])
@pytest.mark.parametrize("fault", [Fault.STOPPED, Fault.SLOW, Fault.ERROR, Fault.GARBAGE])
def test_a_failing_remote_gets_a_deny_naming_it_in_time_and_allows_again_when_back(
    setup: Setup, remote: str, fault: Fault
) -> None:
    failing = setup.remotes[remote]
    failing.set(fault)
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(admit, setup)
            assert alive(setup)  # while the admission waits on the failing remote
            answer = pending.result()
        assert alive(setup)
    finally:
        failing.set(Fault.NONE)
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert failing.host in message, message
    if fault is Fault.ERROR:
        assert "HTTP 500" in message
    if fault is Fault.SLOW:
        assert f"within {VERIFY_TIMEOUT:g}s" in message or "no answer within" in message
    assert admit(setup)["allowed"] is True
