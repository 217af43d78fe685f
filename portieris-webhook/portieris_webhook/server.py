"""The HTTPS webhook (/admit, /health/*) and the plain-HTTP metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from portieris_webhook.admission.review import AdmissionResponse, parse_review_body
from portieris_webhook.enforce import Enforcer
from portieris_webhook.errors import InvalidAdmissionReview
from portieris_webhook.metrics import Metrics
from portieris_webhook.state import StateView
from portieris_webhook.tls import ReloadingTLS

LOG = logging.getLogger(__name__)


@dataclass
class WebhookApp:
    enforcer: Enforcer
    state: StateView
    metrics: Metrics
    max_body_bytes: int = 3 * 1024 * 1024

    def build(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes + 1)
        app.router.add_post("/admit", self.admit)
        app.router.add_get("/health/liveness", self.liveness)
        app.router.add_get("/health/readiness", self.readiness)
        return app

    def build_metrics(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics_handler)
        return app

    def _bad_request(self, message: str) -> web.Response:
        self.metrics.bad_requests.inc()
        LOG.warning("rejected admission request: %s", message)
        return web.json_response({"error": message}, status=400)

    async def admit(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._bad_request(f"request body is larger than {self.max_body_bytes} bytes")
        body = await request.content.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            return self._bad_request(f"request body is larger than {self.max_body_bytes} bytes")
        try:
            review = parse_review_body(body)
        except InvalidAdmissionReview as exc:
            return self._bad_request(f"malformed AdmissionReview: {exc}")
        try:
            decision = await self.enforcer.decide(review)
        except Exception as exc:  # fail closed with an answer the user can read, never a 500
            LOG.exception("internal error deciding %s", review.display_name)
            message = f"portieris denied {review.display_name}: internal error: {exc!r}"
            self.metrics.record(False, time.perf_counter() - started, ("internal-error",))
            return web.json_response(AdmissionResponse(review.uid, False, message).to_review())
        self.metrics.record(
            decision.response.allowed, time.perf_counter() - started, decision.reason_kinds
        )
        return web.json_response(decision.response.to_review())

    async def liveness(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readiness(self, _request: web.Request) -> web.Response:
        if self.state.is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "policies not loaded yet"}, status=503)

    async def metrics_handler(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), content_type="text/plain", charset="utf-8"
        )


@contextlib.asynccontextmanager
async def running(
    webhook: WebhookApp,
    tls: ReloadingTLS,
    host: str,
    port: int,
    metrics_port: int,
    cert_reload_interval: float,
) -> AsyncIterator[list[str]]:
    """Start both listeners; yield their URLs; stop them on exit."""
    runners = [web.AppRunner(webhook.build(), access_log=None)]
    await runners[0].setup()
    sites = [web.TCPSite(runners[0], host, port, ssl_context=tls.context)]
    if metrics_port:
        runners.append(web.AppRunner(webhook.build_metrics(), access_log=None))
        await runners[1].setup()
        sites.append(web.TCPSite(runners[1], host, metrics_port))
    watcher = asyncio.create_task(tls.watch(cert_reload_interval))
    try:
        for site in sites:
            await site.start()
        urls = [site.name for site in sites]
        LOG.info("listening on %s", ", ".join(urls))
        yield urls
    finally:
        watcher.cancel()
        for runner in runners:
            await runner.cleanup()


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    LOG.info("stopping: signal received")


def render(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True)
