"""Slow and greedy clients against a real edge: idle and trickling connections closed,
connections over the limit refused and counted, a stalled request body answered 408, a
body larger than its route takes answered 413."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.integration.harness import App, Edge, Mesh, http, metrics, read_until_closed

ROUTES = [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}]


@pytest.fixture
def users(mesh: Mesh) -> App:
    app = mesh.app("users", "users-1")
    mesh.sidecar(app, "users-1")
    return app


def _series(edge: Edge, name: str, **labels: str) -> float:
    for sample_labels, value in metrics(edge.admin).get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    raise KeyError(f"{name}{labels}")


async def test_slowloris_connections_are_closed_and_others_served(mesh: Mesh, users: App) -> None:
    edge = mesh.edge(ROUTES, {"listen": {"idle_timeout": "1s"}})
    opened = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(20)]
    for _, writer in opened:
        writer.write(b"GET /api/users/echo HTTP/1.1\r\nHost: edge.test\r\n")

    async def trickle() -> None:
        # A header line every 200 ms on each: never a complete request head.
        for i in range(25):
            await asyncio.sleep(0.2)
            for _, writer in opened:
                if not writer.is_closing():
                    writer.write(b"X-Slow-%d: x\r\n" % i)

    trickling = asyncio.create_task(trickle())
    try:
        closed = await asyncio.gather(*(read_until_closed(r, 4.0) for r, _ in opened))
        # Closed by the idle timeout (1 s), not when the trickle ends (5 s), and unanswered.
        assert all(0.8 <= took < 3.0 and data == b"" for took, data in closed), closed
        status, _, body = await asyncio.to_thread(http, f"{edge.url}/api/users/echo")
        assert status == 200 and json.loads(body)["service"] == "users"
    finally:
        trickling.cancel()
        for _, writer in opened:
            writer.close()


async def test_connections_over_the_limit_are_refused_and_counted(mesh: Mesh, users: App) -> None:
    edge = mesh.edge(ROUTES, {"listen": {"max_connections": 3}})
    assert _series(edge, "meshgate_connections_refused_total", reason="max_connections") == 0
    held = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert _series(edge, "meshgate_connections", role="edge", listener="edge") == 3

    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"GET /api/users/echo HTTP/1.1\r\nHost: edge.test\r\n\r\n")
    took, data = await read_until_closed(reader, 3.0)
    assert data == b"" and took < 2.0  # closed unread: no answer at all
    writer.close()
    assert _series(edge, "meshgate_connections_refused_total", reason="max_connections") == 1
    served = metrics(edge.admin).get("meshgate_requests_total", [])
    assert sum(value for _, value in served) == 0, served  # the request was never handled
    assert "Traceback" not in edge.process.log_tail()  # a refusal is counted, not logged

    for _, w in held:
        w.close()
    deadline = time.monotonic() + 5
    while _series(edge, "meshgate_connections", listener="edge") != 0:
        assert time.monotonic() < deadline, "closed connections still counted as open"
        await asyncio.sleep(0.05)
    status, _, _ = await asyncio.to_thread(http, f"{edge.url}/api/users/echo")
    assert status == 200


async def test_per_address_limit(mesh: Mesh, users: App) -> None:
    edge = mesh.edge(ROUTES, {"listen": {"max_connections_per_address": 2}})
    held = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(2)]
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    _, data = await read_until_closed(reader, 3.0)
    assert data == b""
    writer.close()
    refused = _series(
        edge, "meshgate_connections_refused_total", reason="max_connections_per_address"
    )
    assert refused == 1
    for _, w in held:
        w.close()


async def test_stalled_request_body_gets_408_and_the_edge_goes_on(mesh: Mesh, users: App) -> None:
    edge = mesh.edge(ROUTES, {"listen": {"body_timeout": "1s"}})
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(
        b"POST /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 1000\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 100
    )
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    took = time.monotonic() - started
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    assert status_line.split()[1] == "408"
    assert 0.8 <= took < 5.0
    problem = json.loads(body)
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == 408 and problem["type"].endswith("request-body-timeout")
    assert problem["request_id"] == headers["x-request-id"]
    # The rest of that body may still come: the edge closes the connection, after
    # aiohttp's lingering read (up to 10 s), so that a reset cannot swallow the answer.
    assert headers["connection"].lower() == "close"
    assert await asyncio.wait_for(reader.read(), 15) == b""
    writer.close()

    # A body that keeps coming, however slowly, is not cut: pieces every 300 ms.
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(
        b"POST /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 10\r\n"
        b"Connection: close\r\n\r\n"
    )
    for _ in range(10):
        await asyncio.sleep(0.3)
        writer.write(b"y")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    reply = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert reply["service"] == "users" and reply["body_bytes"] == 10
    assert _series(edge, "meshgate_requests_total", role="edge", code_class="4xx") >= 1


async def _post(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` and ``body`` on a new connection; the answer (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        length = int(headers.get("content-length", "0"))
        return int(status_line.split()[1]), headers, await reader.readexactly(length)
    finally:
        writer.close()


async def test_bodies_larger_than_their_route_takes_get_413(mesh: Mesh, users: App) -> None:
    routes = [
        *ROUTES,
        {
            "prefix": "/api/big",
            "service": "users",
            "prefix_rewrite": "/users",
            "max_body_size": "1MiB",
        },
    ]
    edge = mesh.edge(routes, {"listen": {"max_body_size": "1KiB"}})
    before = users.stats()["total"]

    # Declared too large: answered at once, before the body is sent or the service asked.
    status, headers, body = await _post(
        edge.port,
        b"POST /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5000\r\n\r\n",
    )
    problem = json.loads(body)
    assert status == 413 and headers["connection"].lower() == "close"
    assert problem["type"].endswith("request-body-too-large")
    assert "5000 bytes is longer than the 1024 allowed" in problem["detail"]
    assert users.stats()["total"] == before

    # Chunked, so no length to check first: refused once it grows past 1 KiB.
    chunk = b"x" * 600
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    status, _, body = await _post(
        edge.port,
        b"POST /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked,
    )
    assert status == 413, body
    assert json.loads(body)["type"].endswith("request-body-too-large")

    # Within the limit, and on the route that takes more: served.
    for path, size in ((b"/api/users/echo", 1024), (b"/api/big/echo", 100_000)):
        status, _, body = await _post(
            edge.port,
            b"POST %s HTTP/1.1\r\nHost: edge.test\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (path, size),
            b"y" * size,
        )
        assert status == 200 and json.loads(body)["body_bytes"] == size, path


async def test_a_body_whose_framing_breaks_midway_gets_400_not_502(mesh: Mesh, users: App) -> None:
    edge = mesh.edge(ROUTES)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(
        b"POST /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
    )
    await asyncio.sleep(0.5)  # the edge is streaming it to the service by now
    writer.write(b"zz\r\n")  # not a chunk size
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
    body = await reader.readexactly(int(headers["content-length"]))
    writer.close()
    assert status_line.split()[1] == "400", body
    problem = json.loads(body)
    assert problem["type"].endswith("/bad-request")
    assert "chunk size" in problem["detail"]


async def test_a_malformed_request_gets_a_problem_and_is_counted(mesh: Mesh, users: App) -> None:
    edge = mesh.edge(ROUTES)
    status, headers, body = await _post(
        edge.port, b"GET /api/users/echo HTTP/1.1\r\nBad Header: x\r\n\r\n"
    )
    problem = json.loads(body)
    assert status == 400 and headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/bad-request")
    assert problem["request_id"] == headers["x-request-id"]
    assert "Bad Header" not in problem["detail"]
    assert _series(edge, "meshgate_malformed_requests_total", listener="edge") == 1
    edge_log = edge.process.log_tail()
    assert "Traceback" not in edge_log and "malformed request" in edge_log
