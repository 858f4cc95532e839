"""Answers gzipped by the proxy on their way to the client: real sockets, real upstream.

The ingress, proxy and fast transport are the real ones; the upstream is an aiohttp
app with answers of each kind (small and whole, large and streamed, unknown length,
already encoded, an event stream). The client reads raw bytes (no decompression).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from mesh.balancing import Balancer
from mesh.exchange import Exchange
from mesh.http.compression import ResponseCompression
from mesh.ingress import Ingress
from mesh.proxy import SMALL_BODY, Proxy, ProxySettings
from mesh.server import Listener
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.telemetry.metrics import ProxyMetrics
from mesh.telemetry.upstream import UpstreamTelemetry
from mesh.transport.fast import FastTransport

TYPES = ("application/json", "text/html", "text/event-stream")  # the last: never compressed


def body_of(size: int) -> bytes:
    """Compressible and not trivially so: JSON-ish text with varying numbers."""
    text = "".join(f'{{"n":{i},"sq":{i * i}}},' for i in range(size // 10 + 1))
    return text.encode()[:size]


async def upstream_app() -> web.Application:
    app = web.Application()

    async def json_body(request: web.Request) -> web.Response:
        data = body_of(int(request.query["size"]))
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        return web.Response(body=data, content_type="application/json", headers={"ETag": etag})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)  # no length: chunked
        for i in range(10):
            await response.write(body_of(10_000) + str(i).encode())
        await response.write_eof()
        return response

    async def encoded(_: web.Request) -> web.Response:
        return web.Response(
            body=b"\x0b\x02\x80already-brotli" * 200,
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        )

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: " + body_of(4000) + b"\n\n")
        await response.write_eof()
        return response

    app.router.add_get("/json", json_body)
    app.router.add_get("/stream", stream)
    app.router.add_get("/encoded", encoded)
    app.router.add_get("/events", events)
    return app


@dataclass
class Front:
    url: str
    compressed: list[int]


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    runner = web.AppRunner(await upstream_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    snapshot = Snapshot(
        {"svc": ServiceEntry("svc", (Instance("svc-1", "svc", "127.0.0.1", port),))}
    )
    transport = FastTransport()
    proxy = Proxy(
        transport,
        lambda: snapshot,
        Balancer("round_robin"),
        ProxySettings(),
        telemetry=UpstreamTelemetry(ProxyMetrics(CollectorRegistry(), "edge")),
    )
    compressed: list[int] = []
    policy = ResponseCompression(TYPES, 1024, lambda: compressed.append(1))

    async def route(ex: Exchange) -> web.StreamResponse:
        ex.service = "svc"
        if "plain" not in ex.query:  # ?plain: as a route with compression off
            ex.compression = policy
        return await proxy(ex)

    listener = Listener("front", Ingress(lambda: route), "127.0.0.1", 0, shutdown_timeout=0.5)
    await listener.start()
    try:
        yield Front(f"http://127.0.0.1:{listener.port}", compressed)
    finally:
        await listener.stop()
        await transport.close()
        await runner.cleanup()


async def fetch(
    url: str, accept: str | None = "gzip", method: str = "GET"
) -> tuple[int, CIMultiDict[str], bytes]:
    """Status, headers and the body's bytes as sent (``accept``: the Accept-Encoding)."""
    headers = {"Accept-Encoding": accept} if accept is not None else {}
    async with (
        aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=["Accept-Encoding"]) as s,
        s.request(method, url, headers=headers) as resp,
    ):
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def test_a_whole_answer_is_gzipped_with_its_length_and_a_weak_etag(front: Front) -> None:
    status, headers, raw = await fetch(f"{front.url}/json?size=5000")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert int(headers["Content-Length"]) == len(raw) < 5000
    assert gzip.decompress(raw) == body_of(5000)
    assert "Accept-Encoding" in headers["Vary"]
    assert headers["ETag"].startswith('W/"')
    assert front.compressed == [1]


async def test_a_streamed_answer_stays_streamed_and_is_gzipped(front: Front) -> None:
    big = SMALL_BODY + 10_000  # past the whole-body path: streamed with a known length
    status, headers, raw = await fetch(f"{front.url}/json?size={big}")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "Content-Length" not in headers
    assert headers["Transfer-Encoding"] == "chunked"
    assert gzip.decompress(raw) == body_of(big)

    status, headers, raw = await fetch(f"{front.url}/stream")  # no length at all
    assert headers["Content-Encoding"] == "gzip"
    expected = b"".join(body_of(10_000) + str(i).encode() for i in range(10))
    assert gzip.decompress(raw) == expected
    assert len(raw) < len(expected) / 2


@pytest.mark.parametrize("accept", [None, "br", "gzip;q=0", "identity"])
async def test_clients_that_do_not_take_gzip_get_the_bytes_as_sent(
    front: Front, accept: str | None
) -> None:
    status, headers, raw = await fetch(f"{front.url}/json?size=5000", accept)
    assert status == 200
    assert "Content-Encoding" not in headers
    assert raw == body_of(5000)
    assert headers["Vary"] == "Accept-Encoding"  # a cache must still tell them apart
    assert not headers["ETag"].startswith("W/")
    assert front.compressed == []


async def test_answers_left_alone(front: Front) -> None:
    _, headers, raw = await fetch(f"{front.url}/json?size=500")  # under min_size
    assert "Content-Encoding" not in headers and raw == body_of(500)
    _, headers, raw = await fetch(f"{front.url}/encoded")
    assert headers["Content-Encoding"] == "br"
    assert raw == b"\x0b\x02\x80already-brotli" * 200
    _, headers, raw = await fetch(f"{front.url}/events")
    assert "Content-Encoding" not in headers
    assert raw.startswith(b"data: ")
    _, headers, raw = await fetch(f"{front.url}/json?size=5000&plain")  # route: off
    assert "Content-Encoding" not in headers and "Vary" not in headers
    status, headers, raw = await fetch(f"{front.url}/json?size=5000", method="HEAD")
    assert (status, raw) == (200, b"")
    assert "Content-Encoding" not in headers
    assert headers["Content-Length"] == "5000"
    assert front.compressed == []


async def test_many_gzipped_answers_on_one_connection(front: Front) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for size in (2000, 70_000, 3000, 200_000):
            async with s.get(
                f"{front.url}/json?size={size}", headers={"Accept-Encoding": "gzip"}
            ) as r:
                assert r.headers["Content-Encoding"] == "gzip"
                assert gzip.decompress(await r.read()) == body_of(size)
    assert len(front.compressed) == 4
