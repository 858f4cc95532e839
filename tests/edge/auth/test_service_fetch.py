"""fetch_from_instance against real aiohttp servers on free local ports, through a real
FastTransport: plain HTTP, and mutual TLS with certificates of a test Connect CA."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from demo.processes import free_port
from edge.auth.http_body import BodyTooLarge
from edge.auth.service_fetch import fetch_from_instance
from mesh.mtls.contexts import MeshTls
from mesh.mtls.material import Leaf, Roots
from mesh.mtls.spiffe import certificate_identity
from mesh.snapshot import Instance
from mesh.transport.base import UpstreamConnectError, UpstreamError, UpstreamTimeout
from mesh.transport.fast import FastTransport
from tests.mesh.mtls.connect_ca import ConnectCa

HOST = "127.0.0.1"


class Service:
    """An aiohttp app that records every request it is sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/echo", self.echo)
        self.app.router.add_get("/sized/{n}", self.sized)
        self.app.router.add_get("/chunked/{n}", self.chunked)
        self.app.router.add_get("/slow-head", self.slow_head)
        self.app.router.add_get("/trickle", self.trickle)
        self.app.router.add_get("/endless", self.endless)
        self.endless_ended = asyncio.Event()

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        transport = request.transport
        peercert = None if transport is None else transport.get_extra_info("peercert")
        self.seen.append({"path": request.path_qs, "peercert": peercert})
        return web.json_response(
            {
                "method": request.method,
                "path_qs": request.path_qs,
                "content_type": request.headers.get("Content-Type"),
                "x_test": request.headers.get("X-Test"),
                "body": body.decode(),
            },
            status=int(request.query.get("status", "200")),
            headers={"Cache-Control": "max-age=60", "X-Answer": "yes"},
        )

    async def sized(self, request: web.Request) -> web.Response:
        self.seen.append({"path": request.path_qs})
        return web.Response(body=b"s" * int(request.match_info["n"]))

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"path": request.path_qs})
        response = web.StreamResponse()  # no Content-Length: the limit is found reading
        await response.prepare(request)
        remaining = int(request.match_info["n"])
        while remaining:
            piece = min(remaining, 1000)
            await response.write(b"c" * piece)
            remaining -= piece
        await response.write_eof()
        return response

    async def slow_head(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        """A byte every 0.1 s for 3 s: no single wait is long, the whole is."""
        response = web.StreamResponse(headers={"Content-Length": "30"})
        await response.prepare(request)
        for _ in range(30):
            await response.write(b".")
            await asyncio.sleep(0.1)
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """64 KiB pieces until the client goes away."""
        try:
            response = web.StreamResponse()
            await response.prepare(request)
            while True:
                await response.write(b"e" * 65536)
        finally:
            self.endless_ended.set()


@pytest.fixture
async def service() -> AsyncIterator[tuple[Service, Instance]]:
    svc = Service()
    server = TestServer(svc.app, host=HOST)
    await server.start_server()
    try:
        yield svc, Instance("auth-1", "auth", HOST, server.port or 0)
    finally:
        await server.close()


async def fetch(
    transport: FastTransport,
    instance: Instance,
    target: str,
    *,
    mesh_tls: MeshTls | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float = 5.0,
    max_body_bytes: int = 64 * 1024,
) -> Any:
    return await fetch_from_instance(
        transport,
        instance,
        mesh_tls,
        method=method,
        target=target,
        headers=headers or {},
        body=body,
        timeout_s=timeout_s,
        max_body_bytes=max_body_bytes,
    )


async def test_status_headers_and_body_come_back_and_the_connection_is_pooled(
    service: tuple[Service, Instance], transport: FastTransport
) -> None:
    _, instance = service
    answer = await fetch(
        transport,
        instance,
        "/echo?x=1",
        method="POST",
        headers={"X-Test": "sent", "Content-Type": "application/x-www-form-urlencoded"},
        body=b"token=t&hint=h",
    )
    assert answer.status == 200
    assert answer.headers["X-Answer"] == "yes" and answer.headers["Cache-Control"] == "max-age=60"
    echoed = json.loads(answer.body)
    assert echoed == {
        "method": "POST",
        "path_qs": "/echo?x=1",
        "content_type": "application/x-www-form-urlencoded",
        "x_test": "sent",
        "body": "token=t&hint=h",
    }
    # Read to its end and released: the connection went back to the pool.
    assert transport.idle_connections(HOST, instance.port) == 1


async def test_any_status_is_an_answer(
    service: tuple[Service, Instance], transport: FastTransport
) -> None:
    _, instance = service
    answer = await fetch(transport, instance, "/echo?status=503")
    assert answer.status == 503 and b'"method": "GET"' in answer.body
    assert (await fetch(transport, instance, "/nowhere")).status == 404


@pytest.mark.parametrize("kind", ["sized", "chunked"])
async def test_a_body_over_the_limit_is_refused(
    service: tuple[Service, Instance], transport: FastTransport, kind: str
) -> None:
    svc, instance = service
    exact = await fetch(transport, instance, f"/{kind}/5000", max_body_bytes=5000)
    assert exact.body == (b"s" if kind == "sized" else b"c") * 5000
    with pytest.raises(BodyTooLarge, match="over 4999 bytes"):
        await fetch(transport, instance, f"/{kind}/5000", max_body_bytes=4999)
    assert len(svc.seen) == 2
    # Released: the answer had come whole, so its connection went back to the pool.
    assert transport.idle_connections(HOST, instance.port) == 1


async def test_a_body_refused_mid_stream_closes_its_connection(
    service: tuple[Service, Instance], transport: FastTransport
) -> None:
    svc, instance = service
    with pytest.raises(BodyTooLarge, match="over 100000 bytes"):
        await fetch(transport, instance, "/endless", max_body_bytes=100_000)
    # Released unread: the connection is closed (not pooled), so the service stops
    # writing at once (unreleased, it would block on a full socket for good).
    await asyncio.wait_for(svc.endless_ended.wait(), 5)
    assert transport.idle_connections(HOST, instance.port) == 0


async def test_no_head_within_the_timeout(
    service: tuple[Service, Instance], transport: FastTransport
) -> None:
    _, instance = service
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await fetch(transport, instance, "/slow-head", timeout_s=0.3)
    assert time.monotonic() - started < 2
    assert transport.idle_connections(HOST, instance.port) == 0


async def test_the_timeout_bounds_the_whole_body_not_each_read(
    service: tuple[Service, Instance], transport: FastTransport
) -> None:
    _, instance = service
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"no whole answer within 0\.5s"):
        await fetch(transport, instance, "/trickle", timeout_s=0.5)
    assert time.monotonic() - started < 2
    assert transport.idle_connections(HOST, instance.port) == 0


