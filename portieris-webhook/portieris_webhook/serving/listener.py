"""Listening sockets whose connections are bounded in number and in time.

Left to itself, the server waits as long as a client likes: for a TLS handshake
that never comes, for headers sent a byte at a time, for a body that never ends;
and each such connection holds about 280 KiB. Here each connection is in one of
four phases, and every phase but the last has a deadline:

  handshake  accepted, TLS not finished yet         handshake_timeout
  idle       no request under way                   idle_timeout
  reading    from the first byte of a request until request_read_timeout
             its body is complete (headers and body)
  handling   the webhook decides                    (the handler's own budget)

A deadline that passes closes the connection. Connections beyond
`max_connections` (counted from accept, handshakes included, across every
listener) are closed as soon as they are accepted, before any TLS work. What is
dropped is counted and summarised, never logged one by one.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import enum
import logging
import resource
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import StreamReader, web
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from portieris_webhook.kits.logs import EventSummary

LOG = logging.getLogger(__name__)

ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"
"""The message asyncio reports (with a traceback, many times a second) when accept() fails."""

HandlerFactory = Callable[[], asyncio.Protocol]
RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ConnectionLimits:
    handshake_timeout: float = 10.0
    """Seconds from accept until the TLS handshake is done (also bounds the closing handshake)."""
    request_read_timeout: float = 10.0
    """Seconds from the first byte of a request until its headers and body have arrived."""
    idle_timeout: float = 120.0
    """Seconds a connection may wait for its next request. Longer than the 90 s after
    which Go clients (kube-apiserver) close idle connections, so they close first and
    never send a request on a connection the webhook is closing."""
    max_connections: int = 512
    """Open connections, handshakes included, across the HTTPS and metrics listeners."""


def fd_limited(max_connections: int, fd_limit: int) -> int:
    """The connection cap that leaves half the file descriptors for everything else.

    Outbound calls (registries, notary servers, the API server), certificate files
    and the listening sockets need descriptors too; if accepted connections used
    them all, accept() would fail in a loop and verification with it.
    """
    return max(1, min(max_connections, fd_limit // 2))


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit (as Go programs do); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return sys.maxsize
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft
        return hard
    return soft


class Phase(enum.Enum):
    HANDSHAKE = "handshake"
    IDLE = "idle"
    READING = "reading"
    HANDLING = "handling"
    CLOSED = "closed"


class Connections:
    """Every open connection of the webhook's listeners, held to one set of limits."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = fd_limited(limits.max_connections, raise_fd_limit())
        if self.max_connections < limits.max_connections:
            LOG.warning(
                "serving at most %d connections, not %d: the open-file limit allows no more",
                self.max_connections,
                limits.max_connections,
            )
        self.dropped = EventSummary(LOG, "connections dropped since the last summary")
        self._open: set[_Connection] = set()
        self._by_handler: dict[asyncio.Protocol, _Connection] = {}
        self.draining = False
        """Set by drain(): every answer from then on closes its connection."""

    @property
    def open_count(self) -> int:
        return len(self._open)

    async def listen(
        self, handlers: HandlerFactory, host: str, port: int, tls: ssl.SSLContext | None
    ) -> asyncio.Server:
        """Accept connections on host:port for the protocol objects `handlers` makes."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: _Accepted(self, handlers, tls), host, port, reuse_address=True
        )

    def report(self) -> None:
        """Log what was dropped since the last report, in one line (nothing if nothing was)."""
        self.dropped.flush(f"; open now {self.open_count} of at most {self.max_connections}")

    def drain(self) -> None:
        """Answer `Connection: close` from now on, so each kept-alive client stops sending here.

        A server that closes an idle kept-alive connection races the client's next request
        on it (Go's client, the API server's, then fails that POST with a broken pipe and
        does not retry it); a client told to close after an answer never sends another.
        """
        self.draining = True

    def close_all(self) -> None:
        for connection in list(self._open):
            connection.abort()

    def tracking(self, handler: RequestHandler) -> RequestHandler:
        """`handler`, telling each connection where its request is."""

        async def track(request: web.BaseRequest) -> web.StreamResponse:
            connection = self._by_handler.get(request.protocol)
            if connection is None:
                return await handler(request)
            connection.request_started(request.content)
            try:
                response = await handler(request)
                if self.draining:
                    response.force_close()
                return response
            finally:
                connection.request_finished()

        return track

    def exception_handler(
        self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None
    ) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
        """An event-loop exception handler that counts failed accepts instead of logging each."""

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == ACCEPT_OUT_OF_RESOURCES:
                self.dropped.count("accept-failed")
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        return handle

    # --- bookkeeping for _Accepted and _Connection ------------------------------
    def _has_room(self) -> bool:
        if len(self._open) < self.max_connections:
            return True
        self.dropped.count("over-limit")
        return False

    def _attached(self, connection: _Connection, handler: asyncio.Protocol) -> None:
        self._by_handler[handler] = connection

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        if connection.handler is not None:
            self._by_handler.pop(connection.handler, None)


class _Accepted(asyncio.Protocol):
    """First protocol of an accepted socket: enforces the cap, then hands over."""

    def __init__(
        self, owner: Connections, handlers: HandlerFactory, tls: ssl.SSLContext | None
    ) -> None:
        self.owner, self.handlers, self.tls = owner, handlers, tls

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, base)
        if not self.owner._has_room():
            transport.abort()
            return
        connection = _Connection(self.owner, self.handlers, transport)
        self.owner._open.add(connection)
        if self.tls is None:
            transport.set_protocol(connection)
            connection.connection_made(transport)
        else:
            connection.start_tls(self.tls)


class _Connection(asyncio.Protocol):
    """One connection: forwards to aiohttp's protocol object, enforcing the phase deadlines."""

    def __init__(
        self, owner: Connections, handlers: HandlerFactory, raw: asyncio.Transport
    ) -> None:
        self.owner, self.handlers, self.raw = owner, handlers, raw
        self.limits = owner.limits
        self.handler: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.phase = Phase.HANDSHAKE
        self._loop = asyncio.get_running_loop()
        self._deadline: float | None = None
        """When the current phase must end (loop time), or None."""
        self._timer: asyncio.TimerHandle | None = None
        """Fires at or before `_deadline`; kept across phases and moved only when a phase
        must end sooner, so a busy keep-alive connection does not set and cancel timers on
        every request."""
        self._handshake: asyncio.Task[None] | None = None
        """The TLS handshake task, held here: the event loop keeps only a weak reference."""
        self._body: StreamReader | None = None
        """The body of the latest request, which aiohttp may still be reading (it reads
        what an answered request left unread, for up to 10 s) when the connection ends."""

    # --- phases ------------------------------------------------------------------
    def _enter(self, phase: Phase, timeout: float | None = None) -> None:
        self.phase = phase
        if timeout is None:
            self._deadline = None
            if phase is Phase.CLOSED and self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        self._deadline = deadline = self._loop.time() + timeout
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._expired, deadline)

    def _expired(self, when: float) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self._deadline > when:  # a later phase began since: wait for its own end
            self._timer = self._loop.call_at(self._deadline, self._expired, self._deadline)
            return
        self._deadline = None
        if self.phase is Phase.IDLE:
            self.owner.dropped.count("idle")
            self.close()
        elif self.phase is Phase.READING:
            self.owner.dropped.count("slow-request")
            self.abort()

    def request_started(self, body: StreamReader) -> None:
        if self.phase is Phase.IDLE:
            self._enter(Phase.READING, self.limits.request_read_timeout)
        self._body = body
        body.on_eof(self.body_complete)

    def body_complete(self) -> None:
        if self.phase is Phase.READING:
            self._enter(Phase.HANDLING)

    def request_finished(self) -> None:
        if self.phase in (Phase.READING, Phase.HANDLING):
            self._enter(Phase.IDLE, self.limits.idle_timeout)

    def close(self) -> None:
        (self.transport or self.raw).close()

    def abort(self) -> None:
        (self.transport or self.raw).abort()

    # --- TLS -----------------------------------------------------------------------
    def start_tls(self, context: ssl.SSLContext) -> None:
        """Put the loop's TLS layer between the socket and this connection, at once.

        Done here, in the accepting protocol's connection_made, because uvloop starts
        reading a socket when that returns, whatever it paused: the ClientHello must
        find the TLS layer in place (loop.start_tls would install it a task later, and
        the bytes read before would be lost). The TLS layer calls connection_made with
        its own transport once the handshake is done.
        """
        handshake = self._loop.create_future()
        layer = _tls_protocol_class(self._loop)(
            self._loop,
            self,
            context,
            handshake,
            server_side=True,
            ssl_handshake_timeout=self.limits.handshake_timeout,
            ssl_shutdown_timeout=self.limits.handshake_timeout,
        )
        self.raw.set_protocol(layer)
        layer.connection_made(self.raw)
        self._handshake = asyncio.ensure_future(self._handshake_done(handshake))

    async def _handshake_done(self, handshake: asyncio.Future[None]) -> None:
        """Count and forget a connection whose handshake failed or ran out of time."""
        started = self._loop.time()
        try:
            await handshake
        except Exception as exc:  # a failed or abandoned handshake, whatever the error
            # ConnectionAbortedError is how asyncio ends a handshake that ran out of time.
            timed_out = isinstance(exc, ConnectionAbortedError)
            if timed_out or self._loop.time() - started >= self.limits.handshake_timeout:
                self.owner.dropped.count("handshake-timeout")
            else:
                self.owner.dropped.count("handshake-failed")
            self.raw.abort()
            self.phase = Phase.CLOSED
            self.owner._forget(self)
        finally:
            self._handshake = None

    # --- asyncio.Protocol (the application side of the TLS layer, or the socket) --
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)
        self.transport = transport
        self.handler = self.handlers()
        self.owner._attached(self, self.handler)
        self.handler.connection_made(transport)
        self._enter(Phase.IDLE, self.limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self.handler is None:  # the TLS layer delivers nothing before connection_made
            return
        if self.phase is Phase.IDLE:
            self._enter(Phase.READING, self.limits.request_read_timeout)
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(Phase.CLOSED)
        self.owner._forget(self)
        if self.handler is not None:
            self.handler.connection_lost(exc)
        if self._body is not None:
            # On uvloop nothing else ends aiohttp's read of an unread body: its handler
            # (and the TLS layer's buffers) would live on until that read gives up.
            self._body.feed_eof()
            self._body = None

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()


def _tls_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    """The server-side TLS protocol of `loop`'s own implementation: uvloop's compiled one
    on a uvloop loop (what its create_server(ssl=...) uses), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.sslproto.SSLProtocol
    if isinstance(loop, uvloop.Loop):
        return uvloop.loop.SSLProtocol  # type: ignore[attr-defined]
    return asyncio.sslproto.SSLProtocol


class ConnectionMetrics(Collector):
    """Open connections and dropped connections by reason, for /metrics."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def collect(self) -> Iterator[Metric]:
        gauge = Metric("portieris_connections_open", "Open connections", "gauge")
        gauge.add_sample("portieris_connections_open", {}, float(self.connections.open_count))
        yield gauge
        name = "portieris_connections_dropped"
        counter = Metric(name, "Connections the webhook closed or refused, by reason", "counter")
        for reason, count in sorted(self.connections.dropped.totals.items()):
            counter.add_sample(f"{name}_total", {"reason": reason}, float(count))
        yield counter
