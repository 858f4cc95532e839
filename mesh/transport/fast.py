"""A lean upstream transport: keep-alive HTTP/1.1 on asyncio Protocols and httptools.

Same contract as :class:`mesh.transport.aiohttp_client.AiohttpTransport`
(see :mod:`mesh.transport.base`), at a fraction of the per-request cost:
no ClientSession, no request/response object graph, no per-request tasks
unless the request body is streamed.

Connection reuse rules:

* idle connections are kept per (host, port), most recently used first, at
  most ``pool_size_per_host`` of them, each for at most ``keepalive_s``;
* a connection goes back to the pool only when its response was read to the
  end, the whole request was written, and the server allows keep-alive;
* a pooled connection is used only if it is still open. If a reused one
  closes before any byte of the response (the server's idle timeout racing
  our request), the request is sent once more on a fresh connection when its
  body can be replayed (bytes or None, not a stream) and its method is
  idempotent; otherwise UpstreamError.

Active connections are not capped: the proxy's own concurrency bounds them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import StreamReader
from multidict import CIMultiDictProxy

from mesh.loop import running_loop
from mesh.transport.base import (
    ClientBody,
    PeerTls,
    SwitchedConnection,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
)
from mesh.transport.h1_connection import ConnectionDropped, H1Connection
from mesh.transport.h1_head import Framing, authority, serialize_head, streamed_length
from mesh.transport.h1_pool import IdlePool, Key

if TYPE_CHECKING:
    from mesh.transport.base import UpstreamTransport

# Requests that can be replayed after a dropped keep-alive connection even if
# the server did see them (RFC 9110 §9.2.2); the same set aiohttp retries.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
DEFAULT_BODY_BUFFER = 256 * 1024
_LAST_CHUNK = b"0\r\n\r\n"


class FastResponse:
    """An upstream response whose head is in; the body streams from :meth:`chunks`.

    The connection belongs to this response until :meth:`release`, which must
    be called exactly once when the caller is done (further calls are no-ops).
    """

    __slots__ = (
        "_conn",
        "_owner",
        "_read_timeout",
        "_released",
        "_writer",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self,
        owner: FastTransport,
        conn: H1Connection,
        writer: asyncio.Task[None] | None,
        read_timeout: float,
    ) -> None:
        self._owner = owner
        self._conn = conn
        self._writer = writer
        self._read_timeout = read_timeout
        self._released = False
        self.status: int = conn.status
        self.reason: str | None = conn.reason
        self.headers: CIMultiDictProxy[str] = conn.headers

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each piece is everything buffered at that moment.

        Ends normally when the body is complete (at once for HEAD, 1xx, 204
        and 304). Raises UpstreamTimeout when no byte arrives for the
        response timeout while waiting, UpstreamError when the upstream
        fails or cuts the body short. At most about the body buffer size is
        held in memory: reading from the upstream pauses until the consumer
        takes what is buffered.
        """
        # The response is its own iterator: an async generator would cost a
        # registration in the loop's asyncgen WeakSet on every request.
        return self

    def __aiter__(self) -> FastResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if self._released:
                raise UpstreamError("response body read after release()")
            piece = conn.take()
            if piece is not None:
                return piece
            if conn.message_done:
                raise StopAsyncIteration
            if conn.error is not None:
                raise conn.error
            if not await conn.wait(self._read_timeout):
                exc = UpstreamTimeout(f"upstream sent no body bytes for {self._read_timeout:g}s")
                conn.fail(exc)
                raise exc

    def release(self) -> None:
        """Give the connection back: pooled if the exchange ended cleanly, else closed.

        Releasing before the body was read to the end closes the connection
        (the unread rest would corrupt the next exchange).
        """
        if self._released:
            return
        self._released = True
        self._owner._release(self._conn, self._writer)

    def detach(self) -> SwitchedConnection:
        """The connection of a 101 answer, handed over with the bytes that followed
        its head; the response is released. UpstreamError for any other answer.

        Reading resumes if it was paused: the taker must give the transport its own
        protocol before it next awaits, or bytes would still reach this connection."""
        conn = self._conn
        if self._released or not conn.upgraded:
            self.release()
            raise UpstreamError("the upstream did not switch protocols")
        self._released = True
        self._owner._active.discard(conn)
        if self._writer is not None:
            self._writer.cancel()  # a body still going up would corrupt the new protocol
        transport = conn.transport
        assert transport is not None  # set by connection_made before the exchange began
        early = conn.take() or b""  # also resumes reading if the buffer had paused it
        return SwitchedConnection(transport, early, conn.closed)


