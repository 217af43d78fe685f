"""The HTTPS webhook (/admit, /validate-policy, /health/*) and the plain-HTTP metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestPayloadError

from portieris_webhook.admission.policy_write import parse_policy_write, validation_review
from portieris_webhook.admission.review import AdmissionResponse, dump_json, parse_review_body
from portieris_webhook.cluster.state import StateView
from portieris_webhook.decide.enforcer import Enforcer
from portieris_webhook.decide.policy_writes import (
    PolicyCheck,
    PolicyVerdict,
    judge_policy_write,
    log_verdict,
)
from portieris_webhook.errors import DenyKind, InvalidAdmissionReview
from portieris_webhook.kits.logs import EventSummary
from portieris_webhook.serving.listener import (
    ConnectionLimits,
    ConnectionMetrics,
    Connections,
    RequestHandler,
)
from portieris_webhook.serving.metrics import DecisionCacheMetrics, Metrics
from portieris_webhook.serving.tls import ReloadingTLS

LOG = logging.getLogger(__name__)
HTTP_LOG = logging.getLogger("portieris_webhook.server.http")
"""What aiohttp's HTTP protocol logs (malformed requests, mostly); throttled while serving."""

BAD_REQUEST_BURST = 10
"""Rejected requests logged in full between two summaries; the rest are counted."""

POLICY_VALIDATION_PATH = "/validate-policy"
"""Where the chart's ValidatingWebhookConfiguration sends writes to policies."""


class BadBody(Exception):
    """The request body cannot be used; the message says why."""


def routes(table: Mapping[str, tuple[str, RequestHandler]]) -> RequestHandler:
    """One handler for a few fixed paths: each path of `table` answered by its handler for
    its method (a GET route answers HEAD too), 405 for another method, 404 for any other
    path. aiohttp's low-level server runs it without an Application's router and
    middleware chain, which cost more than a cached admission decision."""

    async def route(request: web.BaseRequest) -> web.StreamResponse:
        found = table.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        method, handler = found
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            allowed = [method, "HEAD"] if method == "GET" else [method]
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        return await handler(request)

    return route


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(
        body=dump_json(document), status=status, content_type="application/json", charset="utf-8"
    )


