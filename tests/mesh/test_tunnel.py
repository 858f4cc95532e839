"""Tunnels after a 101, on real sockets: a raw client, the proxy (ingress, proxy, fast
transport) and a scripted raw upstream, so each test decides who sends and who closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from mesh.balancing import Balancer
from mesh.connections import ConnectionLimits
from mesh.exchange import Exchange
from mesh.ingress import Ingress
from mesh.proxy import Proxy, ProxySettings
from mesh.server import Listener
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.telemetry.metrics import ProxyMetrics
from mesh.telemetry.upstream import UpstreamTelemetry
from mesh.transport.fast import FastTransport
from tests.integration.harness import read_until_closed

UPGRADE_HEAD = (
    b"GET /chat HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
)
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Front:
    port: int
    listener: Listener
    registry: CollectorRegistry
    heads: list[bytes]
    """The request heads the upstream received."""

    def closed(self, reason: str) -> float:
        value = self.registry.get_sample_value(
            "meshgate_tunnels_closed_total", {"role": "edge", "service": "svc", "reason": reason}
        )
        return value or 0.0

    def connections(self) -> float:
        """Client connections the proxy holds open now."""
        labels = {"role": "edge", "listener": "front"}
        return self.registry.get_sample_value("meshgate_connections", labels) or 0.0

    def carried(self, direction: str) -> float:
        labels = {"role": "edge", "service": "svc", "direction": direction}
        return self.registry.get_sample_value("meshgate_tunnel_bytes_total", labels) or 0.0


@pytest.fixture
def script() -> list[Script]:
    """What the upstream does after reading a request head (set by each test)."""
    return []


@pytest.fixture
async def front(request: pytest.FixtureRequest, script: list[Script]) -> AsyncIterator[Front]:
    heads: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        try:
            await script[0](reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    snapshot = Snapshot(
        {"svc": ServiceEntry("svc", (Instance("svc-1", "svc", "127.0.0.1", port),))}
    )
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    transport = FastTransport()
    idle = getattr(request, "param", 30.0)
    proxy = Proxy(
        transport,
        lambda: snapshot,
        Balancer("round_robin"),
        ProxySettings(tunnel_idle_timeout=idle),
        telemetry=UpstreamTelemetry(metrics),
    )

    async def route(ex: Exchange) -> web.StreamResponse:
        ex.service = "svc"
        return await proxy(ex)

    # A short idle_timeout for connections that have no request in flight: a tunnel is
    # one request, however long it lasts, so it must not apply to one.
    listener = Listener(
        "front",
        Ingress(lambda: route),
        "127.0.0.1",
        0,
        shutdown_timeout=0.5,
        connections=ConnectionLimits(idle_timeout=0.3),
        connection_observer=metrics.connection_observer("front"),
    )
    await listener.start()
    try:
        yield Front(listener.port, listener, registry, heads)
    finally:
        await listener.stop()
        await transport.close()
        server.close()


async def _switch(port: int, early: bytes = b"") -> tuple[bytes, asyncio.StreamReader, Any]:
    """Connect, send the upgrade request (and ``early`` right behind it), read the 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE_HEAD + early)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head, reader, writer


async def test_upstream_bytes_reach_the_client_and_its_close_ends_the_tunnel(
    front: Front, script: list[Script]
) -> None:
    async def upstream(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED + b"early")  # the new protocol's first bytes, with the head
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"-more")
        await writer.drain()

    script.append(upstream)
    head, reader, writer = await _switch(front.port)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
    assert headers["connection"] == "Upgrade" and headers["upgrade"] == "websocket"
    assert len(headers["x-request-id"]) >= 8
    assert b"upgrade: websocket" in front.heads[0].lower()  # asked upstream too
    _, data = await read_until_closed(reader, 5)
    writer.close()
    assert data == b"early-more"
    assert front.closed("upstream_closed") == 1
    assert front.carried("to_client") == len(b"early-more")


async def test_client_bytes_reach_the_upstream_and_its_close_ends_the_tunnel(
    front: Front, script: list[Script]
) -> None:
    received: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        await writer.drain()
        received.append(await asyncio.wait_for(reader.read(), 5))  # until the proxy closes

    script.append(upstream)
    # "first" goes right behind the request head, before the 101: it must not be lost.
    _, _, writer = await _switch(front.port, early=b"first")
    writer.write(b"-second")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.05)
    assert received == [b"first-second"]
    assert front.closed("client_closed") == 1
    assert front.carried("to_upstream") == len(b"first-second")


async def test_a_tunnel_outlives_the_listeners_idle_timeout(
    front: Front, script: list[Script]
) -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        while data := await reader.read(64):
            writer.write(data)

    script.append(upstream)
    _, reader, writer = await _switch(front.port)
    for i in range(6):  # 1.2 s of traffic, four times the listener's idle_timeout
        await asyncio.sleep(0.2)
        writer.write(b"%d" % i)
        assert await asyncio.wait_for(reader.read(64), 2) == b"%d" % i
    writer.close()


