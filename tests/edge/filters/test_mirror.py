"""The mirror filter with real sockets: copies sent to a real shadow server through the
real transport, while the request goes on at once; every outcome counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import MappingProxyType

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer, make_mocked_request
from multidict import CIMultiDictProxy
from prometheus_client import CollectorRegistry

from demo.processes import free_port
from edge.filters.mirror import MirrorFilter
from edge.mirror.metrics import MirrorMetrics
from edge.mirror.policy import MirrorPolicy
from edge.mirror.shadow import Mirrors
from edge.routes import make_route
from mesh.exchange import Exchange
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.telemetry.propagation import parse_traceparent
from mesh.transport.fast import FastTransport
from tests.mesh.telemetry.support import Recorder, make_exchange

ROUTE = "orders:/api/orders"


@dataclass
class Shadow:
    """A real HTTP server taking the copies: ``/hang`` never answers (until released)."""

    seen: list[CIMultiDictProxy[str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers)
        self.arrived.set()
        if request.path.startswith("/api/orders/hang"):
            await self.release.wait()
        return web.Response(status=201, text="shadow's answer, thrown away")


@dataclass
class Rig:
    shadow: Shadow
    filter: MirrorFilter
    mirrors: Mirrors
    registry: CollectorRegistry

    def requests(self, outcome: str) -> float:
        labels = {"route": ROUTE, "service": "orders-v2", "outcome": outcome}
        return self.registry.get_sample_value("meshgate_mirror_requests_total", labels) or 0.0

    def responses(self, result: str) -> float:
        labels = {"route": ROUTE, "service": "orders-v2", "result": result}
        return self.registry.get_sample_value("meshgate_mirror_responses_total", labels) or 0.0

    def in_flight(self) -> float:
        return self.registry.get_sample_value("meshgate_mirror_in_flight") or 0.0


def snapshot_with(port: int | None) -> Snapshot:
    if port is None:
        return Snapshot()
    instance = Instance("orders-v2-1", "orders-v2", "127.0.0.1", port)
    return Snapshot(MappingProxyType({"orders-v2": ServiceEntry("orders-v2", (instance,))}))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    shadow = Shadow()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", shadow.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    transport = FastTransport(8)
    registry = CollectorRegistry()
    assert server.port is not None
    snapshot = snapshot_with(server.port)
    mirrors = Mirrors(transport, lambda: snapshot, MirrorMetrics(registry), connect_timeout=1.0)
    try:
        yield Rig(shadow, MirrorFilter(mirrors, None, roll=lambda: 0.0), mirrors, registry)
    finally:
        shadow.release.set()
        await mirrors.stop()
        await transport.close()
        await server.close()


def routed(policy: MirrorPolicy | None, path: str = "/api/orders/7") -> Exchange:
    """An exchange as routing leaves it, for a route with ``policy``."""
    ex = make_exchange({"Host": "shop.example:8080"}, path=path)
    route = make_route(prefix="/api/orders", service="orders", source="config", mirror=policy)
    ex.attrs["route"] = route
    ex.route = route.name
    ex.service = route.service
    ex.timeout = 5.0
    return ex


def policy(
    percent: float = 100, timeout: float | None = None, max_in_flight: int = 10
) -> MirrorPolicy:
    return MirrorPolicy("orders-v2", percent, 1024, timeout, max_in_flight)


async def primary(ex: Exchange) -> web.StreamResponse:
    return web.Response(text="primary")


async def test_the_copy_carries_the_request_as_sent_on_with_a_shadow_host(rig: Rig) -> None:
    ex = routed(policy())
    ex.upstream_headers["X-Env"] = "prod"  # a header change, already made
    ex.upstream_header_block = "X-User-Id: alice\r\nX-Auth-Method: jwt"  # identity headers
    response = await rig.filter(ex, primary)
    assert isinstance(response, web.Response) and response.text == "primary"
    await asyncio.wait_for(rig.shadow.arrived.wait(), 5)
    [got] = rig.shadow.seen
    assert got["Host"] == "shop.example-shadow:8080"
    assert (got["X-Env"], got["X-User-Id"], got["X-Auth-Method"]) == ("prod", "alice", "jwt")
    assert 4000 < int(got["X-Mesh-Deadline-Ms"]) <= 5000  # the request's own deadline
    assert ex.upstream_headers["Host"] == "shop.example:8080"  # the request's own, unchanged
    await asyncio.wait_for(rig.mirrors.settled(), 5)
    assert rig.requests("sent") == 1
    assert rig.responses("2xx") == 1
    assert rig.in_flight() == 0


async def test_a_route_without_mirror_and_an_unchosen_request_are_not_copied(rig: Rig) -> None:
    none = routed(None)
    assert await rig.filter(none, primary) is not None
    unchosen = routed(policy(percent=0))
    await rig.filter(unchosen, primary)
    await asyncio.sleep(0.05)
    assert rig.shadow.seen == []
    assert rig.requests("sent") == 0


async def test_a_hanging_shadow_neither_holds_the_request_nor_outlives_its_timeout(
    rig: Rig,
) -> None:
    ex = routed(policy(timeout=0.3), path="/api/orders/hang")
    started = time.monotonic()
    await rig.filter(ex, primary)
    assert time.monotonic() - started < 0.2  # the client's answer did not wait
    await asyncio.wait_for(rig.shadow.arrived.wait(), 5)
    assert rig.in_flight() == 1
    await asyncio.wait_for(rig.mirrors.settled(), 5)
    assert time.monotonic() - started < 2
    assert rig.responses("timeout") == 1
    assert (rig.in_flight(), rig.mirrors.in_flight(ROUTE)) == (0, 0)


async def test_copies_past_the_cap_are_dropped_not_queued(rig: Rig) -> None:
    for _ in range(3):
        await rig.filter(routed(policy(max_in_flight=2), path="/api/orders/hang"), primary)
    assert (rig.requests("sent"), rig.requests("dropped")) == (2, 1)
    assert rig.mirrors.in_flight(ROUTE) == 2
    rig.shadow.release.set()  # the shadow answers: the slots are free again
    await asyncio.wait_for(rig.mirrors.settled(), 5)
    assert rig.mirrors.in_flight(ROUTE) == 0
    await rig.filter(routed(policy(max_in_flight=2)), primary)
    assert rig.requests("sent") == 3


async def test_a_dead_shadow_is_counted_failed() -> None:
    registry = CollectorRegistry()
    transport = FastTransport(2)
    snapshot = snapshot_with(free_port())  # nothing listens there
    mirrors = Mirrors(transport, lambda: snapshot, MirrorMetrics(registry), connect_timeout=1.0)
    flt = MirrorFilter(mirrors, None, roll=lambda: 0.0)
    try:
        response = await flt(routed(policy()), primary)
        assert isinstance(response, web.Response) and response.text == "primary"
        await asyncio.wait_for(mirrors.settled(), 5)
    finally:
        await transport.close()
    labels = {"route": ROUTE, "service": "orders-v2"}
    count = registry.get_sample_value
    assert count("meshgate_mirror_requests_total", {**labels, "outcome": "sent"}) == 1
    assert count("meshgate_mirror_responses_total", {**labels, "result": "failed"}) == 1
    assert count("meshgate_mirror_in_flight") == 0


def with_body(ex: Exchange, body: bytes, length: int | None) -> Exchange:
    """``ex`` with a request body the client has sent whole: of declared ``length``, or
    chunked when None."""
    payload = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16)
    payload.feed_data(body)
    payload.feed_eof()
    headers = {"Content-Length": str(length)} if length is not None else {}
    headers |= {} if length is not None else {"Transfer-Encoding": "chunked"}
    ex.request = make_mocked_request(
        "POST", ex.path, headers={"Host": "shop.example:8080", **headers}, payload=payload
    )
    return ex


async def test_a_body_within_the_limit_is_read_once_and_sent_to_both(rig: Rig) -> None:
    ex = with_body(routed(policy()), b"x" * 1024, 1024)
    await rig.filter(ex, primary)
    assert ex.body == b"x" * 1024  # what the proxy sends, instead of the spent stream
    await asyncio.wait_for(rig.shadow.arrived.wait(), 5)
    await asyncio.wait_for(rig.mirrors.settled(), 5)
    assert rig.shadow.seen[0]["Content-Length"] == "1024"
    assert rig.requests("sent") == 1


@pytest.mark.parametrize(("size", "length"), [(1025, 1025), (10, None)], ids=["long", "chunked"])
async def test_a_long_or_chunked_body_streams_uncopied(
    rig: Rig, size: int, length: int | None
) -> None:
    ex = with_body(routed(policy()), b"x" * size, length)
    await rig.filter(ex, primary)
    assert ex.body is None  # left to stream to the service
    assert ex.request.content.is_eof() and not ex.request.content.at_eof()  # unread
    assert rig.requests("skipped_body") == 1
    assert rig.requests("sent") == 0


async def test_no_instance_of_the_shadow_is_counted_and_goes_on() -> None:
    registry = CollectorRegistry()
    transport = FastTransport(2)
    mirrors = Mirrors(transport, Snapshot, MirrorMetrics(registry), connect_timeout=1.0)
    flt = MirrorFilter(mirrors, None, roll=lambda: 0.0)
    response = await flt(routed(policy()), primary)
    await transport.close()
    assert isinstance(response, web.Response) and response.text == "primary"
    labels = {"route": ROUTE, "service": "orders-v2", "outcome": "no_instance"}
    assert registry.get_sample_value("meshgate_mirror_requests_total", labels) == 1


async def test_the_copy_has_its_own_span_under_the_requests_trace(rig: Rig) -> None:
    recorder = Recorder(sampler_ratio=1.0)
    ex = routed(policy())
    trace = recorder.tracing.start_request(ex)
    primary_line = ex.attempt_header_block
    await rig.filter(ex, primary)
    await asyncio.wait_for(rig.shadow.arrived.wait(), 5)
    await asyncio.wait_for(rig.mirrors.settled(), 5)
    assert ex.attempt_header_block == primary_line  # the request's own context untouched
    sent = parse_traceparent(rig.shadow.seen[0]["traceparent"])
    assert sent is not None and sent.sampled and sent.trace_id == trace.trace_id
    [span] = recorder.spans
    assert span.context.span_id == sent.span_id
    assert span.parent is not None and span.parent.span_id == trace.span_id
    assert (span.attributes or {})["meshgate.mirror"] is True


async def test_an_unsampled_copy_gets_a_fresh_parent_id_in_the_same_trace(rig: Rig) -> None:
    recorder = Recorder(sampler_ratio=0.0)
    ex = routed(policy())
    recorder.tracing.start_request(ex)
    primary_line = ex.attempt_header_block
    await rig.filter(ex, primary)
    await asyncio.wait_for(rig.shadow.arrived.wait(), 5)
    assert ex.attempt_header_block == primary_line
    sent = parse_traceparent(rig.shadow.seen[0]["traceparent"])
    ours = parse_traceparent(primary_line.split(": ", 1)[1])
    assert sent is not None and ours is not None
    assert sent.trace_id == ours.trace_id and not sent.sampled
    assert sent.span_id != ours.span_id
    assert recorder.spans == ()
