"""FastTransport against real servers on loopback sockets.

Tests taking the ``transport`` fixture run against both FastTransport and
AiohttpTransport: they state the contract of mesh.transport.base that the
proxy relies on. Tests taking ``fast`` cover what only the lean pool
promises (exact connection reuse, buffering bounds, HEAD/1xx handling...).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import TransferEncodingError
from multidict import CIMultiDictProxy

from mesh.transport.base import (
    RequestBodyInvalid,
    RequestBodyTimeout,
    RequestBodyTooLarge,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamTimeout,
    UpstreamTransport,
)
from mesh.transport.fast import FastResponse, FastTransport

from .conftest import (
    HOST,
    PIECE,
    FrontProxy,
    RawHandler,
    RawServer,
    Upstream,
    decode_json,
    make_request,
    pattern,
    read_all,
    read_head,
)

MB = 1024 * 1024
StartRaw = Callable[[RawHandler], Awaitable[RawServer]]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- the shared contract: both transports --------------------------------------


async def test_get_small_body(transport: UpstreamTransport, upstream: Upstream) -> None:
    response = await transport.send(HOST, upstream.port, make_request("/small"))
    try:
        assert response.status == 200
        assert response.reason == "OK"
        assert isinstance(response.headers, CIMultiDictProxy)
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert decode_json(await read_all(response)) == {"ok": True}
    finally:
        response.release()


async def test_request_line_and_headers_arrive_as_given(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    request = make_request(
        "/echo?q=1&r=%20x",
        method="PUT",
        headers={"Host": "orders.internal", "X-Trace": "abc"},
        body=b"payload",
    )
    response = await transport.send(HOST, upstream.port, request)
    try:
        echoed = decode_json(await read_all(response))
    finally:
        response.release()
    assert echoed["method"] == "PUT"
    assert echoed["path_qs"] == "/echo?q=1&r=%20x"
    assert echoed["body"] == "payload"
    sent = dict(echoed["headers"])
    assert sent["Host"] == "orders.internal"
    assert sent["X-Trace"] == "abc"
    assert sent["Content-Length"] == "7"


async def test_the_header_block_arrives_after_the_headers(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    request = make_request("/echo", headers={"Host": "orders.internal", "X-Trace": "abc"})
    request.header_block = "X-User-Id: alice\r\nX-User-Roles: user,ops"
    response = await transport.send(HOST, upstream.port, request)
    try:
        echoed = decode_json(await read_all(response))
    finally:
        response.release()
    sent = [(name, value) for name, value in echoed["headers"] if name.startswith("X-")]
    assert sent == [("X-Trace", "abc"), ("X-User-Id", "alice"), ("X-User-Roles", "user,ops")]


async def test_keep_alive_reuses_one_connection(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    for _ in range(5):
        response = await transport.send(HOST, upstream.port, make_request("/small"))
        await read_all(response)
        response.release()
    assert upstream.connections == 1


async def test_set_cookie_twice_is_preserved(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    response = await transport.send(HOST, upstream.port, make_request("/cookies"))
    try:
        assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert await read_all(response) == b"cookies"
    finally:
        response.release()


async def test_download_20mb_streams(transport: UpstreamTransport, upstream: Upstream) -> None:
    size = 20 * MB + 123
    response = await transport.send(HOST, upstream.port, make_request(f"/big?size={size}"))
    digest = hashlib.sha256()
    total = 0
    try:
        assert response.headers["Content-Length"] == str(size)
        async for chunk in response.chunks():
            digest.update(chunk)
            total += len(chunk)
    finally:
        response.release()
    assert total == size
    assert digest.hexdigest() == hashlib.sha256(pattern(size)).hexdigest()


async def test_unread_download_is_bounded_by_backpressure(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    # 64 MB offered; nobody reads for a while. Kernel socket buffers on
    # loopback hold a few MB, the transport its buffer: far below 32 MB.
    size = 64 * MB
    response = await transport.send(HOST, upstream.port, make_request(f"/big?size={size}"))
    try:
        await asyncio.sleep(0.5)
        assert upstream.written < 32 * MB
        if isinstance(response, FastResponse):
            assert response._conn.buffered <= 256 * 1024 + len(PIECE) * 4
        total = 0
        async for chunk in response.chunks():
            total += len(chunk)
        assert total == size
    finally:
        response.release()


async def test_chunked_response(transport: UpstreamTransport, upstream: Upstream) -> None:
    response = await transport.send(HOST, upstream.port, make_request("/chunked"))
    try:
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await read_all(response) == b"part0;part1;part2;part3;part4;"
    finally:
        response.release()
    # The chunked body was read to its end, so the connection is reused.
    response = await transport.send(HOST, upstream.port, make_request("/small"))
    await read_all(response)
    response.release()
    assert upstream.connections == 1


async def test_head_has_no_body_and_keeps_the_connection(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    response = await transport.send(HOST, upstream.port, make_request("/resource", "HEAD"))
    try:
        assert response.status == 200
        assert response.headers["Content-Length"] == "1000"
        assert await read_all(response) == b""
    finally:
        response.release()
    response = await transport.send(HOST, upstream.port, make_request("/resource"))
    try:
        assert await read_all(response) == b"r" * 1000
    finally:
        response.release()
    assert upstream.connections == 1


@pytest.mark.parametrize("code", [204, 304])
async def test_bodyless_statuses(
    transport: UpstreamTransport, upstream: Upstream, code: int
) -> None:
    response = await transport.send(HOST, upstream.port, make_request(f"/status/{code}"))
    try:
        assert response.status == code
        assert response.headers["X-Status"] == str(code)
        assert await read_all(response) == b""
    finally:
        response.release()
    response = await transport.send(HOST, upstream.port, make_request("/small"))
    await read_all(response)
    response.release()
    assert upstream.connections == 1


async def test_connect_refused_is_a_connect_error(transport: UpstreamTransport) -> None:
    with pytest.raises(UpstreamConnectError):
        await transport.send(HOST, free_port(), make_request("/"))


async def test_slow_head_times_out(transport: UpstreamTransport, upstream: Upstream) -> None:
    with pytest.raises(UpstreamTimeout):
        await transport.send(
            HOST, upstream.port, make_request("/slow-head?delay=3", response_timeout=0.3)
        )


async def test_slow_body_times_out_in_chunks(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    request = make_request("/slow-body?delay=3", response_timeout=0.3)
    response = await transport.send(HOST, upstream.port, request)
    try:
        received = b""
        with pytest.raises(UpstreamTimeout):
            async for chunk in response.chunks():
                received += chunk
        assert received == b"12345"
    finally:
        response.release()


async def test_server_closing_mid_body_fails_chunks(
    transport: UpstreamTransport, raw_server: StartRaw
) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.close()

    server = await raw_server(cut)
    response = await transport.send(HOST, server.port, make_request("/"))
    try:
        with pytest.raises(UpstreamError):
            await read_all(response)
    finally:
        response.release()


async def test_server_closing_idle_keep_alive(transport: UpstreamTransport) -> None:
    upstream = Upstream()
    await upstream.start(keepalive_timeout=0.1)
    try:
        for _ in range(3):
            response = await transport.send(HOST, upstream.port, make_request("/small"))
            assert decode_json(await read_all(response)) == {"ok": True}
            response.release()
            await asyncio.sleep(0.3)  # the server closes the idle connection meanwhile
        assert upstream.connections == 3
    finally:
        await upstream.stop()


async def test_body_until_close(transport: UpstreamTransport, raw_server: StartRaw) -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"close")
        await writer.drain()
        writer.close()

    server = await raw_server(http10)
    response = await transport.send(HOST, server.port, make_request("/"))
    try:
        assert await read_all(response) == b"until close"
    finally:
        response.release()


async def test_dropped_keep_alive_is_retried_for_idempotent_requests(
    transport: UpstreamTransport, raw_server: StartRaw
) -> None:
    # The second request on each connection is read and then the connection is
    # closed without an answer: the race with a server's idle timeout, made
    # deterministic. A fresh connection then answers.
    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)
        writer.close()

    server = await raw_server(drop_second)
    for _ in range(2):
        response = await transport.send(HOST, server.port, make_request("/"))
        assert await read_all(response) == b"ok"
        response.release()
    assert server.connections == 2


# -- streamed uploads, through a proxy handing request.content on -------------


@pytest.fixture
async def front(transport: UpstreamTransport, upstream: Upstream) -> AsyncIterator[FrontProxy]:
    proxy = FrontProxy(transport, upstream.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_upload_20mb_with_content_length(front: FrontProxy, upstream: Upstream) -> None:
    body = pattern(20 * MB)
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"http://{HOST}:{front.port}/upload", data=io.BytesIO(body)) as resp,
    ):
        assert resp.status == 200
        seen = await resp.json()
    assert seen["length"] == len(body)
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()
    assert seen["content_length"] == str(len(body))
    assert seen["transfer_encoding"] is None


async def test_upload_20mb_chunked(front: FrontProxy, upstream: Upstream) -> None:
    digest = hashlib.sha256()
    count = 320  # x 64 KiB = 20 MiB

    async def generate() -> AsyncIterator[bytes]:
        for _ in range(count):
            digest.update(PIECE)
            yield PIECE

    async with (
        aiohttp.ClientSession() as client,
        client.post(f"http://{HOST}:{front.port}/upload", data=generate()) as resp,
    ):
        assert resp.status == 200
        seen = await resp.json()
    assert seen["length"] == count * len(PIECE)
    assert seen["sha256"] == digest.hexdigest()
    assert seen["content_length"] is None
    assert seen["transfer_encoding"] == "chunked"


async def test_download_through_proxy(front: FrontProxy, upstream: Upstream) -> None:
    size = 5 * MB
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://{HOST}:{front.port}/big?size={size}") as resp,
    ):
        body = await resp.read()
    assert body == pattern(size)


# -- what only the lean pool promises ------------------------------------------


async def test_pooled_connection_counts(fast: FastTransport, upstream: Upstream) -> None:
    responses = [await fast.send(HOST, upstream.port, make_request("/small")) for _ in range(3)]
    for response in responses:
        await read_all(response)
        response.release()
    assert upstream.connections == 3
    assert fast.idle_connections(HOST, upstream.port) == 3
    # LIFO: sequential requests now keep using the most recent one.
    for _ in range(5):
        response = await fast.send(HOST, upstream.port, make_request("/small"))
        await read_all(response)
        response.release()
    assert upstream.connections == 3


async def test_pool_is_bounded(upstream: Upstream) -> None:
    transport = FastTransport(pool_size_per_host=2)
    try:
        responses = [
            await transport.send(HOST, upstream.port, make_request("/small")) for _ in range(4)
        ]
        for response in responses:
            await read_all(response)
            response.release()
        assert transport.idle_connections(HOST, upstream.port) == 2
    finally:
        await transport.close()


async def test_idle_connections_expire(upstream: Upstream) -> None:
    transport = FastTransport(keepalive_s=0.1)
    try:
        response = await transport.send(HOST, upstream.port, make_request("/small"))
        await read_all(response)
        response.release()
        assert transport.idle_connections(HOST, upstream.port) == 1
        await asyncio.sleep(0.3)  # the sweep closes it without any request
        assert transport.idle_connections(HOST, upstream.port) == 0
        response = await transport.send(HOST, upstream.port, make_request("/small"))
        await read_all(response)
        response.release()
        assert upstream.connections == 2
    finally:
        await transport.close()


async def test_release_with_unread_body_closes(fast: FastTransport, upstream: Upstream) -> None:
    response = await fast.send(HOST, upstream.port, make_request(f"/big?size={4 * MB}"))
    response.release()
    assert fast.idle_connections(HOST, upstream.port) == 0
    response = await fast.send(HOST, upstream.port, make_request("/small"))
    assert decode_json(await read_all(response)) == {"ok": True}
    response.release()
    assert upstream.connections == 2


async def test_chunks_after_release_fails(fast: FastTransport, upstream: Upstream) -> None:
    response = await fast.send(HOST, upstream.port, make_request("/small"))
    await read_all(response)
    response.release()
    response.release()  # idempotent
    with pytest.raises(UpstreamError):
        await read_all(response)


async def test_close_closes_pooled_connections(fast: FastTransport, raw_server: StartRaw) -> None:
    closed = asyncio.Event()

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        assert await reader.read() == b""  # EOF: the client closed
        closed.set()

    server = await raw_server(keep)
    response = await fast.send(HOST, server.port, make_request("/"))
    await read_all(response)
    response.release()
    assert fast.idle_connections(HOST, server.port) == 1
    await fast.close()
    await asyncio.wait_for(closed.wait(), 2)
    assert fast.idle_connections(HOST, server.port) == 0


async def test_streamed_body_is_not_replayed(fast: FastTransport, raw_server: StartRaw) -> None:
    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)
        writer.close()

    server = await raw_server(drop_second)
    response = await fast.send(HOST, server.port, make_request("/"))
    await read_all(response)
    response.release()

    stream = fed_stream()
    stream.feed_data(b"body")
    stream.feed_eof()
    with pytest.raises(UpstreamError) as caught:
        await fast.send(
            HOST, server.port, make_request("/", "PUT", {"Content-Length": "4"}, stream)
        )
    assert not isinstance(caught.value, UpstreamConnectError)
    assert server.connections == 1


async def test_non_idempotent_bytes_body_is_not_replayed(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)
        writer.close()

    server = await raw_server(drop_second)
    response = await fast.send(HOST, server.port, make_request("/"))
    await read_all(response)
    response.release()
    with pytest.raises(UpstreamError):
        await fast.send(HOST, server.port, make_request("/", "POST", body=b"order"))
    assert server.connections == 1


async def test_fresh_connection_closed_without_answer(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.close()

    server = await raw_server(hang_up)
    with pytest.raises(UpstreamError) as caught:
        await fast.send(HOST, server.port, make_request("/"))
    # The request went out: another instance must not get it blindly.
    assert not isinstance(caught.value, UpstreamConnectError)
    assert server.connections == 1


async def test_interim_100_continue_is_skipped(fast: FastTransport, raw_server: StartRaw) -> None:
    async def continue_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
            await writer.drain()
            await reader.readexactly(4)
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
            await writer.drain()

    server = await raw_server(continue_first)
    for _ in range(2):
        request = make_request("/", "POST", {"Expect": "100-continue"}, body=b"data")
        response = await fast.send(HOST, server.port, request)
        assert response.status == 201
        assert "Link" not in response.headers
        assert await read_all(response) == b"done"
        response.release()
    assert server.connections == 1


async def test_304_with_content_length_has_no_body(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def not_modified(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: x\r\n\r\n")
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
        await writer.drain()
        await reader.read()

    server = await raw_server(not_modified)
    response = await fast.send(HOST, server.port, make_request("/"))
    assert response.status == 304
    assert response.headers["Content-Length"] == "1234"
    assert await read_all(response) == b""
    response.release()
    response = await fast.send(HOST, server.port, make_request("/"))
    assert await read_all(response) == b"fresh"
    response.release()
    assert server.connections == 1


async def test_head_with_chunked_or_no_length(fast: FastTransport, raw_server: StartRaw) -> None:
    # HEAD answers announce a body they never send; the next exchange on the
    # same connection must still parse (the parser is replaced after HEAD).
    heads = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        for head in heads:
            await read_head(reader)
            writer.write(head)
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")
            await writer.drain()
        await reader.read()

    server = await raw_server(serve)
    for _ in heads:
        response = await fast.send(HOST, server.port, make_request("/", "HEAD"))
        assert response.status == 200
        assert await read_all(response) == b""
        response.release()
        response = await fast.send(HOST, server.port, make_request("/"))
        assert await read_all(response) == b"get"
        response.release()
    assert server.connections == 1


async def test_unsolicited_bytes_on_idle_connection_drop_it(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await raw_server(chatty)
    response = await fast.send(HOST, server.port, make_request("/"))
    await read_all(response)
    response.release()
    await asyncio.sleep(0.2)
    assert fast.idle_connections(HOST, server.port) == 0
    response = await fast.send(HOST, server.port, make_request("/"))
    assert await read_all(response) == b"ok"
    response.release()
    assert server.connections == 2


async def test_connection_close_response_is_not_pooled(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    server = await raw_server(closing)
    for _ in range(2):
        response = await fast.send(HOST, server.port, make_request("/"))
        assert await read_all(response) == b"ok"
        response.release()
    assert server.connections == 2


async def test_invalid_response_is_an_upstream_error(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await raw_server(garbage)
    with pytest.raises(UpstreamError):
        await fast.send(HOST, server.port, make_request("/"))


async def test_early_answer_during_upload(fast: FastTransport, upstream: Upstream) -> None:
    # The upstream answers 413 without reading a large body; send() must
    # return the answer instead of blocking on the upload.
    stream = fed_stream()
    size = 32 * MB

    async def feed() -> None:
        for _ in range(size // len(PIECE)):
            stream.feed_data(PIECE)
            await asyncio.sleep(0)
        stream.feed_eof()

    feeder = asyncio.create_task(feed())
    try:
        request = make_request("/reject", "POST", {"Content-Length": str(size)}, stream)
        response = await fast.send(HOST, upstream.port, request)
        assert response.status == 413
        assert await read_all(response) == b"too large"
        response.release()
        assert fast.idle_connections(HOST, upstream.port) == 0
    finally:
        feeder.cancel()


async def test_a_stalled_request_body_times_out(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    """The client stops sending its body: RequestBodyTimeout after the pause allowed,
    and the half-sent request's connection is not kept."""
    stream = fed_stream()
    stream.feed_data(b"x" * 100)  # then nothing
    request = make_request("/upload", "POST", {"Content-Length": "1000"}, stream, body_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(RequestBodyTimeout, match=r"no request body bytes for 0\.3s"):
        await transport.send(HOST, upstream.port, request)
    assert 0.25 <= time.monotonic() - started < 3.0
    if isinstance(transport, FastTransport):
        assert transport.idle_connections(HOST, upstream.port) == 0


async def test_a_slow_request_body_that_keeps_coming_is_not_cut(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    stream = fed_stream()

    async def feed() -> None:
        for _ in range(5):  # a piece every 150 ms: each pause under the 0.5 s allowed
            await asyncio.sleep(0.15)
            stream.feed_data(b"y" * 10)
        stream.feed_eof()

    feeder = asyncio.create_task(feed())
    try:
        request = make_request(
            "/upload", "POST", {"Content-Length": "50"}, stream, body_timeout=0.5
        )
        response = await transport.send(HOST, upstream.port, request)
        assert response.status == 200
        assert json.loads(await read_all(response))["length"] == 50
        response.release()
    finally:
        feeder.cancel()


async def test_a_streamed_body_past_its_size_limit_is_refused(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    """A body without a length (sent on chunked, nothing to check first) that grows past
    the limit: RequestBodyTooLarge, and the half-sent request's connection is not kept."""
    stream = fed_stream()

    async def feed() -> None:
        for _ in range(20):
            stream.feed_data(b"z" * 100)
            await asyncio.sleep(0.01)
        stream.feed_eof()

    feeder = asyncio.create_task(feed())
    try:
        request = make_request("/upload", "POST", {}, stream, max_body_size=1000)
        with pytest.raises(RequestBodyTooLarge, match="longer than the 1000 bytes allowed"):
            await transport.send(HOST, upstream.port, request)
    finally:
        feeder.cancel()
    if isinstance(transport, FastTransport):
        assert transport.idle_connections(HOST, upstream.port) == 0


async def test_a_streamed_body_broken_by_the_client_is_invalid_not_an_upstream_failure(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    """The client's chunked framing breaks mid-body (the HTTP parser sets the error on
    the stream): RequestBodyInvalid (400), not a 502."""
    stream = fed_stream()
    stream.feed_data(b"z" * 100)

    async def break_it() -> None:
        await asyncio.sleep(0.05)
        stream.set_exception(TransferEncodingError("Invalid character in chunk size:\n\n  b'zz'"))

    breaker = asyncio.create_task(break_it())
    request = make_request("/upload", "POST", {}, stream)
    with pytest.raises(RequestBodyInvalid, match="chunk size") as caught:
        await transport.send(HOST, upstream.port, request)
    await breaker
    assert caught.value.status == 400


async def test_a_streamed_body_at_its_size_limit_goes_through(
    transport: UpstreamTransport, upstream: Upstream
) -> None:
    stream = fed_stream()
    for _ in range(10):
        stream.feed_data(b"z" * 100)
    stream.feed_eof()
    request = make_request("/upload", "POST", {}, stream, max_body_size=1000)
    response = await transport.send(HOST, upstream.port, request)
    assert response.status == 200
    assert json.loads(await read_all(response))["length"] == 1000
    response.release()


async def test_cancelled_send_drops_the_connection(fast: FastTransport, upstream: Upstream) -> None:
    task = asyncio.create_task(fast.send(HOST, upstream.port, make_request("/slow-head?delay=3")))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fast.idle_connections(HOST, upstream.port) == 0
    response = await fast.send(HOST, upstream.port, make_request("/small"))
    assert decode_json(await read_all(response)) == {"ok": True}
    response.release()


async def test_timeouts_follow_each_request_on_a_reused_connection(
    fast: FastTransport, upstream: Upstream
) -> None:
    # A short timeout on the first exchange leaves the connection's timer
    # armed; it must neither cut the next, longer wait short...
    response = await fast.send(HOST, upstream.port, make_request("/small", response_timeout=0.2))
    await read_all(response)
    response.release()
    request = make_request("/slow-head?delay=0.5", response_timeout=2.0)
    response = await fast.send(HOST, upstream.port, request)
    assert await read_all(response) == b"late"
    response.release()
    # ...nor let a later, shorter timeout wait for the longer one.
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout):
        await fast.send(
            HOST, upstream.port, make_request("/slow-head?delay=3", response_timeout=0.2)
        )
    assert loop.time() - started < 1.0
    assert upstream.connections == 1


async def test_connect_timeout_is_a_connect_error(fast: FastTransport) -> None:
    # A listening socket with a full backlog never completes the handshake.
    import socket

    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((HOST, port))
            fillers.append(filler)
        with pytest.raises(UpstreamConnectError):
            await fast.send(HOST, port, make_request("/", connect_timeout=0.2))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


class _NullProtocol(BaseProtocol):
    """Enough of a protocol for a hand-fed aiohttp StreamReader."""

    @property
    def connected(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def fed_stream() -> aiohttp.StreamReader:
    """A StreamReader the test feeds by hand, like request.content."""
    loop = asyncio.get_running_loop()
    return aiohttp.StreamReader(_NullProtocol(loop), 2**16, loop=loop)


# -- switching protocols (101) --------------------------------------------------------

_SWITCH_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket"}


def _upgrade_request() -> UpstreamRequest:
    request = make_request("/chat", headers=_SWITCH_HEADERS)
    request.upgrade = True
    return request


async def test_a_101_hands_the_connection_over_with_what_followed_its_head(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        head = await read_head(reader)
        assert b"Upgrade: websocket" in head and b"Connection: Upgrade" in head
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\nhello"
        )
        await writer.drain()
        writer.write(await reader.readexactly(4))  # echo what the new protocol sends
        await writer.drain()
        await reader.read()

    server = await raw_server(switch)
    response = await fast.send(HOST, server.port, _upgrade_request())
    assert response.status == 101 and response.headers["Upgrade"] == "websocket"
    switched = response.detach()
    assert not switched.closed
    got = bytearray(switched.early)
    arrived = asyncio.Event()

    class Taker(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            got.extend(data)
            arrived.set()

    switched.transport.set_protocol(Taker())
    switched.transport.write(b"ping")
    while got != b"helloping":
        assert len(got) < 9, got
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 5)
    switched.transport.close()
    response.release()  # already released by detach: a no-op
    assert fast.idle_connections(HOST, server.port) == 0  # never pooled


async def test_an_upgrade_answered_without_switching_is_an_ordinary_response(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def decline(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno")
            await writer.drain()

    server = await raw_server(decline)
    response = await fast.send(HOST, server.port, _upgrade_request())
    assert response.status == 426 and await read_all(response) == b"no"
    with pytest.raises(UpstreamError):
        response.detach()
    assert fast.idle_connections(HOST, server.port) == 1  # a kept-alive answer: reusable


async def test_a_101_to_a_request_that_did_not_ask_fails(
    fast: FastTransport, raw_server: StartRaw
) -> None:
    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n")
        writer.write(b"Upgrade: websocket\r\n\r\n")
        await writer.drain()
        await reader.read()

    server = await raw_server(switch)
    with pytest.raises(UpstreamError, match="switched protocols unasked"):
        await fast.send(HOST, server.port, make_request("/chat", headers=_SWITCH_HEADERS))


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"Upgrade: websocket\r\n", id="no-connection-upgrade"),
        pytest.param(b"Connection: Upgrade\r\n", id="no-upgrade"),
    ],
)
async def test_a_101_without_both_switch_headers_fails(
    fast: FastTransport, raw_server: StartRaw, head: bytes
) -> None:
    async def switch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n" + head + b"\r\nbytes")
        await writer.drain()
        await reader.read()

    server = await raw_server(switch)
    with pytest.raises(UpstreamError, match="without 'Upgrade' and 'Connection: upgrade'"):
        await fast.send(HOST, server.port, _upgrade_request())


async def test_the_aiohttp_transport_refuses_to_switch_before_sending(
    upstream: Upstream,
) -> None:
    from mesh.transport.aiohttp_client import AiohttpTransport

    transport = AiohttpTransport()
    try:
        with pytest.raises(UpstreamError, match="fast transport"):
            await transport.send(HOST, upstream.port, _upgrade_request())
    finally:
        await transport.close()
