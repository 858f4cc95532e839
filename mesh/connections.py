"""Client connections a listener keeps open: how many, how many per address, how long idle.

An edge on the open internet has to bound what a client can hold without
sending anything useful. A connection costs the proxy a file descriptor and
buffers whatever it does; a client that opens thousands and trickles one
header byte at a time (the "slowloris" attack, ``slowhttptest -H``) would
otherwise keep them all, for as long as aiohttp's low-level server allows
(an hour by default). The bounds, as nginx and Envoy have them:

* **idle timeout**: a connection must deliver a complete request head within
  this time of opening, or of its previous response (aiohttp's
  ``keepalive_timeout``, which counts from the connection's start and is not
  extended by partial data); otherwise it is closed. This covers both an idle
  keep-alive connection and a head sent too slowly;
* **max connections**: open client connections at once, per listener and
  process; one more is closed as soon as it is accepted (so file descriptors
  stay bounded whatever the clients do) and counted as refused;
* **max connections per address**: the same, per client IP address (as
  nginx's ``limit_conn``), so that one address cannot take them all. Off by
  default: behind a load balancer every connection comes from its address.

:class:`ConnectionCounts` is the accounting (pure, tested without sockets);
:class:`LimitedServer` applies it to aiohttp's low-level server, through the
two calls its request handlers make on their server when a connection opens
and closes: nothing is added to a request's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from mesh.http.malformed import ProblemRequestHandler

REFUSED_TOTAL: Final = "max_connections"
"""Refusal reason: the listener had ``max_connections`` open."""
REFUSED_PER_ADDRESS: Final = "max_connections_per_address"
"""Refusal reason: the client's address had ``max_connections_per_address`` open."""
REFUSAL_REASONS: Final = (REFUSED_TOTAL, REFUSED_PER_ADDRESS)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The bounds of one listener's client connections (None: unbounded)."""

    idle_timeout: float | None = None
    """Seconds a connection may go without a complete request head; None: aiohttp's default."""
    max_connections: int | None = None
    max_connections_per_address: int | None = None


class ConnectionObserver(Protocol):
    """Told of every connection opened, closed and refused, and of every request the
    HTTP parser refused (metrics)."""

    def opened(self) -> None: ...

    def closed(self) -> None: ...

    def refused(self, reason: str) -> None: ...

    def malformed(self) -> None: ...


class ConnectionCounts:
    """Open connections, in all and per address, against their limits.

    :meth:`admit` either counts a new connection and returns None, or counts
    nothing and returns why it is refused; every admitted connection must be
    :meth:`release`\\ d exactly once.
    """

    __slots__ = ("_by_address", "_max_per_address", "_max_total", "open")

    def __init__(self, max_total: int | None, max_per_address: int | None) -> None:
        self._max_total = max_total
        self._max_per_address = max_per_address
        self._by_address: dict[str, int] = {}
        self.open = 0
        """Connections admitted and not released."""

    def admit(self, address: str) -> str | None:
        """Count a connection from ``address``, or return the refusal reason."""
        if self._max_total is not None and self.open >= self._max_total:
            return REFUSED_TOTAL
        if self._max_per_address is not None:
            held = self._by_address.get(address, 0)
            if held >= self._max_per_address:
                return REFUSED_PER_ADDRESS
            self._by_address[address] = held + 1
        self.open += 1
        return None

    def release(self, address: str) -> None:
        """Forget one admitted connection from ``address``."""
        self.open -= 1
        if self._max_per_address is not None:
            held = self._by_address.pop(address, 0) - 1
            if held > 0:
                self._by_address[address] = held

    def held_by(self, address: str) -> int:
        """Connections open from ``address`` (0 when per-address limits are off)."""
        return self._by_address.get(address, 0)


class _NoObserver:
    def opened(self) -> None:
        pass

    def closed(self) -> None:
        pass

    def refused(self, reason: str) -> None:
        pass

    def malformed(self) -> None:
        pass


class LimitedServer(web.Server):
    """aiohttp's low-level server, with its client connections bounded by ``limits``.

    A connection over a limit is closed before any byte of it is read (over
    TLS, once the handshake is done: the server sees it then). It never
    reaches the handler, so it has no request id, access-log line or span.
    Requests the HTTP parser refuses are answered with JSON problems
    (:mod:`mesh.http.malformed`).
    """

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        limits: ConnectionLimits,
        observer: ConnectionObserver | None = None,
        **kwargs: Any,
    ) -> None:
        if limits.idle_timeout is not None:
            kwargs["keepalive_timeout"] = limits.idle_timeout
        super().__init__(handler, **kwargs)
        self.counts = ConnectionCounts(limits.max_connections, limits.max_connections_per_address)
        self._by_address = limits.max_connections_per_address is not None
        self._observer = observer or _NoObserver()
        self._addresses: dict[RequestHandler, str] = {}

    def __call__(self) -> RequestHandler:
        """A request handler for a new connection (the server is its protocol factory)."""
        # aiohttp's own __call__ makes a plain RequestHandler from the same two fields.
        handler = ProblemRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.on_malformed = self._observer.malformed
        return handler

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        # The peer's address only when counted by it: looking it up is a system call.
        address = _address_of(transport) if self._by_address else ""
        reason = self.counts.admit(address)
        if reason is not None:
            # Not registered with the server: its connection_lost finds nothing to undo.
            self._observer.refused(reason)
            # Closed on the next turn of the loop, not now: the handler creates its task
            # after this returns, and on Python 3.11 that task's first step would run
            # after the close's connection_lost had cleared the handler, failing an
            # assertion in aiohttp and logging a traceback for every refusal. Deferred,
            # the task finds the connection forced closed and ends quietly. No data can
            # be read first: the callback is queued before the loop next polls sockets.
            self._loop.call_soon(handler.force_close)
            return
        self._addresses[handler] = address
        self._observer.opened()
        super().connection_made(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        address = self._addresses.pop(handler, None)
        if address is not None:
            self.counts.release(address)
            self._observer.closed()
        super().connection_lost(handler, exc)


def _address_of(transport: asyncio.BaseTransport) -> str:
    """The peer's IP address ("" when the transport has none, e.g. a Unix socket)."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return ""
