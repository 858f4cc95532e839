"""Upstream transport on aiohttp's ClientSession, with keep-alive pooling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mesh.http.headers import header_block_items
from mesh.transport.base import (
    ClientBodyError,
    PeerTls,
    SwitchedConnection,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
)

# ClientSession adds these unless told not to; a proxy must send only what it got.
_SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_CHUNK = 64 * 1024


class _Response:
    __slots__ = ("_resp", "headers", "reason", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason
        self.headers: CIMultiDictProxy[str] = resp.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_chunked(_CHUNK):
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream stopped sending the body") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"upstream body failed: {exc}") from exc

    def release(self) -> None:
        self._resp.release()

    def detach(self) -> SwitchedConnection:
        self.release()
        raise UpstreamError("the aiohttp transport does not switch protocols")


class AiohttpTransport:
    """Keeps a pool of keep-alive connections per upstream address."""

    def __init__(self, pool_size_per_host: int = 256, keepalive_s: float = 30.0) -> None:
        self._pool_size = pool_size_per_host
        self._keepalive = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self._pool_size,
                keepalive_timeout=self._keepalive,
                use_dns_cache=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(
        self, host: str, port: int, request: UpstreamRequest, tls: PeerTls | None = None
    ) -> _Response:
        if tls is not None:
            # ClientSession pools connections by address and context alone, so a
            # connection verified for one service could be lent to a call meant for
            # another at the same address; the config refuses this combination.
            raise UpstreamConnectError("mesh TLS needs the fast transport (proxy.transport: fast)")
        if request.upgrade:
            # ClientSession has no way to hand over a switched connection (only its own
            # WebSocket client); refuse before anything is sent, so no attempt is wasted.
            raise UpstreamError(
                "switching protocols needs the fast transport (proxy.transport: fast)"
            )
        session = self._session_or_new()
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None,
            sock_connect=request.connect_timeout,
            sock_read=request.response_timeout,
        )
        url = f"http://{host}:{port}{request.target}"
        headers = request.headers
        if request.header_block:
            headers = CIMultiDict(headers)
            headers.extend(header_block_items(request.header_block))
        body: bytes | AsyncIterator[bytes] | None = None
        client_body = request.client_body()
        if client_body is not None:
            body = client_body.pieces()
        elif isinstance(request.body, bytes):
            body = request.body
        try:
            resp = await session.request(
                request.method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
                # The ingress already decided on Host; keep it.
                skip_auto_headers=_SKIP_AUTO,
            )
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectError(f"cannot connect to {host}:{port}: {exc.os_error}") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamConnectError(f"connect to {host}:{port} timed out") from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{host}:{port} did not answer in time") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # The client body's own failure travels as the cause of the client's error.
            if isinstance(exc.__cause__, ClientBodyError):
                raise exc.__cause__ from None
            raise UpstreamError(f"{host}:{port} failed: {exc}") from exc
        return _Response(resp)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.sleep(0)
