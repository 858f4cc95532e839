"""The small interface between the proxy and whatever speaks HTTP to upstreams.

The proxy only needs: send a request (streaming body) to host:port, get the
status and headers, then stream the body back. Anything faster than aiohttp's
ClientSession can replace :class:`AiohttpTransport` behind this protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from aiohttp import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy


class UpstreamError(Exception):
    """The upstream exchange failed after the request may have been sent (→ 502)."""


class UpstreamConnectError(UpstreamError):
    """The TCP connection could not be made: nothing was sent, any method may be retried."""


class UpstreamTimeout(UpstreamError):
    """No response (headers) within the time allowed (→ 504)."""


class RequestBodyTimeout(UpstreamError):
    """The client paused its request body for longer than allowed (→ 408): the request
    sent upstream is incomplete, so the upstream connection is dropped."""


async def read_body_piece(reader: StreamReader, pause_s: float | None) -> bytes:
    """The next piece of a client's request body (b"" at its end), waiting at most
    ``pause_s`` for it (None: no limit); RequestBodyTimeout after that.

    Only time spent waiting for the client counts: a piece already buffered
    is returned at once, and time the upstream takes to read is not spent here.
    """
    if pause_s is None:
        return await reader.readany()
    try:
        async with asyncio.timeout(pause_s):
            return await reader.readany()
    except TimeoutError:
        raise RequestBodyTimeout(
            f"the client sent no request body bytes for {pause_s:g}s"
        ) from None


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
    :func:`read_body_piece`); None: no limit."""


class UpstreamResponse(Protocol):
    status: int
    reason: str | None
    headers: CIMultiDictProxy[str]

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises UpstreamError/UpstreamTimeout mid-stream."""
        ...

    def release(self) -> None:
        """Return the connection to the pool (or close it if the body was not read)."""


class UpstreamTransport(Protocol):
    async def send(self, host: str, port: int, request: UpstreamRequest) -> UpstreamResponse:
        """Send ``request``; return once the response headers are in.

        Raises UpstreamConnectError when nothing was sent, UpstreamTimeout when
        no response came in time, UpstreamError for anything else.
        """
        ...

    async def close(self) -> None: ...
