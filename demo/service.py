"""A demo service: echoes what it received, and can be told to misbehave.

``python -m demo.service --name users --port 9001 [--outbound http://127.0.0.1:15001]``

Every service serves:

* ``/<name>/echo`` (any method, any path under ``/<name>/``): JSON naming the
  service, the instance, and the method, path and headers it received;
* ``POST /<name>/upload``: reads the body in chunks, answers its size and SHA-256;
* ``GET /<name>/download?mb=N``: streams N MiB, with their SHA-256 in a header;
* ``GET /<name>/slow?ms=N``: answers after N ms;
* ``GET /<name>/ws``: a WebSocket (subprotocol ``echo.v1`` if asked) that first sends
  JSON naming the service, the instance and the handshake's headers, then echoes
  every text and binary message; the text ``close:<code>`` closes it with that code;
* ``GET /health``: 200, or 503 once told it is unhealthy;
* ``POST /admin/faults``: fault settings, applied to every ``/<name>/...`` request
  from then on: ``{"error_rate": 0.5, "error_status": 500, "latency_ms": 200,
  "hang": false, "retry_after": null}`` (``retry_after`` adds that header to errors);
* ``POST /admin/health`` ``{"healthy": false}``; ``GET /admin/stats``: requests
  counted per method and path, per ``X-Test-Seq``, and the most ever in progress;
* ``GET /admin/received``: the last 100 requests the echo answered, each with its
  method, path, headers, and the SHA-256 and length of its body (e.g. what a mirror
  sent);
* ``/<name>/cached/<anything>``: an answer whose caching headers the query asks for
  (to try a cache in front: see :func:`cached_answer`); counted per path in
  ``/admin/stats`` like every request, and numbered in its body.

``authz`` is the demo's external authorization service: any method on
``/authz/check/<path>`` answers the edge's check of a request to ``/<path>`` by the
demo policy (:mod:`demo.authz_policy`), and records the check as the echo records
its requests (``/admin/received``); faults and counts apply to it as to any
``/<name>/...`` request.

``orders`` also answers ``GET /orders/<id>`` by asking ``inventory`` for the
stock, through its sidecar's outbound listener (``--outbound``), forwarding the
request id, the deadline and the trace context, as every service in a mesh must
(the trace context with OpenTelemetry's aiohttp instrumentation, see
:mod:`demo.tracing`). ``inventory`` answers ``GET /inventory/stock/<id>`` and
shows the ``traceparent`` it received.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import socket
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from demo.authz_policy import decide
from demo.tracing import client_trace_config, server_spans, setup_tracing

# What a service must pass on when it calls another service through its sidecar,
# besides the trace context (which OpenTelemetry's instrumentation forwards).
PROPAGATED = ("X-Request-Id", "X-Mesh-Deadline-Ms")
SESSION = web.AppKey("session", aiohttp.ClientSession)
CHECK_PREFIX = "/authz/check"
"""Where ``authz`` answers the edge's checks (the edge's ``ext_authz.path_prefix``)."""


@dataclass
class Faults:
    error_rate: float = 0.0
    error_status: int = 500
    latency_ms: int = 0
    hang: bool = False
    retry_after: int | None = None


@dataclass
class State:
    healthy: bool = True
    faults: Faults = field(default_factory=Faults)
    requests: Counter[str] = field(default_factory=Counter)
    by_seq: Counter[str] = field(default_factory=Counter)
    in_progress: int = 0
    max_in_progress: int = 0
    received: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    served: Counter[str] = field(default_factory=Counter)
    """Answers of ``/<name>/cached/...`` per path (their bodies' ``n``)."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TAGS = "Surrogate-Key"
"""The header naming an answer's tags for a cache in front (``edge.cache.tags``)."""


async def cached_answer(request: web.Request, instance: str, n: int) -> web.StreamResponse:
    """The answer of ``/<name>/cached/...``, the ``n``-th of its path, as its query asks:

    * ``cc``, ``mcc``, ``cdn``, ``expires``, ``vary``, ``tags``, ``etag`` (quoted for
      you), ``lm`` (an HTTP date): the ``Cache-Control``, ``Meshgate-Cache-Control``,
      ``CDN-Cache-Control``, ``Expires``, ``Vary``, ``Surrogate-Key``, ``ETag`` and
      ``Last-Modified`` headers; a conditional request that the ``etag`` (or ``lm``)
      meets gets 304 (with these headers too);
    * ``cookie=1``: a ``Set-Cookie``; ``status``: the status (default 200);
    * ``bytes=N``: a body of N bytes instead of JSON; with ``stream=1`` sent in 64 KiB
      pieces without a ``Content-Length``; ``ms``: wait that long first.

    A JSON body names the instance, ``n``, the method and the request's headers. Any
    method but GET and HEAD is answered ``{"changed": true}``, nothing more.
    """
    query = request.query
    if "ms" in query:
        await asyncio.sleep(int(query["ms"]) / 1000)
    if request.method not in ("GET", "HEAD"):
        return web.json_response({"changed": True, "instance": instance, "n": n})
    headers: dict[str, str] = {"X-Served": str(n)}
    named = (
        ("cc", "Cache-Control"),
        ("mcc", "Meshgate-Cache-Control"),
        ("cdn", "CDN-Cache-Control"),
        ("expires", "Expires"),
        ("vary", "Vary"),
        ("tags", TAGS),
    )
    for key, name in named:
        if key in query:
            headers[name] = query[key]
    etag = f'"{query["etag"]}"' if "etag" in query else None
    if etag is not None:
        headers["ETag"] = etag
    if "lm" in query:
        headers["Last-Modified"] = query["lm"]
    asked = request.headers.get("If-None-Match")
    since = request.headers.get("If-Modified-Since")
    if (asked is not None and etag is not None and etag in asked) or (
        asked is None and since is not None and "lm" in query and since == query["lm"]
    ):
        return web.Response(status=304, headers=headers)
    if query.get("cookie") == "1":
        headers["Set-Cookie"] = f"session={n}; Path=/"
    status = int(query.get("status", "200"))
    if "bytes" not in query:
        body = {
            "instance": instance,
            "n": n,
            "method": request.method,
            "headers": [[k, v] for k, v in request.headers.items()],
        }
        return web.json_response(body, status=status, headers=headers)
    size = int(query["bytes"])
    piece = bytes(range(256)) * 256  # 64 KiB
    if query.get("stream") != "1":
        data = (piece * (size // len(piece) + 1))[:size]
        return web.Response(body=data, status=status, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)  # no length: chunked
    left = size
    while left > 0:
        await response.write(piece[:left])
        left -= len(piece)
    await response.write_eof()
    return response


def _received(request: web.Request, body: bytes) -> dict[str, Any]:
    """What ``/admin/received`` keeps of a request: method, path, headers, the body's
    SHA-256 and length."""
    return {
        "method": request.method,
        "path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_bytes": len(body),
    }


def create_app(name: str, instance: str, outbound: str | None = None) -> web.Application:
    state = State()

    @web.middleware
    async def faults_and_counts(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(f"/{name}"):
            return await handler(request)
        state.requests[f"{request.method} {request.path}"] += 1
        seq = request.headers.get("X-Test-Seq")
        if seq is not None:
            state.by_seq[seq] += 1
        state.in_progress += 1
        state.max_in_progress = max(state.max_in_progress, state.in_progress)
        try:
            f = state.faults
            if f.hang:
                await asyncio.sleep(3600)
            if f.latency_ms:
                await asyncio.sleep(f.latency_ms / 1000)
            if f.error_rate and random.random() < f.error_rate:
                headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
                return web.json_response(
                    {"error": "injected fault", "instance": instance},
                    status=f.error_status,
                    headers=headers,
                )
            return await handler(request)
        finally:
            state.in_progress -= 1

    app = web.Application(middlewares=[server_spans, faults_and_counts])

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        state.received.append(_received(request, body))
        return web.json_response(
            {
                "service": name,
                "instance": instance,
                "method": request.method,
                "path": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body_bytes": len(body),
            }
        )

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("echo.v1",), heartbeat=None)
        await ws.prepare(request)
        # First message: who answered and the handshake headers it got (identity, trace).
        await ws.send_json(
            {
                "service": name,
                "instance": instance,
                "headers": [[k, v] for k, v in request.headers.items()],
            }
        )
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                if message.data.startswith("close:"):
                    await ws.close(code=int(message.data[6:]), message=b"asked to")
                    break
                await ws.send_str(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return web.json_response(
            {"instance": instance, "bytes": size, "sha256": digest.hexdigest()}
        )

    async def download(request: web.Request) -> web.StreamResponse:
        mb = int(request.query.get("mb", "1"))
        chunk = hashlib.sha256(instance.encode()).digest() * (1024 * 1024 // 32)
        digest = hashlib.sha256()
        for _ in range(mb):
            digest.update(chunk)
        response = web.StreamResponse()
        response.content_length = mb * len(chunk)
        # The digest goes first, in a header, so the body itself can stream.
        response.headers["X-Content-SHA256"] = digest.hexdigest()
        await response.prepare(request)
        for _ in range(mb):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
        return web.json_response({"instance": instance, "slept_ms": request.query.get("ms")})

    async def health(_: web.Request) -> web.Response:
        if state.healthy:
            return web.json_response({"status": "ok", "instance": instance})
        return web.json_response({"status": "failing", "instance": instance}, status=503)

    async def set_health(request: web.Request) -> web.Response:
        data = await request.json()
        state.healthy = bool(data.get("healthy", True))
        return web.json_response({"healthy": state.healthy})

    async def set_faults(request: web.Request) -> web.Response:
        data: dict[str, Any] = await request.json()
        try:
            state.faults = Faults(**data)
        except TypeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(state.faults.__dict__)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "instance": instance,
                "requests": dict(state.requests),
                "total": sum(state.requests.values()),
                "by_seq": dict(state.by_seq),
                "in_progress": state.in_progress,
                "max_in_progress": state.max_in_progress,
            }
        )

    async def received(_: web.Request) -> web.Response:
        return web.json_response(list(state.received))

    async def cached(request: web.Request) -> web.StreamResponse:
        state.served[request.path] += 1
        return await cached_answer(request, instance, state.served[request.path])

    async def stock(request: web.Request) -> web.Response:
        item = request.match_info["item"]
        return web.json_response(
            {
                "item": item,
                "in_stock": (sum(map(ord, item)) % 17) + 1,
                "instance": instance,
                "traceparent": request.headers.get("traceparent"),
            }
        )

    async def check(request: web.Request) -> web.Response:
        body = await request.read()
        state.received.append(_received(request, body))
        asked = request.path.removeprefix(CHECK_PREFIX) or "/"
        decision = decide(request.method, asked, request.headers)
        if decision.body is None:
            return web.Response(status=decision.status, headers=decision.headers)
        return web.json_response(
            dict(decision.body),
            status=decision.status,
            headers=decision.headers,
            content_type="application/problem+json",
        )

    async def order(request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        if outbound is None:
            return web.json_response({"error": "orders needs --outbound"}, status=500)
        headers = {h: request.headers[h] for h in PROPAGATED if h in request.headers}
        session: aiohttp.ClientSession = app[SESSION]
        async with session.get(
            f"{outbound}/inventory/inventory/stock/{order_id}", headers=headers
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                return web.json_response(
                    {"order": order_id, "error": "inventory failed", "inventory": body},
                    status=502 if resp.status < 500 else resp.status,
                )
        return web.json_response({"order": order_id, "instance": instance, "stock": body})

    async def session_ctx(app: web.Application) -> Any:
        app[SESSION] = aiohttp.ClientSession(trace_configs=[client_trace_config()])
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/health", health)
    app.router.add_post("/admin/health", set_health)
    app.router.add_post("/admin/faults", set_faults)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/admin/received", received)
    app.router.add_post(f"/{name}/upload", upload)
    app.router.add_get(f"/{name}/slow", slow)
    app.router.add_get(f"/{name}/download", download)
    app.router.add_get(f"/{name}/ws", websocket)
    if name == "inventory":
        app.router.add_get("/inventory/stock/{item}", stock)
    if name == "orders":
        app.router.add_get(r"/orders/{order_id:\d+}", order)
    app.router.add_route("*", f"/{name}/cached/{{tail:.*}}", cached)
    if name == "authz":
        app.router.add_route("*", CHECK_PREFIX, check)
        app.router.add_route("*", f"{CHECK_PREFIX}/{{tail:.*}}", check)
    app.router.add_route("*", f"/{name}/{{tail:.*}}", echo)
    app.router.add_route("*", f"/{name}", echo)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="meshgate demo service")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--instance", default=None)
    parser.add_argument(
        "--outbound",
        default=None,
        help="this instance's sidecar outbound URL, e.g. http://127.0.0.1:15001",
    )
    args = parser.parse_args(argv)
    instance = args.instance or f"{args.name}-{socket.gethostname()}-{os.getpid()}"
    provider = setup_tracing(args.name)
    app = create_app(args.name, instance, args.outbound)
    if provider is not None:

        async def flush_spans(_: web.Application) -> None:
            provider.shutdown()

        app.on_cleanup.append(flush_spans)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
