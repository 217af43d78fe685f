"""The outbound HTTP client against a real local server: connections to one server are few
and reused, so a cold pod of many repositories does not pay a handshake per document."""

from __future__ import annotations

import asyncio

from aiohttp import web

from portieris_webhook.remote.http_client import HttpClient
from portieris_webhook.remote.outbound import AnswerLimits

from tests.fixtures.simple_helpers import serve


async def test_many_concurrent_gets_to_one_server_share_a_few_kept_alive_connections() -> None:
    connections: set[int] = set()
    """The connections the requests arrived on (one transport per TCP connection)."""

    async def document(request: web.Request) -> web.Response:
        connections.add(id(request.transport))
        await asyncio.sleep(0.01)  # still busy when the others arrive
        return web.Response(body=b"{}")

    app = web.Application()
    app.router.add_get("/{name}", document)
    client = HttpClient(None)
    try:
        async with serve(app) as host:
            answers = await asyncio.gather(
                *(
                    client.get(f"http://{host}/doc{n}", {}, 10.0, AnswerLimits(1024))
                    for n in range(40)
                )
            )
    finally:
        await client.close()

    assert [a.status for a in answers] == [200] * 40
    assert 1 < len(connections) <= 8
