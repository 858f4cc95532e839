"""One port for TLS and plain HTTP: the connection's first byte decides which it gets.

A sidecar taking mesh TLS has to answer callers that do not speak it yet:
during a migration (``mesh_tls.mode: permissive``, as Istio's PERMISSIVE and
Consul's permissive mutual TLS mode) it serves them, and otherwise it tells
them, in HTTP, why it will not, instead of failing a TLS handshake they never
started. Envoy does this with its TLS inspector listener filter; here it is
an aiohttp site (:class:`TlsSniffingSite`) that accepts connections itself,
waits for the first byte without reading it (``MSG_PEEK``), and hands the
socket to the listener's HTTP server with TLS when that byte starts a TLS
record (:func:`starts_tls`) and without it otherwise. Only public event-loop
calls are used (``sock_accept``, ``add_reader``, ``connect_accepted_socket``),
so it works on asyncio's loop and on uvloop alike.

Its cost is per connection, not per request: one task, one readiness wait and
one ``recv`` before the connection is handed over; the mesh's callers keep
their connections open, so a request rarely pays it.

What a connection became is told to ``on_connection`` with one of
:data:`OUTCOMES`: ``tls`` (handshake done), ``tls_refused`` (the handshake
failed: no client certificate, another CA, a protocol error), ``plaintext``,
or ``no_data`` (closed, or silent for ``first_byte_timeout``, before its
first byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Final

from aiohttp import web

log = logging.getLogger(__name__)

TLS_HANDSHAKE_RECORD: Final = 0x16
"""The content type of a TLS record carrying a handshake message: a ClientHello
starts with it (RFC 8446 §5.1; TLS 1.0 to 1.3 alike). No HTTP request line can
start with this byte (methods are tokens of visible ASCII)."""

FIRST_BYTE_TIMEOUT: Final = 15.0
"""Seconds a new connection may stay silent before it is closed (Envoy's default
``listener_filters_timeout``)."""

OUTCOMES: Final = ("tls", "tls_refused", "plaintext", "no_data")

ACCEPT_ERROR_PAUSE: Final = 1.0
"""Seconds to stop accepting after accept() fails (out of file descriptors, say), as
asyncio's own accept loop does, instead of spinning on the error."""


def starts_tls(first: bytes) -> bool:
    """Whether a connection whose first byte is ``first`` is starting a TLS handshake."""
    return bool(first) and first[0] == TLS_HANDSHAKE_RECORD


def _resolve(future: asyncio.Future[None]) -> None:
    # A level-triggered reader may fire again before the waiting task runs.
    if not future.done():
        future.set_result(None)


class _AcceptingServer(asyncio.AbstractServer):
    """The listening socket and its accept loop, in the shape aiohttp's runner reads
    (``sockets`` for its addresses, ``close`` when the site stops)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock: socket.socket | None = sock
        self._loop = loop
        self.task: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._sock is None else (self._sock,)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._sock is not None

    async def start_serving(self) -> None:
        """Serving already: the accept loop starts with the site."""

    async def serve_forever(self) -> None:
        await self.wait_closed()

    async def wait_closed(self) -> None:
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class TlsSniffingSite(web.BaseSite):
    """An aiohttp site on ``host:port`` serving TLS (with ``ssl_context``) and plain
    HTTP connections, chosen per connection by its first byte.

    Connections still being sniffed or in their handshake when the site stops are
    closed; the ones handed over belong to the runner's server, which drains them
    as it drains any other.
    """

    __slots__ = (
        "_bound_port",
        "_first_byte_timeout",
        "_host",
        "_on_connection",
        "_pending",
        "_port",
        "_reuse_port",
    )

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        backlog: int = 1024,
        reuse_port: bool = False,
        first_byte_timeout: float = FIRST_BYTE_TIMEOUT,
        on_connection: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._bound_port: int | None = None
        self._reuse_port = reuse_port
        self._first_byte_timeout = first_byte_timeout
        self._on_connection = on_connection or (lambda outcome: None)
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"tls+http://{self._host}:{self._bound_port or self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.create_server(
            address[:2],
            family=family,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
        sock.setblocking(False)
        self._bound_port = sock.getsockname()[1]
        server = _AcceptingServer(sock, loop)
        server.task = loop.create_task(self._accept(sock))
        self._server = server

    async def stop(self) -> None:
        await super().stop()  # closes the listening socket, ends the accept loop
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listening)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                if listening.fileno() < 0:  # closed by stop()
                    return
                log.warning("accept() on %s failed: %s; pausing", self.name, exc)
                await asyncio.sleep(ACCEPT_ERROR_PAUSE)
                continue
            conn.setblocking(False)
            task = loop.create_task(self._hand_over(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        server = self._runner.server
        try:
            first = await self._first_byte(conn)
        except (TimeoutError, OSError):
            first = b""
        except asyncio.CancelledError:  # the site is stopping
            conn.close()
            raise
        if not first or server is None:
            conn.close()
            self._on_connection("no_data")
            return
        tls = starts_tls(first)
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(server, conn, ssl=self._ssl_context if tls else None)
        except asyncio.CancelledError:
            conn.close()
            raise
        except Exception as exc:  # a failed handshake: the loop has closed the socket
            conn.close()
            log.debug("mesh TLS handshake refused on %s: %s", self.name, exc)
            self._on_connection("tls_refused")
            return
        self._on_connection("tls" if tls else "plaintext")

    async def _first_byte(self, conn: socket.socket) -> bytes:
        """The connection's first byte, left unread; b"" when it closes first."""
        loop = asyncio.get_running_loop()
        fd = conn.fileno()
        async with asyncio.timeout(self._first_byte_timeout):
            while True:
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _resolve, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                try:
                    return conn.recv(1, socket.MSG_PEEK)
                except BlockingIOError:  # woken without data after all: wait again
                    continue
