"""A copy of the body taken while the proxy relays it (``BodyTee``), through an exchange's
``responder``: real sockets, the real proxy and fast transport, real upstreams (an aiohttp
app, and a raw server that breaks off its body)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from mesh.balancing import Balancer
from mesh.exchange import Exchange
from mesh.http.compression import ResponseCompression
from mesh.ingress import Ingress
from mesh.proxy import SMALL_BODY, Proxy, ProxySettings, stream_response
from mesh.server import Listener
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.transport.base import UpstreamResponse
from mesh.transport.fast import FastTransport


def body_of(size: int) -> bytes:
    text = "".join(f'{{"n":{i}}},' for i in range(size // 8 + 1))
    return text.encode()[:size]


@dataclass
class Tee:
    pieces: list[bytes] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)

    def write(self, piece: bytes) -> None:
        self.pieces.append(piece)

    def close(self) -> None:
        self.ends.append("close")

    def abort(self) -> None:
        self.ends.append("abort")

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def end(self) -> str:
        """The first end reported (later ones after close must change nothing)."""
        return self.ends[0]


async def upstream_app() -> web.Application:
    app = web.Application()

    async def json_body(request: web.Request) -> web.Response:
        return web.Response(
            body=body_of(int(request.query["size"])), content_type="application/json"
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for i in range(8):
            await response.write(body_of(20_000) + str(i).encode())
        await response.write_eof()
        return response

    async def empty(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_get("/json", json_body)
    app.router.add_get("/stream", stream)
    app.router.add_get("/empty", empty)
    return app


async def breaking_server(declared: int, sent: int) -> asyncio.Server:
    """Answers every request with a head declaring ``declared`` body bytes, sends
    ``sent`` of them and closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {declared}"
        writer.write(head.encode() + b"\r\n\r\n" + body_of(sent))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@dataclass
class Front:
    url: str
    tees: list[Tee]


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    runner = web.AppRunner(await upstream_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    small = await breaking_server(SMALL_BODY // 2, 1000)
    large = await breaking_server(SMALL_BODY * 4, 100_000)
    snapshot = Snapshot(
        {
            "svc": ServiceEntry("svc", (Instance("svc-1", "svc", "127.0.0.1", port),)),
            "small": ServiceEntry(
                "small",
                (Instance("small-1", "small", "127.0.0.1", small.sockets[0].getsockname()[1]),),
            ),
            "large": ServiceEntry(
                "large",
                (Instance("large-1", "large", "127.0.0.1", large.sockets[0].getsockname()[1]),),
            ),
        }
    )
    transport = FastTransport()
    proxy = Proxy(transport, lambda: snapshot, Balancer("round_robin"), ProxySettings())
    tees: list[Tee] = []
    policy = ResponseCompression(("application/json",), 1024)

    async def respond(ex: Exchange, upstream: UpstreamResponse) -> web.StreamResponse:
        tee = Tee()
        tees.append(tee)
        return await stream_response(ex, upstream, tee)

    async def route(ex: Exchange) -> web.StreamResponse:
        first = ex.path.split("/")[1]  # /small/... and /large/...: the breaking servers
        ex.service = first if first in ("small", "large") else "svc"
        if "gzip" in ex.query:
            ex.compression = policy
        if "plain" not in ex.query:
            ex.responder = respond
        return await proxy(ex)

    listener = Listener("front", Ingress(lambda: route), "127.0.0.1", 0, shutdown_timeout=0.5)
    await listener.start()
    try:
        yield Front(f"http://127.0.0.1:{listener.port}", tees)
    finally:
        await listener.stop()
        await transport.close()
        await runner.cleanup()
        for server in (small, large):
            server.close()
            await server.wait_closed()


async def fetch(
    url: str, method: str = "GET", accept: str = ""
) -> tuple[int, CIMultiDict[str], bytes]:
    headers = {"Accept-Encoding": accept} if accept else {}
    async with (
        aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=["Accept-Encoding"]) as s,
        s.request(method, url, headers=headers) as resp,
    ):
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def test_a_whole_body_is_copied_whole(front: Front) -> None:
    status, headers, raw = await fetch(f"{front.url}/json?size=5000")
    assert (status, raw) == (200, body_of(5000))
    assert headers["Content-Length"] == "5000"
    [tee] = front.tees
    assert (tee.body, tee.end) == (body_of(5000), "close")


async def test_a_streamed_body_is_copied_piece_by_piece(front: Front) -> None:
    expected = b"".join(body_of(20_000) + str(i).encode() for i in range(8))
    _, headers, raw = await fetch(f"{front.url}/stream")
    assert raw == expected and headers["Transfer-Encoding"] == "chunked"
    big = SMALL_BODY * 3  # a known length past the whole-body path: streamed
    _, _, raw_big = await fetch(f"{front.url}/json?size={big}")
    assert raw_big == body_of(big)
    first, second = front.tees
    assert (first.body, first.end) == (expected, "close")
    assert len(first.pieces) > 1  # copied as it came, not at the end
    assert (second.body, second.end) == (body_of(big), "close")


@pytest.mark.parametrize("size", [5000, SMALL_BODY * 3])
async def test_a_gzipped_answer_is_copied_as_the_service_sent_it(front: Front, size: int) -> None:
    _, headers, raw = await fetch(f"{front.url}/json?size={size}&gzip", accept="gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == body_of(size)
    [tee] = front.tees
    assert (tee.body, tee.end) == (body_of(size), "close")


async def test_bodyless_answers_are_whole_and_empty(front: Front) -> None:
    status, _, raw = await fetch(f"{front.url}/empty")
    assert (status, raw) == (204, b"")
    status, headers, raw = await fetch(f"{front.url}/json?size=5000", method="HEAD")
    assert (status, raw, headers["Content-Length"]) == (200, b"", "5000")
    assert [(t.body, t.end) for t in front.tees] == [(b"", "close"), (b"", "close")]


async def test_a_body_broken_off_is_aborted(front: Front) -> None:
    # Small and whole: the client gets an honest 502, nothing having been sent yet.
    status, _, _ = await fetch(f"{front.url}/small/x")
    assert status == 502
    # Streamed: the client's connection is cut, the copy aborted.
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(f"{front.url}/large/x")
    small, large = front.tees
    assert small.ends == ["abort"] and small.body == b""
    assert large.end == "abort" and 0 < len(large.body) < SMALL_BODY * 4


async def test_without_a_responder_the_proxy_streams_as_before(front: Front) -> None:
    status, _, raw = await fetch(f"{front.url}/json?size=5000&plain")
    assert (status, raw) == (200, body_of(5000))
    assert front.tees == []