class FastTransport:
    """Keep-alive HTTP/1.1 client for the proxy's upstream calls.

    ``pool_size_per_host`` bounds the idle connections kept per address;
    ``keepalive_s`` is how long one may stay idle (keep it below the
    upstream's own keep-alive timeout); ``body_buffer`` is how many response
    body bytes may wait for the consumer before reading pauses.
    """

    def __init__(
        self,
        pool_size_per_host: int = 256,
        keepalive_s: float = 30.0,
        body_buffer: int = DEFAULT_BODY_BUFFER,
    ) -> None:
        self._pool = IdlePool(pool_size_per_host, keepalive_s)
        self._body_buffer = body_buffer
        # Connections lent to responses, so close() can reach them too.
        self._active: set[H1Connection] = set()

    def idle_connections(self, host: str, port: int, tls: PeerTls | None = None) -> int:
        """How many idle keep-alive connections are pooled for ``host:port`` (over ``tls``)."""
        return self._pool.idle_count((host, port, "" if tls is None else tls.key))

    async def send(
        self, host: str, port: int, request: UpstreamRequest, tls: PeerTls | None = None
    ) -> FastResponse:
        """Send ``request`` to ``host:port``, over ``tls`` when given; return once the
        final response head is in.

        Raises UpstreamConnectError when no connection could be made (nothing
        was sent; a TLS handshake that failed, or a peer ``tls`` refuses,
        included), UpstreamTimeout when the head did not come within
        ``request.response_timeout`` of the request being written (or the
        upstream stopped reading a streamed body for that long), UpstreamError
        otherwise. The returned response must be released.
        """
        body = request.body
        method = request.method
        length = 0
        if body is None:
            framing = Framing.NONE
        elif isinstance(body, bytes):
            framing = Framing.LENGTH
            length = len(body)
        else:
            announced = streamed_length(request.headers)
            if announced is None:
                framing = Framing.CHUNKED
            else:
                framing = Framing.LENGTH
                length = announced
        head = serialize_head(
            method,
            request.target,
            request.headers,
            authority(host, port),
            framing,
            length,
            request.header_block,
        )
        # For a streamed body: the byte count it must have, or None for chunked.
        streamed = None if framing is Framing.CHUNKED else length
        loop = running_loop()
        key = (host, port, "" if tls is None else tls.key)
        conn = self._pool.take(key, loop.time())
        if conn is not None:
            try:
                return await self._exchange(loop, conn, head, request, streamed)
            except ConnectionDropped as exc:
                if isinstance(body, StreamReader) or method not in IDEMPOTENT_METHODS:
                    raise UpstreamError(
                        f"{host}:{port} closed a kept-alive connection before answering; "
                        "the request cannot be replayed"
                    ) from exc
        conn = await self._connect(loop, key, request.connect_timeout, tls)
        return await self._exchange(loop, conn, head, request, streamed)

    async def close(self) -> None:
        """Close every connection, idle or lent to a response.

        Responses still being read fail with UpstreamError. The transport can
        be used again afterwards; it starts with an empty pool.
        """
        self._pool.close_all()
        active, self._active = self._active, set()
        for conn in active:
            conn.abort()
        # Let the transports run connection_lost before the loop may close.
        await asyncio.sleep(0)

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        key: Key,
        connect_s: float,
        tls: PeerTls | None,
    ) -> H1Connection:
        host, port, _ = key
        pool = self._pool
        buffer = self._body_buffer
        try:
            async with asyncio.timeout(connect_s):
                # The TLS handshake, when there is one, counts against the connect
                # timeout: create_connection returns once it is done.
                _, conn = await loop.create_connection(
                    lambda: H1Connection(loop, key, pool.discard, buffer),
                    host,
                    port,
                    ssl=None if tls is None else tls.context,
                    server_hostname=None if tls is None else "",
                )
        except TimeoutError as exc:
            raise UpstreamConnectError(f"connect to {host}:{port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        if tls is not None:
            transport = conn.transport
            peercert = None if transport is None else transport.get_extra_info("peercert")
            refusal = tls.refusal(peercert)
            if refusal is not None:
                conn.abort()
                raise UpstreamConnectError(f"refused {host}:{port} for mesh TLS: {refusal}")
        return conn

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: H1Connection,
        head: bytes,
        request: UpstreamRequest,
        streamed_length: int | None,
    ) -> FastResponse:
        conn.begin(request.method == "HEAD", request.upgrade)
        if conn.error is not None:
            conn.abort()
            raise conn.error
        self._active.add(conn)
        transport = conn.transport
        assert transport is not None  # set by connection_made before create_connection returns
        body = request.body
        timeout = request.response_timeout
        writer: asyncio.Task[None] | None = None
        if body is None:
            transport.write(head)
            conn.request_sent = True
        elif isinstance(body, bytes):
            # One writev for head and body; no concatenation copy.
            transport.writelines((head, body))
            conn.request_sent = True
        else:
            transport.write(head)
            client_body = request.client_body()
            assert client_body is not None  # neither None nor bytes: a stream
            # A task, so an early answer (413, 401...) is seen while uploading.
            writer = loop.create_task(_write_stream(conn, client_body, streamed_length, timeout))
        try:
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                # The clock for the head starts once the request is written;
                # a stalled upload is bounded by the drain timeout instead.
                wait_for = timeout if writer is None or writer.done() else None
                if not await conn.wait(wait_for):
                    exc = UpstreamTimeout(f"no response head within {timeout:g}s")
                    conn.fail(exc)
                    raise exc
        except BaseException:
            # Includes cancellation: the exchange is half done, so the
            # connection cannot be reused.
            if writer is not None:
                writer.cancel()
            conn.abort()
            self._active.discard(conn)
            raise
        return FastResponse(self, conn, writer, timeout)

    def _release(self, conn: H1Connection, writer: asyncio.Task[None] | None) -> None:
        self._active.discard(conn)
        if writer is not None and not writer.done():
            # The server answered before taking the whole body.
            writer.cancel()
            conn.abort()
        elif conn.reusable:
            conn.park()
            self._pool.put(conn, conn.loop.time())
        else:
            conn.abort()


