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
from dataclasses import dataclass
from typing import Any, Protocol, cast

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from mesh.exchange import Exchange
from mesh.http.headers import end_to_end
from mesh.http.upgrade import UPGRADE
from mesh.transport.base import SwitchedConnection, UpstreamResponse

# Bytes waiting for a client that is slow to take them before the upstream is not read.
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
    """What both directions share with the pump, which waits for the tunnel's end."""

    loop: asyncio.AbstractEventLoop
    last_active: float
    wake: asyncio.Future[None] | None = None
    client_closed: bool = False
    to_upstream: int = 0
    to_client: int = 0

    def poke(self) -> None:
        waiter = self.wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _UpstreamSide(asyncio.Protocol):
    """The upstream connection's protocol once switched.

    Its bytes go straight to the client's transport as they arrive (held only until
    the 101 is out). When more than :data:`HIGH_WATER` waits to be sent to the client,
    the upstream is no longer read until the pump has seen the client drain; while
    the upstream does not take writes, the client is not read.
    """

    def __init__(self, flow: _Flow, switched: SwitchedConnection) -> None:
        self.flow = flow
        self.transport = switched.transport
        self.client: asyncio.Transport | None = None
        self.held: list[bytes] = [switched.early] if switched.early else []
        self.closed = switched.closed or switched.transport.is_closing()
        self.paused = False
        """Reading the upstream paused until the client drains (the pump resumes it)."""

    def attach(self, client: asyncio.Transport) -> None:
        """The 101 is out: send what was held, and from now on every byte at once."""
        self.client = client
        held, self.held = self.held, []
        if held:
            self._send(client, b"".join(held))

    def resume(self) -> None:
        self.paused = False
        if not self.closed:
            self.transport.resume_reading()

    def _send(self, client: asyncio.Transport, data: bytes) -> None:
        if client.is_closing():
            return  # the client is gone: the tunnel is ending (asyncio warns past 5 writes)
        flow = self.flow
        flow.to_client += len(data)
        client.write(data)
        if client.get_write_buffer_size() > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
            flow.poke()

    def data_received(self, data: bytes) -> None:
        flow = self.flow
        flow.last_active = flow.loop.time()
        client = self.client
        if client is not None:
            self._send(client, data)
            return
        self.held.append(data)
        if not self.paused and sum(map(len, self.held)) > HIGH_WATER:
            self.paused = True  # resumed by attach()'s first drain in the pump
            self.transport.pause_reading()

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
    side = _UpstreamSide(flow, switched)
    # Before any await: from now on the upstream's bytes are the tunnel's.
    switched.transport.set_protocol(side)
    observer.opened()
    reason = CLOSED_CANCELLED
    try:
        response = switched_response(ex, upstream)
        ex.apply_response_headers(response)
        await response.prepare(request)
        client = request.transport
        if client is None:  # gone while the 101 was being sent
            reason = CLOSED_BY_CLIENT
            return response
        side.attach(client)
        # aiohttp's RequestHandler hands every later byte to a "payload parser";
        # set_parser also feeds it what the client sent after the request head.
        cast(Any, request.protocol).set_parser(_ClientSide(flow, switched.transport))
        reason = await _until_ended(flow, side, request.writer, idle_timeout)
        if reason == CLOSED_IDLE:
            # Quiet both ways, maybe a client that stopped reading: what is still
            # buffered for it would wait for ever; drop it with the connection.
            client.abort()
        return response
    finally:
        switched.transport.close()  # after what is buffered for it has been written
        observer.closed(reason, flow.to_upstream, flow.to_client)


async def _until_ended(
    flow: _Flow, side: _UpstreamSide, client: AbstractStreamWriter, idle_timeout: float
) -> str:
    """Wait for the tunnel's end and say why; meanwhile resume reading the upstream
    each time the client has drained what it was sent."""
    loop = flow.loop
    while True:
        if side.paused:
            # Nothing moves while the client does not read (the upstream is paused):
            # that is quiet too, so the idle timeout bounds the wait.
            try:
                async with asyncio.timeout_at(flow.last_active + idle_timeout):
                    await client.drain()
            except ConnectionResetError:
                return CLOSED_BY_CLIENT
            except TimeoutError:
                if loop.time() >= flow.last_active + idle_timeout:
                    return CLOSED_IDLE
                continue  # the client sent meanwhile: not quiet, wait again
            side.resume()
            continue
        if side.closed:
            return CLOSED_BY_UPSTREAM
        if flow.client_closed:
            return CLOSED_BY_CLIENT
        quiet_until = flow.last_active + idle_timeout
        if loop.time() >= quiet_until:
            return CLOSED_IDLE
        flow.wake = loop.create_future()
        try:
            async with asyncio.timeout_at(quiet_until):
                await flow.wake
        except TimeoutError:
            pass  # the loop looks again: a byte may have come meanwhile
        finally:
            flow.wake = None
