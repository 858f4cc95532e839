"""What every request through edge and sidecar is guaranteed, checked on real processes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.harness import Edge, Mesh, raw_request, rss_kib

ROUTES = [
    {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"},
    {"prefix": "/api/orders", "service": "orders", "prefix_rewrite": "/orders"},
]


@pytest.fixture
def edge(mesh: Mesh) -> Edge:
    for name in ("users", "orders"):
        mesh.sidecar(mesh.app(name, f"{name}-1"), f"{name}-1")
    return mesh.edge(ROUTES)


async def test_headers_named_in_connection_never_reach_the_app(edge: Edge) -> None:
    head = (
        b"GET /api/users/echo HTTP/1.1\r\nHost: example.test\r\n"
        b"Connection: close, X-Foo\r\nX-Foo: secret\r\nKeep-Alive: timeout=5\r\n"
        b"TE: trailers\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n"
    )
    status, _, body = await raw_request(edge.port, head)
    assert status == 200
    seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
    for name in ("x-foo", "keep-alive", "te", "proxy-connection"):
        assert name not in seen, f"{name} reached the app"
    assert seen["x-kept"] == "yes"
    assert seen["x-forwarded-host"] == "example.test"


async def test_forwarded_for_is_not_spoofable_and_request_id_round_trips(edge: Edge) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"X-Forwarded-For": "6.6.6.6", "X-Request-Id": "client-chosen-id-1"}
        async with session.get(f"{edge.url}/api/users/echo", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-Id"] == "client-chosen-id-1"
            seen = {k.lower(): v for k, v in (await resp.json())["headers"]}
    # The edge trusts no proxy in front of it: the client's claim is dropped;
    # the sidecar trusts the edge (one hop) and appends the edge's address.
    assert "6.6.6.6" not in seen["x-forwarded-for"]
    assert seen["x-forwarded-for"] == "127.0.0.1, 127.0.0.1"
    assert seen["x-request-id"] == "client-chosen-id-1"

    async with aiohttp.ClientSession() as session:
        bad = {"X-Request-Id": "bad id\twith tab"}
        async with session.get(f"{edge.url}/api/users/echo", headers=bad) as resp:
            rid = resp.headers["X-Request-Id"]
            seen = {k.lower(): v for k, v in (await resp.json())["headers"]}
    assert rid != "bad id\twith tab" and len(rid) == 32
    assert seen["x-request-id"] == rid


@pytest.mark.parametrize(
    ("target", "status", "service", "app_path"),
    [
        ("/api/users/../orders/echo", 200, "orders", "/orders/echo"),
        ("/api/users/%2e%2e/orders", 200, "orders", "/orders"),
        ("/api/users/%2E%2E/orders/echo", 200, "orders", "/orders/echo"),
        ("//api//users/echo", 200, "users", "/users/echo"),
        ("/api/users/./echo", 200, "users", "/users/echo"),
        ("/api/users%2F..%2Forders", 400, None, None),
        ("/api/users/%00", 400, None, None),
        ("/api/users/%5c..%5corders", 400, None, None),
        ("/api/users/../../../etc/passwd", 404, None, None),
    ],
)
async def test_path_normalisation_table(
    edge: Edge, target: str, status: int, service: str | None, app_path: str | None
) -> None:
    head = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    got, headers, body = await raw_request(edge.port, head)
    assert got == status, body
    data = json.loads(body)
    if status == 200:
        assert data["service"] == service
        assert data["path"] == app_path
    else:
        assert headers["content-type"] == "application/problem+json"
        assert data["status"] == status
        assert data["request_id"] == headers["x-request-id"]


async def _chunks(total_mb: int, seed: bytes, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    block = hashlib.sha256(seed).digest() * (1024 * 1024 // 32)
    for i in range(total_mb):
        chunk = bytes([i % 251]) + block[1:]
        digest.update(chunk)
        yield chunk


async def test_100mb_upload_streams_through_edge_and_sidecar(edge: Edge) -> None:
    pid = edge.process.pid
    before = rss_kib(pid)
    sent = hashlib.sha256()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{edge.url}/api/users/upload",
            data=_chunks(100, os.urandom(8), sent),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        result = await resp.json()
    assert result["bytes"] == 100 * 1024 * 1024
    assert result["sha256"] == sent.hexdigest()
    peak = rss_kib(pid, "VmHWM")
    growth_mb = (peak - before) / 1024
    assert growth_mb < 50, f"edge RSS grew by {growth_mb:.1f} MB while streaming 100 MB"


async def test_100mb_download_streams_back(edge: Edge) -> None:
    pid = edge.process.pid
    before = rss_kib(pid)
    got = hashlib.sha256()
    size = 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{edge.url}/api/users/download?mb=100", timeout=aiohttp.ClientTimeout(total=120)
        ) as resp,
    ):
        assert resp.status == 200
        expected = resp.headers["X-Content-SHA256"]
        async for chunk in resp.content.iter_chunked(1 << 20):
            got.update(chunk)
            size += len(chunk)
    assert size == 100 * 1024 * 1024
    assert got.hexdigest() == expected
    growth_mb = (rss_kib(pid, "VmHWM") - before) / 1024
    assert growth_mb < 50, f"edge RSS grew by {growth_mb:.1f} MB while streaming 100 MB"