async def _write_stream(
    conn: H1Connection, body: ClientBody, length: int | None, stall_s: float
) -> None:
    """Copy ``body`` to the connection: exactly ``length`` bytes, or chunked if None.

    Honours the transport's write buffer: after each write that crosses the
    high-water mark it waits for the upstream to read (at most ``stall_s``).
    The client's pauses and the body's size are bounded by ``body``'s limits.
    Never raises (except on cancellation): failures are recorded on the
    connection with :meth:`H1Connection.fail`, which wakes the exchange.
    """
    transport = conn.transport
    assert transport is not None
    sent = 0
    try:
        while True:
            chunk = await body.next_piece()
            if not chunk:
                break
            if conn.closed or conn.broken:
                # The exchange already ended (error, or an early answer and close).
                return
            if length is None:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                sent += len(chunk)
                if sent > length:
                    raise UpstreamError(f"request body is longer than its Content-Length {length}")
                transport.write(chunk)
            if conn.write_paused:
                await conn.drain(stall_s)
        if conn.closed or conn.broken:
            return
        if length is None:
            transport.write(_LAST_CHUNK)
        elif sent != length:
            raise UpstreamError(f"request body ended after {sent} of {length} bytes")
        conn.request_sent = True
    except UpstreamError as exc:
        conn.fail(exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The client's side of the body failed (disconnect, bad framing):
        # the upstream got a truncated request, so drop the connection.
        conn.fail(UpstreamError(f"reading the request body failed: {exc!r}"))
    finally:
        conn.wake()


if TYPE_CHECKING:

    def _conforms(transport: FastTransport) -> UpstreamTransport:
        return transport
