"""The proxy's bound on a service's requests in flight (``Proxy.concurrency``): a request
counts until its body has been relayed to the end, one over the limit is refused at once
with a problem and a span event. Real sockets, the real proxy and fast transport, a real
upstream whose body waits for the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.trace import SpanKind

from mesh.balancing import Balancer
from mesh.exchange import Exchange
from mesh.ingress import Ingress
from mesh.proxy import Proxy, ProxySettings
from mesh.resilience.concurrency import ServiceConcurrency
from mesh.server import Listener
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.telemetry.tracing import EVENT_UPSTREAM_OVERFLOW
from mesh.transport.fast import FastTransport
from tests.mesh.telemetry.support import Recorder, make_exchange


@dataclass
class Front:
    url: str
    counts: ServiceConcurrency
    release: asyncio.Event
    started: asyncio.Event
    relayed: asyncio.Event
    """Set when the proxy has returned a relayed (200) answer: its counts left by then."""


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    release, started, relayed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first part,")
        started.set()
        await release.wait()
        await response.write(b" the rest")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/slow", slow_body)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    instance = Instance("svc-1", "svc", "127.0.0.1", port)
    snapshot = Snapshot({"svc": ServiceEntry("svc", (instance,))})
    counts = ServiceConcurrency(1)
    transport = FastTransport()
    proxy = Proxy(
        transport, lambda: snapshot, Balancer("round_robin"), ProxySettings(), concurrency=counts
    )

    async def route(ex: Exchange) -> web.StreamResponse:
        ex.service = "svc"
        response = await proxy(ex)
        if response.status == 200:
            relayed.set()
        return response

    listener = Listener("front", Ingress(lambda: route), "127.0.0.1", 0, shutdown_timeout=0.5)
    await listener.start()
    try:
        yield Front(f"http://127.0.0.1:{listener.port}", counts, release, started, relayed)
    finally:
        release.set()
        await listener.stop()
        await transport.close()
        await runner.cleanup()


async def test_a_request_counts_until_its_body_is_relayed_to_the_end(front: Front) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{front.url}/slow") as first:
            assert first.status == 200
            await front.started.wait()  # headers and the first part relayed, the rest not yet
            assert front.counts.active == {"svc": 1}

            async with session.get(f"{front.url}/slow") as second:
                assert second.status == 503
                assert second.headers["Retry-After"] == "1"
                problem = json.loads(await second.read())
            assert problem["type"].endswith("/upstream-overloaded")
            assert (problem["service"], problem["limit"]) == ("svc", 1)
            assert front.counts.active == {"svc": 1}

            front.release.set()
            assert await first.read() == b"first part, the rest"
        await front.relayed.wait()  # the proxy returns just after the last byte went out
        assert front.counts.active == {}
        assert front.counts.overflows == {"svc": 1}
        front.release.clear()
        front.release.set()
        async with session.get(f"{front.url}/slow") as third:
            assert (third.status, await third.read()) == (200, b"first part, the rest")


async def test_a_refusal_is_an_event_on_the_requests_span() -> None:
    recorder = Recorder(sampler_ratio=1.0)
    instance = Instance("svc-1", "svc", "127.0.0.1", 9)  # never called: refused before
    snapshot = Snapshot({"svc": ServiceEntry("svc", (instance,))})
    counts = ServiceConcurrency(1)
    proxy = Proxy(
        FastTransport(), lambda: snapshot, Balancer("round_robin"), ProxySettings(),
        concurrency=counts,
    )  # fmt: skip
    assert counts.enter("svc") is None  # the one request the service may have, taken
    ex = make_exchange(path="/slow")
    ex.service = "svc"
    ex.trace = recorder.tracing.start_request(ex)
    response = await proxy(ex)
    ex.trace.end_server(ex, response.status, None, None)
    assert response.status == 503 and ex.instance is None
    server = next(s for s in recorder.spans if s.kind is SpanKind.SERVER)
    assert [(e.name, dict(e.attributes or {})) for e in server.events] == [
        (EVENT_UPSTREAM_OVERFLOW, {"meshgate.service": "svc", "meshgate.limit": 1})
    ]
    assert counts.active == {"svc": 1}  # the refused request took nothing
