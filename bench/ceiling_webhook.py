"""The ceiling: the least an HTTPS admission webhook in Python can do.

Plain aiohttp and the standard `json` module, TLS with the settings portieris-webhook
serves with (TLS 1.2 minimum, the same certificate); it parses the AdmissionReview and
answers allowed, nothing else. bench_admission.py compares the webhook's rate with this
one's, so the ratio says what portieris' own work costs.

`--uvloop` and `--orjson` exist only to measure what those libraries would give the
ceiling; the ceiling the bench compares against is the plain one.

    python bench/ceiling_webhook.py --port 9443 --tls-cert-file tls.crt --tls-key-file tls.key
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

API_VERSION = "admission.k8s.io/v1"


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def build(loads: Callable[[bytes], Any], dumps: Callable[[Any], str]) -> web.Application:
    async def admit(request: web.Request) -> web.Response:
        review = loads(await request.read())
        answer = {
            "apiVersion": API_VERSION,
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }
        return web.json_response(answer, dumps=dumps)

    async def liveness(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app = web.Application()
    app.router.add_post("/admit", admit)
    app.router.add_get("/health/liveness", liveness)
    app.router.add_get("/health/readiness", liveness)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert-file", required=True)
    parser.add_argument("--tls-key-file", required=True)
    parser.add_argument("--uvloop", action="store_true", help="measurement only")
    parser.add_argument("--orjson", action="store_true", help="measurement only")
    args = parser.parse_args()
    loads: Callable[[bytes], Any] = json.loads
    dumps: Callable[[Any], str] = json.dumps
    if args.orjson:
        import orjson

        loads = orjson.loads

        def dumps(value: Any) -> str:
            return orjson.dumps(value).decode()

    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        build(loads, dumps),
        host=args.host,
        port=args.port,
        ssl_context=server_context(args.tls_cert_file, args.tls_key_file),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
