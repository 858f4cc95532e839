"""Real servers on free loopback ports for the transport tests.

* :class:`Upstream`: an aiohttp app with the routes the tests need; it counts
  the TCP connections it saw (by peer address) and how many body bytes its
  streaming handler has written so far.
* :class:`RawServer`: an asyncio server that writes exactly the bytes a test
  scripts, for responses aiohttp would never produce (cut bodies, 1xx,
  read-until-close, dropping a kept-alive connection mid-request).
* :class:`FrontProxy`: a tiny aiohttp proxy that hands ``request.content`` to a
  transport, which is how the mesh proxy uses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from mesh.http.headers import drop_names, end_to_end
from mesh.transport.aiohttp_client import AiohttpTransport
from mesh.transport.base import UpstreamRequest, UpstreamTransport
from mesh.transport.fast import FastTransport

HOST = "127.0.0.1"
PIECE = bytes(range(256)) * 256  # 64 KiB, not all one byte so reordering would show


def pattern(size: int) -> bytes:
    """``size`` bytes of the repeating PIECE pattern."""
    whole, rest = divmod(size, len(PIECE))
    return PIECE * whole + PIECE[:rest]


def make_request(
    target: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    response_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    body_timeout: float | None = None,
    max_body_size: int | None = None,
) -> UpstreamRequest:
    from multidict import CIMultiDict

    return UpstreamRequest(
        method=method,
        target=target,
        headers=CIMultiDict(headers or {}),
        body=body,
        connect_timeout=connect_timeout,
        response_timeout=response_timeout,
        body_timeout=body_timeout,
        max_body_size=max_body_size,
    )


async def read_all(response: Any) -> bytes:
    parts = [chunk async for chunk in response.chunks()]
    return b"".join(parts)


class Upstream:
    """An aiohttp upstream; ``peers`` holds one entry per TCP connection seen."""

    def __init__(self) -> None:
        self.peers: set[tuple[str, int]] = set()
        self.written = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def connections(self) -> int:
        return len(self.peers)

    def _seen(self, request: web.Request) -> None:
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername")[:2])

    async def start(self, keepalive_timeout: float = 75.0) -> None:
        app = web.Application()
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/small", self.small)
        app.router.add_get("/resource", self.resource)
        app.router.add_post("/upload", self.upload)
        app.router.add_get("/big", self.big)
        app.router.add_get("/chunked", self.chunked)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/cookies", self.cookies)
        app.router.add_get("/slow-head", self.slow_head)
        app.router.add_get("/slow-body", self.slow_body)
        app.router.add_post("/reject", self.reject)
        self._runner = web.AppRunner(app, keepalive_timeout=keepalive_timeout, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path_qs": request.path_qs,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode("latin-1"),
            }
        )

    async def small(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"ok": True})

    async def resource(self, request: web.Request) -> web.Response:
        # add_get also answers HEAD: same headers, Content-Length 1000, no body.
        self._seen(request)
        return web.Response(body=b"r" * 1000, content_type="text/plain")

    async def upload(self, request: web.Request) -> web.Response:
        self._seen(request)
        digest = hashlib.sha256()
        length = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
        return web.json_response(
            {
                "length": length,
                "sha256": digest.hexdigest(),
                "content_length": request.headers.get("Content-Length"),
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
            }
        )

    async def big(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        size = int(request.query["size"])
        response = web.StreamResponse()
        response.content_length = size
        await response.prepare(request)
        self.written = 0
        left = size
        try:
            while left:
                piece = PIECE[: min(left, len(PIECE))]
                await response.write(piece)
                self.written += len(piece)
                left -= len(piece)
            await response.write_eof()
        except ConnectionError:
            pass  # tests that release the body unread reset the connection on purpose
        return response

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(5):
            await response.write(f"part{i};".encode())
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def status(self, request: web.Request) -> web.Response:
        self._seen(request)
        code = int(request.match_info["code"])
        return web.Response(status=code, headers={"ETag": '"v1"', "X-Status": str(code)})

    async def cookies(self, request: web.Request) -> web.Response:
        self._seen(request)
        response = web.Response(text="cookies")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/")
        return response

    async def slow_head(self, request: web.Request) -> web.Response:
        self._seen(request)
        await asyncio.sleep(float(request.query.get("delay", "2")))
        return web.Response(text="late")

    async def slow_body(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        response = web.StreamResponse()
        response.content_length = 10
        await response.prepare(request)
        await response.write(b"12345")
        await asyncio.sleep(float(request.query.get("delay", "2")))
        await response.write(b"67890")
        return response

    async def reject(self, request: web.Request) -> web.Response:
        # Answers without reading the body, as an auth or size check would.
        self._seen(request)
        return web.Response(status=413, text="too large")


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """Scripted HTTP server; the handler gets (reader, writer, connection number)."""

    def __init__(self, handler: RawHandler) -> None:
        self._handler = handler
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            await self._handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Stopped by stop(): end quietly, asyncio's start_server callback
            # would otherwise log the cancelled task as an error.
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0.01)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """One request head (through the blank line)."""
    return await reader.readuntil(b"\r\n\r\n")


class FrontProxy:
    """A minimal aiohttp proxy in front of ``upstream_port`` using ``transport``."""

    def __init__(self, transport: UpstreamTransport, upstream_port: int) -> None:
        self._transport = transport
        self._upstream_port = upstream_port
        self.port = 0
        self._runner: web.ServerRunner | None = None

    async def start(self) -> None:
        runner = web.ServerRunner(web.Server(self.handle), shutdown_timeout=0.2)
        self._runner = runner
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = end_to_end(request.headers)
        body = request.content if request.body_exists else None
        upstream = await self._transport.send(
            HOST,
            self._upstream_port,
            UpstreamRequest(request.method, request.path_qs, headers, body, 2.0, 10.0),
        )
        try:
            out = end_to_end(upstream.headers, drop_names(("content-length", "date", "server")))
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(out)
            length = upstream.headers.get("Content-Length")
            if length is not None:
                response.content_length = int(length)
            await response.prepare(request)
            async for chunk in upstream.chunks():
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            upstream.release()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every transport test on asyncio's loop and, where installed, uvloop.

    The gateway runs on uvloop when present; the two loops differ in exactly
    the places a raw-Protocol transport touches (write buffering and flow
    control callbacks, timers, when connection_lost is called).
    """
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fast() -> AsyncIterator[FastTransport]:
    transport = FastTransport()
    yield transport
    await transport.close()


@pytest.fixture(params=["fast", "aiohttp"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamTransport]:
    """Both implementations, for tests that state the shared contract."""
    impl: UpstreamTransport = FastTransport() if request.param == "fast" else AiohttpTransport()
    yield impl
    await impl.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[RawServer]]]:
    started: list[RawServer] = []

    async def start(handler: RawHandler) -> RawServer:
        server = RawServer(handler)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


def decode_json(body: bytes) -> Any:
    return json.loads(body)
