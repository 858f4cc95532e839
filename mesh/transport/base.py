"""The small interface between the proxy and whatever speaks HTTP to upstreams.

The proxy only needs: send a request (streaming body) to host:port, get the
status and headers, then stream the body back. Anything faster than aiohttp's
ClientSession can replace :class:`AiohttpTransport` behind this protocol.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import StreamReader
from aiohttp.http_exceptions import BadHttpMessage
from multidict import CIMultiDict, CIMultiDictProxy

from mesh.http.malformed import describe


class UpstreamError(Exception):
    """The upstream exchange failed after the request may have been sent (→ 502)."""


class UpstreamConnectError(UpstreamError):
    """The TCP connection could not be made: nothing was sent, any method may be retried."""


class UpstreamTimeout(UpstreamError):
    """No response (headers) within the time allowed (→ 504)."""


class ClientBodyError(UpstreamError):
    """The client's request body failed, not the upstream: the request sent upstream is
    incomplete, so the upstream connection is dropped, and the client is answered
    ``status`` (a problem of type ``slug``); ``outcome`` names it in the upstream metrics."""

    status = 400
    title = "Bad request"
    slug = "bad-request"
    outcome = "body_invalid"


class RequestBodyInvalid(ClientBodyError):
    """The body broke its own framing (→ 400): bad chunked encoding, or fewer bytes than
    its Content-Length before the connection ended."""

    @classmethod
    def refused_by_parser(cls, exc: BadHttpMessage) -> RequestBodyInvalid:
        """The HTTP parser's refusal of the body, in its words (none of the client's)."""
        return cls(describe(exc))


class RequestBodyTimeout(ClientBodyError):
    """The client paused its body for longer than allowed (→ 408)."""

    status = 408
    title = "Request body timeout"
    slug = "request-body-timeout"
    outcome = "client_timeout"


class RequestBodyTooLarge(ClientBodyError):
    """The body is longer than its route takes (→ 413)."""

    status = 413
    title = "Request body too large"
    slug = "request-body-too-large"
    outcome = "body_too_large"


class ClientBody:
    """A client's streamed request body, as a transport reads it to send it on.

    :meth:`next_piece` waits at most ``pause_s`` for each piece
    (RequestBodyTimeout) and lets the whole be at most ``max_bytes``
    (RequestBodyTooLarge); None: no limit. A body whose framing the HTTP
    parser refused raises RequestBodyInvalid. Only time spent waiting for the
    client counts: a piece already buffered is returned at once, and the time
    the upstream takes to read is not spent here.
    """

    __slots__ = ("_max_bytes", "_pause_s", "_reader", "received")

    def __init__(self, reader: StreamReader, pause_s: float | None, max_bytes: int | None) -> None:
        self._reader = reader
        self._pause_s = pause_s
        self._max_bytes = max_bytes
        self.received = 0
        """Bytes of the body read so far."""

    async def next_piece(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        pause_s = self._pause_s
        try:
            if pause_s is None:
                piece = await self._reader.readany()
            else:
                async with asyncio.timeout(pause_s):
                    piece = await self._reader.readany()
        except TimeoutError:
            raise RequestBodyTimeout(
                f"the client sent no request body bytes for {pause_s:g}s"
            ) from None
        except BadHttpMessage as exc:
            raise RequestBodyInvalid.refused_by_parser(exc) from None
        self.received += len(piece)
        if self._max_bytes is not None and self.received > self._max_bytes:
            raise RequestBodyTooLarge(
                f"the request body is longer than the {self._max_bytes} bytes allowed"
            )
        return piece

    async def pieces(self) -> AsyncIterator[bytes]:
        """Every piece, up to the end of the body."""
        while piece := await self.next_piece():
            yield piece


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    target: str
    """Path and query, already normalised."""
    headers: CIMultiDict[str]
    body: StreamReader | bytes | None
    connect_timeout: float
    response_timeout: float
    """Time allowed from sending to the response headers, and between body reads."""
    header_block: str = ""
    """More header lines, rendered (see :attr:`mesh.exchange.Exchange.upstream_header_block`)."""
    body_timeout: float | None = None
    """Longest wait for the next piece of a streamed ``body`` from the client (see
    :class:`ClientBody`); None: no limit."""
    max_body_size: int | None = None
    """Most bytes a streamed ``body`` may have (see :class:`ClientBody`); None: no limit."""
    upgrade: bool = False
    """The request asks to switch protocols (its headers carry ``Connection: Upgrade`` and
    ``Upgrade``): a 101 answer is final, and its connection is the caller's to take
    (:meth:`UpstreamResponse.detach`)."""

    def client_body(self) -> ClientBody | None:
        """The streamed body, read within this request's limits (None: not streamed)."""
        body = self.body
        if not isinstance(body, StreamReader):
            return None
        return ClientBody(body, self.body_timeout, self.max_body_size)


@dataclass(frozen=True, slots=True)
class SwitchedConnection:
    """An upstream connection that switched protocols (101), handed over whole."""

    transport: asyncio.Transport
    """Its transport, which the taker gives a protocol of its own (``set_protocol``)."""
    early: bytes
    """Bytes the upstream sent after the 101 head, before the handover: the new
    protocol's first bytes."""
    closed: bool
    """The upstream closed the connection before the handover (``early`` is all it sent)."""


class UpstreamResponse(Protocol):
    status: int
    reason: str | None
    headers: CIMultiDictProxy[str]

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises UpstreamError/UpstreamTimeout mid-stream."""
        ...

    def release(self) -> None:
        """Return the connection to the pool (or close it if the body was not read)."""

    def detach(self) -> SwitchedConnection:
        """A 101 answer's connection, taken over by the caller, who closes it; the
        response is released. Raises UpstreamError for any other answer."""
        ...


class PeerTls(Protocol):
    """TLS to an upstream (mesh TLS, :class:`mesh.mtls.contexts.UpstreamTls`): the
    context to connect with, and the check of the verified certificate the peer
    presents. Connections are pooled per ``key``, never across keys."""

    context: ssl.SSLContext
    key: str

    def refusal(self, peercert: Mapping[str, Any] | None) -> str | None:
        """Why the peer must not be sent the request (None: it may)."""
        ...


class UpstreamTransport(Protocol):
    async def send(
        self, host: str, port: int, request: UpstreamRequest, tls: PeerTls | None = None
    ) -> UpstreamResponse:
        """Send ``request``, over ``tls`` when given; return once the response headers
        are in.

        Raises UpstreamConnectError when nothing was sent (a peer that fails the TLS
        handshake or ``tls``'s check included), UpstreamTimeout when no response
        came in time, UpstreamError for anything else.
        """
        ...

    async def close(self) -> None: ...
