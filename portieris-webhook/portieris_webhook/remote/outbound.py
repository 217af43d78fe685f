"""What one image's check asks of remote servers: how many bytes they may send, what is pending.

`ReadBudget` bounds the bytes registries and signature stores may send for one image,
drawn from the budget of the whole admission request, so neither a hostile server nor a
pod naming hundreds of images from one can make the webhook buffer without bound.

`Transport` is the one GET every verifier's HTTP call goes through (http_client.HttpClient
implements it, registry/auth.py adds the token flow): it charges every chunk to the
budget as it arrives, stops reading at a limit, and turns every transport failure (no
answer in time, TLS, no connection, an answer too large) into a RemoteError.

`Waiting` records the outbound calls an image's check has in flight, so a check cut
short by the verification budget can say which server it was waiting for. The
transport records each call in the `Waiting` of the task it runs in; the enforcer
installs one per image. A context variable carries it (each image is checked in its
own task, and tasks copy the context they start in), so the calls are tracked without
every layer passing it along.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from portieris_webhook.errors import ReadBudgetExhausted

IMAGE_READ_BYTES = 6 * 1024 * 1024
"""Bytes registries and signature stores may send for one image: a manifest at the
distribution limit (4 MiB), its signatures and the tokens to read them."""
REQUEST_READ_BYTES = 16 * 1024 * 1024
"""Bytes they may send for all the images of one admission request together."""


@dataclass
class ReadBudget:
    """Bytes remote servers may still send for `what`; a child also draws from its parent."""

    limit: int
    what: str
    parent: ReadBudget | None = None
    used: int = 0

    def child(self, limit: int, what: str) -> ReadBudget:
        return ReadBudget(limit, what, self)

    def _chain(self) -> Iterator[ReadBudget]:
        budget: ReadBudget | None = self
        while budget is not None:
            yield budget
            budget = budget.parent

    def remaining(self) -> int:
        return min(b.limit - b.used for b in self._chain())

    def charge(self, size: int, source: str) -> None:
        """Count `size` more bytes from `source`; ReadBudgetExhausted naming the limit past it."""
        for budget in self._chain():
            if budget.used + size > budget.limit:
                raise ReadBudgetExhausted(
                    f"{source}: stopped reading at the limit of {budget.limit} bytes that "
                    f"remote servers may send for {budget.what}"
                )
        for budget in self._chain():
            budget.used += size


@dataclass(frozen=True)
class Response:
    """One HTTP answer: its status, headers and body (empty unless 200)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class AnswerLimits:
    """How much of one answer may be read, and the budget every byte is charged to."""

    max_bytes: int
    budget: ReadBudget | None = None


class Transport(Protocol):
    """One HTTP GET to a remote server, shared by every verifier (http_client.HttpClient)."""

    async def get(
        self, url: str, headers: Mapping[str, str], timeout: float, limits: AnswerLimits
    ) -> Response:
        """GET `url` within `timeout` seconds; RemoteError on any transport failure.

        At most `limits.max_bytes` of a 200 answer are read, each byte charged to
        `limits.budget`; past either, reading stops with a RemoteError naming the limit
        and the server.
        """
        ...


@dataclass
class Waiting:
    """The outbound calls of one image's check that have not answered, by server.

    A call that timed out or was cancelled stays recorded: when the verification budget
    and a call's own deadline (the budget left) end together, the call may already have
    given up by the time the budget's end is reported, and it is still the reason.
    """

    pending: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    unanswered: set[tuple[str, str]] = field(default_factory=set)

    def describe(self) -> str:
        """`server (GET url)` for each server waited on, and how many calls went to it."""
        calls = sorted(set(self.pending) | self.unanswered)
        servers: dict[str, list[str]] = {}
        for server, url in calls:
            servers.setdefault(server, []).append(url)
        return ", ".join(
            f"{server} (GET {urls[0]}{f' and {len(urls) - 1} more' if len(urls) > 1 else ''})"
            for server, urls in servers.items()
        )


_CURRENT: contextvars.ContextVar[Waiting | None] = contextvars.ContextVar(
    "portieris_waiting", default=None
)


def record_into(waiting: Waiting) -> None:
    """Record the calls of the current task (and of the tasks it starts) in `waiting`."""
    _CURRENT.set(waiting)


@contextlib.contextmanager
def waiting_for(server: str, url: str) -> Iterator[None]:
    """Record the call `GET url` to `server` in the current image's `Waiting` while it runs."""
    waiting = _CURRENT.get()
    if waiting is None:
        yield
        return
    call = (server, url)
    waiting.pending[call] += 1
    try:
        yield
    except (TimeoutError, asyncio.CancelledError):
        waiting.unanswered.add(call)
        raise
    finally:
        waiting.pending[call] -= 1
        if waiting.pending[call] <= 0:
            del waiting.pending[call]
