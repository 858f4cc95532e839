"""Tunnels: once an upstream answers 101 Switching Protocols, the client's connection and
the upstream's are joined byte for byte until one side closes or both go quiet.

Contract (:func:`run_tunnel`):

* the client gets the 101 with the upstream's end-to-end headers, ``Connection:
  Upgrade`` and the upstream's ``Upgrade``, and the exchange's response headers
  (request id, trace response);
* bytes go both ways unchanged as they arrive: the proxy never parses the new
  protocol, so whatever the two ends negotiated (WebSocket subprotocols and
  extensions) works end to end, as in Envoy's and nginx's upgrade tunnels;
* memory stays bounded both ways: a side that stops reading makes the proxy stop
  reading the other side (the kernel's buffers then slow the sender);
* one side closing, or failing, closes the other once what it already sent has been
  written on; no byte either way for ``idle_timeout`` closes both;
* the handler returns when the tunnel has ended; cancelling it (shutdown past its
  grace period) closes both sides.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, cast

from aiohttp import web

from mesh.exchange import Exchange
from mesh.http.headers import end_to_end
from mesh.http.upgrade import UPGRADE
from mesh.transport.base import SwitchedConnection, UpstreamResponse

# Upstream bytes held for a client that is slow to take them before reading pauses.
HIGH_WATER = 256 * 1024

CLOSED_BY_CLIENT = "client_closed"
CLOSED_BY_UPSTREAM = "upstream_closed"
CLOSED_IDLE = "idle_timeout"
CLOSED_CANCELLED = "cancelled"
CLOSE_REASONS = (CLOSED_BY_CLIENT, CLOSED_BY_UPSTREAM, CLOSED_IDLE, CLOSED_CANCELLED)
"""Why a tunnel ended, as :meth:`TunnelObserver.closed` is told."""


class TunnelObserver(Protocol):
    """What is told about a tunnel's life (metrics)."""

    def opened(self) -> None: ...

    def closed(self, reason: str, to_upstream: int, to_client: int) -> None:
        """The tunnel ended for ``reason`` (one of :data:`CLOSE_REASONS`), having
        carried ``to_upstream`` bytes from the client and ``to_client`` back."""


@dataclass(slots=True)
class _Flow:
    """State both directions share, read by the pump."""

    loop: asyncio.AbstractEventLoop
    last_active: float
    wake: asyncio.Future[None] | None = None
    client_closed: bool = False
    to_upstream: int = 0

    def poke(self) -> None:
        waiter = self.wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _UpstreamSide(asyncio.Protocol):
    """The upstream connection's protocol once switched: buffers what it sends for the
    pump, and pauses the client's reading while the upstream does not take writes."""

    def __init__(
        self, flow: _Flow, switched: SwitchedConnection, client: asyncio.Transport | None
    ) -> None:
        self.flow = flow
        self.transport = switched.transport
        self.client = client
        self.pieces: deque[bytes] = deque([switched.early] if switched.early else [])
        self.buffered = len(switched.early)
        self.closed = switched.closed or switched.transport.is_closing()
        self.paused = False

    def take(self) -> bytes:
        """Everything buffered, as one piece (b"" for nothing); resumes reading."""
        pieces = self.pieces
        piece = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self.buffered = 0
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return piece

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        self.buffered += len(data)
        self.flow.last_active = self.flow.loop.time()
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self.flow.poke()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.flow.poke()

    def pause_writing(self) -> None:
        client = self.client
        if client is not None and not client.is_closing():
            client.pause_reading()

    def resume_writing(self) -> None:
        client = self.client
        if client is not None and not client.is_closing():
            client.resume_reading()


class _ClientSide:
    """Takes the client connection's bytes once switched, in place of aiohttp's HTTP
    parser (``RequestHandler.set_parser``), and writes them upstream."""

    def __init__(self, flow: _Flow, upstream: asyncio.Transport) -> None:
        self.flow = flow
        self.upstream = upstream

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        flow = self.flow
        flow.to_upstream += len(data)
        flow.last_active = flow.loop.time()
        if not self.upstream.is_closing():
            self.upstream.write(data)
        return False, b""  # (end of message, unparsed rest): a tunnel has neither

    def feed_eof(self) -> None:
        self.flow.client_closed = True
        self.flow.poke()


def switched_response(ex: Exchange, upstream: UpstreamResponse) -> web.StreamResponse:
    """The 101 for the client: the upstream's end-to-end headers, and the two
    hop-by-hop ones a switch needs, which :func:`end_to_end` removed."""
    response = web.StreamResponse(status=101, reason=upstream.reason)
    response.headers.extend(end_to_end(upstream.headers))
    response.headers["Connection"] = "Upgrade"
    response.headers[UPGRADE] = upstream.headers.get(UPGRADE, ex.upgrade or "")
    response.force_close()  # the connection ends with the tunnel
    return response


async def run_tunnel(
    ex: Exchange, upstream: UpstreamResponse, idle_timeout: float, observer: TunnelObserver
) -> web.StreamResponse:
    """Join the client to ``upstream`` (a 101 answer) until the tunnel ends; see the
    module docstring. Returns the 101 response, already sent."""
    switched = upstream.detach()
    request = ex.request
    loop = asyncio.get_running_loop()
    flow = _Flow(loop, loop.time())
    side = _UpstreamSide(flow, switched, request.transport)
    # Before any await: from now on the upstream's bytes are the tunnel's.
    switched.transport.set_protocol(side)
    observer.opened()
    reason = CLOSED_CANCELLED
    to_client = 0
    try:
        response = switched_response(ex, upstream)
        ex.apply_response_headers(response)
        await response.prepare(request)
        # aiohttp's RequestHandler hands every later byte to a "payload parser";
        # set_parser also feeds it what the client sent after the request head.
        cast(Any, request.protocol).set_parser(_ClientSide(flow, switched.transport))
        reason, to_client = await _pump(flow, side, response, idle_timeout)
        return response
    finally:
        switched.transport.close()  # after what is buffered for it has been written
        observer.closed(reason, flow.to_upstream, to_client)


async def _pump(
    flow: _Flow, side: _UpstreamSide, response: web.StreamResponse, idle_timeout: float
) -> tuple[str, int]:
    """Copy upstream bytes to the client until the tunnel ends: (why, bytes copied)."""
    loop = flow.loop
    sent = 0
    while True:
        if side.buffered:
            piece = side.take()
            try:
                await response.write(piece)
            except ConnectionResetError:
                return CLOSED_BY_CLIENT, sent
            sent += len(piece)
            continue
        if side.closed:
            return CLOSED_BY_UPSTREAM, sent
        if flow.client_closed:
            return CLOSED_BY_CLIENT, sent
        quiet_until = flow.last_active + idle_timeout
        if loop.time() >= quiet_until:
            return CLOSED_IDLE, sent
        flow.wake = loop.create_future()
        try:
            async with asyncio.timeout_at(quiet_until):
                await flow.wake
        except TimeoutError:
            pass  # the loop looks again: a byte may have come meanwhile
        finally:
            flow.wake = None
