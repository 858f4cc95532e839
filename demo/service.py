"""A demo service: echoes what it received, so a user can see what the mesh did.

``python -m demo.service --name users --port 9001`` serves:

* ``GET /<name>/echo`` (any method, any path under ``/<name>/``): JSON naming
  the service, the instance, and the method, path and headers it received;
* ``GET /health``: 200 (or 503 after ``POST /admin/health`` with ``{"healthy": false}``);
* ``POST /<name>/upload``: reads the body in chunks and answers its size and SHA-256
  (for the streaming test), never holding it whole;
* ``GET /<name>/download?mb=N``: streams N MiB, with their SHA-256 in a header;
* ``GET /<name>/slow?ms=N``: answers after N ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
from collections.abc import Sequence

from aiohttp import web


def create_app(name: str, instance: str) -> web.Application:
    app = web.Application()
    state = {"healthy": True, "requests": 0}

    async def echo(request: web.Request) -> web.Response:
        state["requests"] += 1
        body = await request.read()
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
        if state["healthy"]:
            return web.json_response({"status": "ok", "instance": instance})
        return web.json_response({"status": "failing", "instance": instance}, status=503)

    async def set_health(request: web.Request) -> web.Response:
        data = await request.json()
        state["healthy"] = bool(data.get("healthy", True))
        return web.json_response({"healthy": state["healthy"]})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"instance": instance, "requests": state["requests"]})

    app.router.add_get("/health", health)
    app.router.add_post("/admin/health", set_health)
    app.router.add_get("/admin/stats", stats)
    app.router.add_post(f"/{name}/upload", upload)
    app.router.add_get(f"/{name}/slow", slow)
    app.router.add_get(f"/{name}/download", download)
    app.router.add_route("*", f"/{name}/{{tail:.*}}", echo)
    app.router.add_route("*", f"/{name}", echo)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="meshgate demo service")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--instance", default=None)
    args = parser.parse_args(argv)
    instance = args.instance or f"{args.name}-{socket.gethostname()}-{os.getpid()}"
    web.run_app(create_app(args.name, instance), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