@pytest.mark.parametrize("front", [1.0], indirect=True)
async def test_a_quiet_tunnel_is_closed_on_both_sides(front: Front, script: list[Script]) -> None:
    upstream_saw_eof = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        await writer.drain()
        # Three ticks 0.5 s apart: 1.5 s in all, longer than the 1 s idle timeout, so
        # the last ones only arrive if each tick started the idle clock again.
        for _ in range(3):
            await asyncio.sleep(0.5)
            writer.write(b"tick")
        if await reader.read() == b"":  # then quiet: the proxy closes
            upstream_saw_eof.set()

    script.append(upstream)
    _, reader, writer = await _switch(front.port)
    _, data = await read_until_closed(reader, 10)
    writer.close()
    assert data == b"tick" * 3
    await asyncio.wait_for(upstream_saw_eof.wait(), 2)
    assert front.closed("idle_timeout") == 1


async def test_shutdown_closes_open_tunnels_after_its_grace_period(
    front: Front, script: list[Script]
) -> None:
    upstream_saw_eof = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        await writer.drain()
        if await reader.read() == b"":
            upstream_saw_eof.set()

    script.append(upstream)
    _, reader, writer = await _switch(front.port)
    # A grace period of 0.5 s, then what is open is cancelled (not waited for).
    await asyncio.wait_for(front.listener.stop(), 10)
    _, data = await read_until_closed(reader, 5)
    writer.close()
    assert data == b""
    await asyncio.wait_for(upstream_saw_eof.wait(), 2)
    assert front.closed("cancelled") == 1


async def test_a_101_nobody_asked_for_is_a_bad_gateway(front: Front, script: list[Script]) -> None:
    async def upstream(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        await writer.drain()

    script.append(upstream)
    reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
    writer.write(b"GET /plain HTTP/1.1\r\nHost: front\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 502")
    assert front.closed("upstream_closed") == 0


def _kernel_allowance() -> int:
    """The most bytes the kernel may buffer between two ends through the proxy: a send
    and a receive buffer on each of its two connections, at their largest autotuned
    sizes (``tcp_wmem``/``tcp_rmem`` maxima)."""
    rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return 2 * (rmem + wmem)


async def test_a_side_that_does_not_read_stops_the_other_side(
    front: Front, script: list[Script]
) -> None:
    """Neither direction is buffered in the proxy without bound: while one end does not
    read, what the other end writes stays in that end's own send buffer, except what
    the kernel's socket buffers hold and a few pieces in the proxy (4 MiB allowed)."""
    piece = bytes(range(256)) * 4096  # 1 MiB
    allowance = _kernel_allowance() + 4 * len(piece)
    count = allowance // len(piece) + 32
    size = count * len(piece)
    measured = asyncio.Event()
    upstream_may_read = asyncio.Event()
    upstream_backlog: list[int] = []
    got = bytearray()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        for _ in range(count):
            writer.write(piece)  # no drain: the buffer keeps what the proxy did not take
        await asyncio.sleep(0.5)  # the client reads nothing meanwhile
        upstream_backlog.append(writer.transport.get_write_buffer_size())
        measured.set()
        await writer.drain()
        await upstream_may_read.wait()
        while len(got) < size and (chunk := await reader.read(1 << 20)):
            got.extend(chunk)

    script.append(upstream)
    _, reader, writer = await _switch(front.port)
    await asyncio.wait_for(measured.wait(), 10)
    # Without backpressure the proxy would have read it all (a backlog near 0).
    assert upstream_backlog[0] > size - allowance
    received = bytearray()
    while len(received) < size:
        chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
        assert chunk, "closed early"
        received.extend(chunk)
    assert received == piece * count  # all of it, in order

    for _ in range(count):
        writer.write(piece)
    await asyncio.sleep(0.5)  # the upstream reads nothing meanwhile
    assert writer.transport.get_write_buffer_size() > size - allowance
    upstream_may_read.set()
    await asyncio.wait_for(writer.drain(), 10)
    for _ in range(100):
        if len(got) == size:
            break
        await asyncio.sleep(0.05)
    writer.close()
    assert got == piece * count


@pytest.mark.parametrize("front", [1.0], indirect=True)
async def test_a_client_that_never_reads_is_closed_as_idle(
    front: Front, script: list[Script]
) -> None:
    """The upstream is paused while the client does not read, so nothing moves: that is
    quiet, and the idle timeout ends it (rather than a wait for a drain forever)."""
    upstream_saw_eof = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SWITCHED)
        writer.write(bytes(_kernel_allowance() + 16 * 1024 * 1024))  # more than fits anywhere
        # The proxy closes with our bytes unread in its socket: a reset, read as b"".
        if (await read_until_closed(reader, 30))[1] == b"":
            upstream_saw_eof.set()

    script.append(upstream)
    _, _, writer = await _switch(front.port)  # and never read from
    await asyncio.wait_for(upstream_saw_eof.wait(), 10)  # the proxy gave up on the client
    assert front.closed("idle_timeout") == 1
    # The client's connection is dropped too, not kept open to flush what it never reads.
    for _ in range(100):
        if front.connections() == 0:
            break
        await asyncio.sleep(0.02)
    assert front.connections() == 0
    writer.close()
