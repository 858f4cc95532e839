"""One HTTP/1.1 client connection on a raw asyncio Protocol, parsed with httptools.

A connection carries one exchange at a time (no pipelining). The protocol
object only records what arrived and wakes whoever waits; the waiting side
(:mod:`mesh.transport.fast`) decides what a timeout or an error means.

State a caller may rely on, for the current exchange (reset by :meth:`begin`):

* ``headers_done``: the final (non-1xx) response head is in; ``status``,
  ``reason``, ``headers`` and ``keep_alive`` are set.
* ``message_done``: the whole response has been received (buffered bodies may
  still be unread by the consumer). Set at the head for HEAD requests and for
  statuses without a body.
* ``error``: the exchange failed; the connection is closed or closing. Bytes
  buffered before the failure stay readable.
* ``request_sent``: the whole request, body included, went to the transport.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from multidict import CIMultiDict, CIMultiDictProxy

from mesh.transport.base import UpstreamError, UpstreamTimeout

_EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class ConnectionDropped(UpstreamError):
    """The connection closed before a single byte of the response arrived.

    On a reused keep-alive connection this is the classic race with the
    server's idle timeout: the request most likely was never read.
    """


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _head_keep_alive(version: str, headers: CIMultiDictProxy[str]) -> bool:
    """Keep-alive for a HEAD response, which llhttp cannot judge.

    llhttp does not know the request was HEAD, so for a response without
    Content-Length it assumes a read-until-close body and says "close".
    """
    tokens = {t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",")}
    if version == "1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


class H1Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection to one upstream address.

    ``on_idle_lost`` is called when the server closes the connection while it
    sits idle in a pool, so the pool can forget it at once.
    """

    __slots__ = (
        "_body_high_water",
        "_deadline",
        "_drain_waiter",
        "_header_list",
        "_parser",
        "_parser_stale",
        "_reading_paused",
        "_reason_raw",
        "_timer",
        "_waiter",
        "_write_paused",
        "active",
        "body",
        "broken",
        "buffered",
        "closed",
        "error",
        "got_bytes",
        "head_request",
        "headers",
        "headers_done",
        "idle_since",
        "keep_alive",
        "key",
        "loop",
        "message_done",
        "on_idle_lost",
        "reason",
        "request_sent",
        "status",
        "transport",
        "until_eof",
        "upgraded",
        "upgrading",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, int, str],
        on_idle_lost: Callable[[H1Connection], None],
        body_buffer: int,
    ) -> None:
        self.loop = loop
        self.key = key
        self.on_idle_lost = on_idle_lost
        # Reading pauses once more than this much body waits for the consumer;
        # take() hands over the whole buffer, so it resumes at the next take().
        self._body_high_water = body_buffer
        self.transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._parser_stale = False
        self.closed = False
        self.broken = False
        self.active = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = math.inf
        self._drain_waiter: asyncio.Future[bool] | None = None
        self._write_paused = False
        self._reading_paused = False
        self.body: deque[bytes] = deque()
        self._reset_exchange(False)

    def _reset_exchange(self, head_request: bool) -> None:
        self.head_request = head_request
        self.status = 0
        self._reason_raw = b""
        self.reason: str | None = None
        self._header_list: list[tuple[bytes, bytes]] = []
        self.headers = _EMPTY_HEADERS
        self.headers_done = False
        self.message_done = False
        self.keep_alive = False
        self.until_eof = False
        self.got_bytes = False
        self.request_sent = False
        self.error: UpstreamError | None = None
        self.buffered = 0
        self.body.clear()
        self.upgrading = False
        self.upgraded = False

    # -- exchange lifecycle, driven by the transport ---------------------------

    @property
    def usable(self) -> bool:
        """True while the connection can carry another exchange."""
        transport = self.transport
        return (
            not self.closed
            and not self.broken
            and transport is not None
            and not transport.is_closing()
        )

    def begin(self, head_request: bool, upgrade: bool = False) -> None:
        """Start an exchange: forget the previous response's state. ``upgrade``: the
        request asks to switch protocols, so a 101 answer is final (``upgraded``), and
        what follows its head is kept in ``body`` for whoever takes the connection."""
        if self._parser_stale:
            # After a HEAD response llhttp still expects the body its headers
            # announced; a fresh parser is the only way to reset it.
            self._parser = HttpResponseParser(self)
            self._parser_stale = False
        self._reset_exchange(head_request)
        self.upgrading = upgrade
        self.active = True
        if self.closed:
            # Lost between connect and now: fail fast instead of waiting.
            self.error = ConnectionDropped("upstream closed the connection before the request")

    def park(self) -> None:
        """End the exchange and go idle: drop unread body, listen for the server's close."""
        self.active = False
        self.body.clear()
        self.buffered = 0
        if self._reading_paused:
            # A paused idle connection would never notice the server closing it.
            self._resume_reading()

    @property
    def reusable(self) -> bool:
        """True when the exchange ended cleanly and the server allows another one."""
        return (
            self.message_done
            and self.keep_alive
            and self.request_sent
            and self.error is None
            and self.usable
        )

    def fail(self, exc: UpstreamError) -> None:
        """Record ``exc`` (the first failure wins), drop the connection, wake waiters."""
        if self.error is None and not self.message_done:
            self.error = exc
        self.abort()
        self.wake()
        self._wake_drain(True)

    def abort(self) -> None:
        """Close at once (RST): the connection's state can no longer be trusted."""
        self.broken = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close politely (FIN) an idle connection."""
        self.broken = True
        if self.transport is not None:
            self.transport.close()

    # -- waiting ----------------------------------------------------------------

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def wait(self, limit_s: float | None) -> bool:
        """Wait until something happens (bytes, close, writer done); False after ``limit_s``.

        Callers check the state before waiting and again after: a wake-up says
        only that something changed.
        """
        loop = self.loop
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        if limit_s is None:
            self._deadline = math.inf
        else:
            deadline = self._deadline = loop.time() + limit_s
            # One timer per connection, moved lazily: a wait only records its
            # deadline, and the timer re-arms itself when it fires early. Most
            # waits end long before, so the hot path allocates no timer at all
            # (call_later + cancel costs ~2 us on uvloop, a tenth of a request).
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer)
        try:
            return await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._deadline == math.inf:
            return  # nobody waits with a limit; the next wait re-arms
        if self.loop.time() >= self._deadline:
            waiter.set_result(False)
        else:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def drain(self, limit_s: float) -> None:
        """Wait until the transport's write buffer drops below its low-water mark.

        Raises UpstreamTimeout when the upstream reads nothing for ``limit_s``.
        Returns early if the connection is lost (callers check ``closed``).
        """
        while self._write_paused and not self.closed:
            waiter: asyncio.Future[bool] = self.loop.create_future()
            self._drain_waiter = waiter
            handle = self.loop.call_later(limit_s, _expire, waiter)
            try:
                progressed = await waiter
            finally:
                self._drain_waiter = None
                handle.cancel()
            if not progressed:
                raise UpstreamTimeout(f"upstream did not read the request body for {limit_s:g}s")

    def _wake_drain(self, value: bool) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    # -- reading the body ------------------------------------------------------

    def take(self) -> bytes | None:
        """Everything buffered of the body as one piece, or None when nothing is."""
        body = self.body
        if not body:
            return None
        # One joined piece means one write (and one await) downstream instead
        # of one per TCP read; the copy is cheap next to that.
        piece = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self._reading_paused:
            self._resume_reading()
        return piece

    def _resume_reading(self) -> None:
        self._reading_paused = False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if not self.active:
            self.on_idle_lost(self)
            return
        if self.headers_done:
            if not self.message_done and self.error is None:
                if self.until_eof and exc is None:
                    # A body without Content-Length or chunking ends at close.
                    self.message_done = True
                    self.keep_alive = False
                else:
                    self.error = UpstreamError(
                        f"upstream closed the connection in the middle of the body ({exc or 'EOF'})"
                    )
        elif self.error is None:
            if self.got_bytes:
                self.error = UpstreamError(
                    "upstream closed the connection before the response head was complete"
                )
            else:
                self.error = ConnectionDropped(
                    f"upstream closed the connection without answering ({exc or 'EOF'})"
                )
        self.wake()
        self._wake_drain(True)

    def data_received(self, data: bytes) -> None:
        if not self.active or self.message_done:
            if self.upgraded:
                # The switched protocol's bytes, kept until the taker has the connection.
                self.on_body(data)
                return
            # Bytes nobody asked for (an idle connection, or after a complete
            # response): the framing can no longer be trusted, so never reuse.
            self.broken = True
            if self.transport is not None:
                self.transport.close()
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as exc:
            if self.upgraded:
                # llhttp stops at the end of the 101 head; the rest is the new protocol's.
                tail = data[exc.args[0] :]
                if tail:
                    self.on_body(tail)
            else:
                self._refuse_switch()
        except HttpParserError as exc:
            if self._parser.get_status_code() == 101:
                self._refuse_switch()
            else:
                self.fail(UpstreamError(f"invalid response from upstream: {exc}"))
        self.wake()

    def _refuse_switch(self) -> None:
        """A 101 that llhttp will not switch on: without ``Upgrade`` and ``Connection:
        upgrade`` (both required, RFC 9110 §7.8), or to a request that did not ask."""
        asked = self.upgrading
        self.upgraded = self.message_done = self.headers_done = False
        detail = "without 'Upgrade' and 'Connection: upgrade'" if asked else "unasked"
        self.fail(UpstreamError(f"upstream switched protocols {detail}"))

    def eof_received(self) -> bool | None:
        # Returning None lets the transport close; connection_lost does the rest.
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain(True)

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self._header_list = []
        self._reason_raw = b""

    def on_status(self, status: bytes) -> None:
        # llhttp may deliver the reason phrase in pieces when a read splits it.
        self._reason_raw += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        if self.headers_done:
            # A second response to one request.
            self.broken = True
            return
        parser = self._parser
        status = parser.get_status_code()
        if status < 200 and (status != 101 or not self.upgrading):
            # 1xx interim responses (100 Continue, 103 Early Hints) precede the
            # final one on the same connection; an unasked 101 surfaces as an error.
            return
        # utf-8/surrogateescape like aiohttp: bytes round-trip to the client.
        headers = CIMultiDictProxy(
            CIMultiDict(
                [
                    (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                    for n, v in self._header_list
                ]
            )
        )
        self.status = status
        self.reason = self._reason_raw.decode("utf-8", "surrogateescape") or None
        self.headers = headers
        self.headers_done = True
        if status == 101:
            # Switched: the connection is no longer HTTP; it goes to the caller, never
            # back to the pool.
            self.upgraded = True
            self.message_done = True
            self.keep_alive = False
        elif self.head_request:
            # httptools cannot be told the request was HEAD (llhttp's "skip
            # body" return value is not exposed), so the head ends the message
            # here and the parser is replaced before the next exchange.
            self.message_done = True
            self._parser_stale = True
            self.keep_alive = _head_keep_alive(parser.get_http_version(), headers)
        else:
            # should_keep_alive() is only meaningful before the message ends:
            # llhttp clears its flags after on_message_complete.
            self.keep_alive = parser.should_keep_alive()
            te = headers.get("Transfer-Encoding")
            chunked = te is not None and te.rstrip().lower().endswith("chunked")
            self.until_eof = not chunked and "Content-Length" not in headers

    def on_body(self, body: bytes) -> None:
        if self.message_done and not self.upgraded:
            # A body after a HEAD response: the server and we disagree on framing.
            self.broken = True
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > self._body_high_water and not self._reading_paused:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                # Backpressure: the kernel buffer fills and TCP slows the upstream.
                transport.pause_reading()
                self._reading_paused = True

    def on_message_complete(self) -> None:
        # 1xx interim messages complete too; only the final one ends the exchange.
        if self.headers_done:
            self.message_done = True