async def test_nothing_listening_is_a_connect_error(transport: FastTransport) -> None:
    dead = Instance("auth-dead", "auth", HOST, free_port())
    with pytest.raises(UpstreamConnectError):
        await fetch(transport, dead, "/echo", timeout_s=2)


async def test_mesh_tls_refusing_the_instance_sends_nothing(
    service: tuple[Service, Instance], transport: FastTransport
) -> None:
    svc, plain = service
    strict = MeshTls("meshgate-edge", require=True)
    with pytest.raises(UpstreamConnectError, match=r"mesh_tls\.require is on"):
        await fetch(transport, plain, "/echo", mesh_tls=strict)
    native = Instance("auth-1", "auth", HOST, plain.port, mesh_tls=True)
    lenient = MeshTls("meshgate-edge", require=False)  # no certificate from Consul yet
    with pytest.raises(UpstreamConnectError, match="no certificate from Consul"):
        await fetch(transport, native, "/echo", mesh_tls=lenient)
    assert svc.seen == []
    # Without require, a plain instance is called over plain HTTP.
    assert (await fetch(transport, plain, "/echo", mesh_tls=lenient)).status == 200


def ready(ca: ConnectCa, service: str) -> MeshTls:
    mesh_tls = MeshTls(service, require=False)
    mesh_tls.update(Leaf.from_consul(ca.leaf(service)), Roots.from_consul(ca.roots()))
    return mesh_tls


async def test_mutual_tls_to_a_connect_native_instance_checked_before_sending(
    transport: FastTransport,
) -> None:
    ca = ConnectCa()
    edge, auth = ready(ca, "meshgate-edge"), ready(ca, "auth")
    svc = Service()
    server = TestServer(svc.app, host=HOST)
    await server.start_server(ssl=auth.server.context)
    try:
        port = server.port or 0
        native = Instance("auth-1", "auth", HOST, port, mesh_tls=True)
        answer = await fetch(transport, native, "/echo", mesh_tls=edge)
        assert answer.status == 200
        # The service saw the edge's certificate.
        identity = certificate_identity(svc.seen[0]["peercert"], ca.trust_domain)
        assert identity is not None and identity.service == "meshgate-edge"
        # The same address registered as another service: its certificate is auth's,
        # so the request is never sent.
        impostor = Instance("payments-1", "payments", HOST, port, mesh_tls=True)
        with pytest.raises(UpstreamConnectError, match="'auth''s, not 'payments''s"):
            await fetch(transport, impostor, "/echo", mesh_tls=edge)
        # Plain HTTP to the TLS listener gets no HTTP answer.
        plain = Instance("auth-1", "auth", HOST, port)
        with pytest.raises(UpstreamError):
            await fetch(transport, plain, "/echo", timeout_s=1)
        assert len(svc.seen) == 1
    finally:
        await server.close()