@dataclass
class WebhookApp:
    enforcer: Enforcer
    state: StateView
    metrics: Metrics
    max_body_bytes: int = 3 * 1024 * 1024
    also_ready: Mapping[str, Callable[[], str | None]] = field(default_factory=dict)
    """What else must be usable for the webhook to be ready, by name (e.g. the trust state):
    each says why it is not, or None."""
    stopping: bool = False
    """Set once the process was told to stop: not ready, though still answering."""
    rejected: EventSummary = field(
        default_factory=lambda: EventSummary(
            LOG, "rejected admission requests not logged one by one", burst=BAD_REQUEST_BURST
        )
    )

    def handler(self) -> RequestHandler:
        """The HTTPS listener's requests: /admit, /validate-policy and the health endpoints."""
        return routes(
            {
                "/admit": ("POST", self.admit),
                POLICY_VALIDATION_PATH: ("POST", self.validate_policy),
                "/health/liveness": ("GET", self.liveness),
                "/health/readiness": ("GET", self.readiness),
            }
        )

    def metrics_request_handler(self) -> RequestHandler:
        """The metrics listener's requests: /metrics."""
        return routes({"/metrics": ("GET", self.metrics_handler)})

    def _bad_request(self, message: str) -> web.Response:
        self.metrics.bad_requests.inc()
        self.rejected.record("bad-request", f"rejected admission request: {message}")
        return _json({"error": message}, status=400)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The whole body, read until it ends or passes the limit; or BadBody saying why not."""
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
        if encoding != "identity":
            raise BadBody(
                f"Content-Encoding {encoding!r} is not accepted: send the AdmissionReview "
                "uncompressed"
            )
        too_large = f"request body is larger than {self.max_body_bytes} bytes"
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise BadBody(too_large)
        body = bytearray()
        try:
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > self.max_body_bytes:
                    raise BadBody(too_large)
        except (ConnectionError, RequestPayloadError) as exc:
            raise BadBody(f"request body could not be read: {exc}") from exc
        return bytes(body)

    async def admit(self, request: web.BaseRequest) -> web.Response:
        started = time.perf_counter()
        try:
            review = parse_review_body(await self._read_body(request))
        except BadBody as exc:
            return self._bad_request(str(exc))
        except InvalidAdmissionReview as exc:
            return self._bad_request(f"malformed AdmissionReview: {exc}")
        try:
            decision = await self.enforcer.decide(review)
        except InvalidAdmissionReview as exc:  # found while deciding, after the reader's checks
            return self._bad_request(f"malformed AdmissionReview: {exc}")
        except Exception as exc:  # fail closed with an answer the user can read, never a 500
            LOG.exception("internal error deciding %s", review.display_name)
            message = f"portieris denied {review.display_name}: internal error: {exc!r}"
            self.metrics.record(False, time.perf_counter() - started, (DenyKind.INTERNAL_ERROR,))
            return _json(AdmissionResponse(review.uid, False, message).to_review())
        self.metrics.record(
            decision.response.allowed, time.perf_counter() - started, decision.reason_kinds
        )
        return _json(decision.response.to_review())

    async def validate_policy(self, request: web.BaseRequest) -> web.Response:
        """A write to an ImagePolicy or ClusterImagePolicy, read as /admit reads a review (the
        same body and nesting limits), judged by the policy parser (decide/policy_writes.py)."""
        try:
            write = parse_policy_write(await self._read_body(request))
        except BadBody as exc:
            return self._bad_request(str(exc))
        except InvalidAdmissionReview as exc:
            return self._bad_request(f"malformed AdmissionReview: {exc}")
        try:
            verdict = judge_policy_write(write)
        except Exception as exc:  # refuse with an answer the user can read, never a 500
            LOG.exception("internal error validating %s", write.request.display_name)
            verdict = PolicyVerdict(
                PolicyCheck.ERROR,
                f"portieris could not validate {write.request.display_name}: "
                f"internal error: {exc!r}",
            )
        log_verdict(write, verdict)
        self.metrics.record_policy_validation(verdict.check)
        return _json(
            validation_review(
                write.request.uid,
                verdict.refusal,
                verdict.warnings,
                internal_error=verdict.check is PolicyCheck.ERROR,
            )
        )

    async def liveness(self, _request: web.BaseRequest) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readiness(self, _request: web.BaseRequest) -> web.Response:
        if not self.state.is_ready():
            return web.json_response({"status": "policies not loaded yet"}, status=503)
        if self.stopping:
            return web.json_response({"status": "shutting down"}, status=503)
        for name, not_ready in self.also_ready.items():
            why = not_ready()
            if why is not None:
                return web.json_response({"status": f"{name} {why}"}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics_handler(self, _request: web.BaseRequest) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), content_type="text/plain", charset="utf-8"
        )


@dataclass(frozen=True)
class Serving:
    """The running listeners: where they are, and how to begin stopping them."""

    urls: list[str]
    webhook: WebhookApp
    connections: Connections

    def drain(self) -> None:
        """Say not ready and close each connection after its next answer, still answering."""
        self.webhook.stopping = True
        self.connections.drain()


@contextlib.asynccontextmanager
async def running(
    webhook: WebhookApp,
    tls: ReloadingTLS,
    host: str,
    port: int,
    metrics_port: int,
    cert_reload_interval: float,
    limits: ConnectionLimits | None = None,
    summary_interval: float = 60.0,
) -> AsyncIterator[Serving]:
    """Start both listeners; yield them; stop them on exit."""
    connections = Connections(limits or ConnectionLimits())
    # aiohttp logs each malformed HTTP request with a traceback: a few, then counts.
    http_errors = EventSummary(LOG, "HTTP errors not logged one by one", burst=3)
    throttle = _Throttle(http_errors)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    collectors = (
        ConnectionMetrics(connections),
        DecisionCacheMetrics(webhook.enforcer.decisions.stats),
    )
    async with contextlib.AsyncExitStack() as stack:
        HTTP_LOG.addFilter(throttle)
        stack.callback(HTTP_LOG.removeFilter, throttle)
        loop.set_exception_handler(connections.exception_handler(previous_handler))
        stack.callback(loop.set_exception_handler, previous_handler)
        for collector in collectors:
            webhook.metrics.registry.register(collector)
            stack.callback(webhook.metrics.registry.unregister, collector)
        for report in (http_errors.flush, webhook.rejected.flush, connections.report):
            stack.callback(report)  # what is left to say when stopping
        stack.callback(connections.close_all)
        listeners: list[tuple[RequestHandler, int, ssl.SSLContext | None]] = [
            (webhook.handler(), port, tls.context)
        ]
        if metrics_port:
            listeners.append((webhook.metrics_request_handler(), metrics_port, None))
        urls = [await _listen(stack, connections, host, *listener) for listener in listeners]
        for task in (
            tls.watch(cert_reload_interval),
            _summarise(
                summary_interval, connections.report, webhook.rejected.flush, http_errors.flush
            ),
        ):
            stack.callback(asyncio.create_task(task).cancel)
        LOG.info("listening on %s", ", ".join(urls))
        yield Serving(urls, webhook, connections)


async def _listen(
    stack: contextlib.AsyncExitStack,
    connections: Connections,
    host: str,
    handler: RequestHandler,
    port: int,
    context: ssl.SSLContext | None,
) -> str:
    """Serve `handler` on host:port until `stack` closes; its URL."""
    # Compressed bodies are refused by the handler, never inflated.
    web_server = web.Server(
        connections.tracking(handler),
        access_log=None,
        auto_decompress=False,
        logger=HTTP_LOG,
    )
    runner = web.ServerRunner(web_server)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    assert runner.server is not None
    server = await connections.listen(runner.server, host, port, context)
    stack.callback(server.close)
    return f"{'https' if context else 'http'}://{host}:{port}"


class _Throttle(logging.Filter):
    def __init__(self, summary: EventSummary) -> None:
        super().__init__()
        self.summary = summary

    def filter(self, record: logging.LogRecord) -> bool:
        return self.summary.count("http-error")


async def _summarise(interval: float, *reports: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(interval)
        for report in reports:
            report()
