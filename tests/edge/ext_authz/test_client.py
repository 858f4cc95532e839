"""The clients sending checks, against real servers: an ``https`` URL through aiohttp (a
certificate from a test CA), a service's instances and a plain URL through the proxy's
transport; what each failure is called."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from demo.processes import free_port
from edge.ext_authz.client import (
    CheckFailed,
    HttpsClient,
    SharedSession,
    TransportClient,
)
from edge.ext_authz.policy import MAX_ANSWER_BYTES
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.transport.fast import FastTransport


async def handle(request: web.Request) -> web.StreamResponse:
    if request.path == "/check/hang":
        await asyncio.sleep(30)
    if request.path == "/check/big":
        return web.Response(body=b"x" * (MAX_ANSWER_BYTES + 1), status=403)
    return web.Response(
        status=200,
        text=f"{request.method} {request.path_qs} {request.headers.get('X-Probe')}",
        headers={"X-Tenant": "acme"},
    )


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_server(ca: trustme.CA) -> AsyncIterator[TestServer]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_context)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def plain_server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


PROBE = CIMultiDict({"X-Probe": "1"})


async def test_an_https_url(https_server: TestServer, ca: trustme.CA) -> None:
    sessions = SharedSession()
    try:
        client = HttpsClient(f"https://localhost:{https_server.port}", sessions, trusting(ca))
        destination = client.pick()
        assert (destination.scheme, destination.name) == ("https", f"localhost:{https_server.port}")
        answer = await client.send(destination, "POST", "/check/x?a=1", PROBE, b"{}", 5.0)
        assert (answer.status, answer.body) == (200, b"POST /check/x?a=1 1")
        assert answer.headers["X-Tenant"] == "acme"
        # A longer body than the edge keeps: no body, the answer all the same.
        big = await client.send(destination, "GET", "/check/big", PROBE, None, 5.0)
        assert (big.status, big.body) == (403, None)
        with pytest.raises(CheckFailed) as caught:
            await client.send(destination, "GET", "/check/hang", PROBE, None, 0.2)
        assert caught.value.reason == "timeout"
        # A certificate the client does not trust: no check is made.
        untrusting = HttpsClient(f"https://localhost:{https_server.port}", sessions)
        with pytest.raises(CheckFailed) as caught:
            await untrusting.send(untrusting.pick(), "GET", "/check/x", PROBE, None, 5.0)
        assert caught.value.reason == "unreachable"
    finally:
        await sessions.close()


async def test_nothing_listening_at_an_https_url() -> None:
    sessions = SharedSession()
    try:
        client = HttpsClient(f"https://127.0.0.1:{free_port()}", sessions)
        with pytest.raises(CheckFailed) as caught:
            await client.send(client.pick(), "GET", "/check/x", PROBE, None, 5.0)
        assert caught.value.reason == "unreachable"
    finally:
        await sessions.close()


async def test_a_service_round_robin_and_a_plain_url(plain_server: TestServer) -> None:
    transport = FastTransport(4)
    port = plain_server.port
    assert port is not None
    try:
        instances = (
            Instance("authz-1", "authz", "127.0.0.1", port),
            Instance("authz-2", "authz", "127.0.0.1", port),
        )
        snapshot = Snapshot(MappingProxyType({"authz": ServiceEntry("authz", instances)}))
        client = TransportClient(transport, service="authz", snapshot=lambda: snapshot)
        assert [client.pick().name for _ in range(3)] == ["authz-1", "authz-2", "authz-1"]
        answer = await client.send(client.pick(), "GET", "/check/y", PROBE, None, 5.0)
        assert (answer.status, answer.body) == (200, b"GET /check/y 1")
        # The connection went back to the pool (keep-alive): one idle for the next check.
        assert transport.idle_connections("127.0.0.1", port) == 1
        assert client.describe() == "service authz"
        fixed = TransportClient(transport, address=("127.0.0.1", port))
        assert fixed.pick().name == f"127.0.0.1:{port}"
        answer = await fixed.send(fixed.pick(), "DELETE", "/check/z", PROBE, None, 5.0)
        assert answer.body == b"DELETE /check/z 1"
        # A longer body than the edge keeps: no body, the answer all the same.
        big = await fixed.send(fixed.pick(), "GET", "/check/big", PROBE, None, 5.0)
        assert (big.status, big.body) == (403, None)
        with pytest.raises(CheckFailed) as caught:
            await fixed.send(fixed.pick(), "GET", "/check/hang", PROBE, None, 0.2)
        assert caught.value.reason == "timeout"
        none = TransportClient(transport, service="authz", snapshot=Snapshot)
        with pytest.raises(CheckFailed) as caught:
            none.pick()
        assert caught.value.reason == "no_instance"
        closed = TransportClient(transport, address=("127.0.0.1", free_port()))
        with pytest.raises(CheckFailed) as caught:
            await closed.send(closed.pick(), "GET", "/check/y", PROBE, None, 5.0)
        assert caught.value.reason == "unreachable"
    finally:
        await transport.close()
