"""WebSockets through the mesh: real edge, sidecars and demo apps, real Consul.

A WebSocket handshake is routed like any request; once the service answers 101
the edge and the sidecars join the two connections byte for byte, so messages,
subprotocols and close codes pass end to end. Each tunnel is counted, and ends
when either side closes or both stay quiet for ``proxy.tunnel_idle_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import (
    App,
    Mesh,
    Sidecar,
    metrics,
    raw_request,
    read_until_closed,
)

ROUTES = [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}]


@pytest.fixture
def users(mesh: Mesh) -> tuple[App, Sidecar]:
    app = mesh.app("users", "users-1")
    return app, mesh.sidecar(app, "users-1")


def _value(port: int, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    return sum(
        value
        for sample_labels, value in metrics(port).get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


async def _eventually(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_messages_subprotocol_and_close_pass_through_edge_and_sidecar(
    mesh: Mesh, users: tuple[App, Sidecar]
) -> None:
    _, sidecar = users
    edge = mesh.edge(ROUTES)
    big = os.urandom(1024 * 1024)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{edge.port}/api/users/ws", protocols=["echo.v1"]) as ws,
    ):
        assert ws.protocol == "echo.v1"  # negotiated by the app, end to end
        assert len(ws._response.headers["X-Request-Id"]) >= 8
        hello = await ws.receive_json(timeout=5)
        assert hello["service"] == "users"
        seen = {k.lower(): v for k, v in hello["headers"]}
        # The handshake went through both hops as a request: forwarded, with a request id.
        assert seen["x-request-id"] == ws._response.headers["X-Request-Id"]
        assert seen["x-forwarded-for"].startswith("127.0.0.1")
        assert seen["upgrade"].lower() == "websocket"

        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "hello"
        await ws.send_bytes(big)  # 1 MiB each way: more than any buffer on the path
        assert await ws.receive_bytes(timeout=10) == big
        for i in range(500):  # a burst: order kept, nothing lost
            await ws.send_str(f"m{i}")
        assert [await ws.receive_str(timeout=5) for _ in range(500)] == [
            f"m{i}" for i in range(500)
        ]
        assert _value(edge.admin, "meshgate_tunnels", role="edge", service="users") == 1
        assert _value(sidecar.admin, "meshgate_tunnels", role="sidecar", service="users") == 1

    # Closed (after the close handshake the app, as the server, drops TCP first): both
    # hops count the tunnel as ended, with what it carried.
    await _eventually(lambda: _value(edge.admin, "meshgate_tunnels_closed_total") == 1)
    assert _value(edge.admin, "meshgate_tunnels_closed_total", reason="cancelled") == 0
    assert _value(edge.admin, "meshgate_tunnels", service="users") == 0
    up = _value(edge.admin, "meshgate_tunnel_bytes_total", direction="to_upstream")
    down = _value(edge.admin, "meshgate_tunnel_bytes_total", direction="to_client")
    assert up > len(big) and down > len(big)
    await _eventually(lambda: _value(sidecar.admin, "meshgate_tunnels", service="users") == 0)
    # The handshake is a request in the usual counters, as status class 1xx, but its
    # tunnel's lifetime is no request latency.
    assert _value(edge.admin, "meshgate_requests_total", role="edge", code_class="1xx") == 1
    assert _value(edge.admin, "meshgate_request_duration_seconds_count", role="edge") == 0


async def test_a_close_code_from_the_app_reaches_the_client(
    mesh: Mesh, users: tuple[App, Sidecar]
) -> None:
    edge = mesh.edge(ROUTES)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{edge.port}/api/users/ws") as ws,
    ):
        await ws.receive_json(timeout=5)
        await ws.send_str("close:4001")
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 4001 and message.extra == "asked to"
    # Which side drops TCP first after the close handshake is a race between the two
    # ends; either way the tunnel ended because one of them closed.
    await _eventually(lambda: _value(edge.admin, "meshgate_tunnels_closed_total") == 1)
    ended = metrics(edge.admin)["meshgate_tunnels_closed_total"]
    assert {labels["reason"] for labels, value in ended if value} <= {
        "client_closed",
        "upstream_closed",
    }


async def test_a_quiet_tunnel_is_closed_after_the_idle_timeout(
    mesh: Mesh, users: tuple[App, Sidecar]
) -> None:
    edge = mesh.edge(ROUTES, {"proxy": {"tunnel_idle_timeout": "1s"}})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"ws://127.0.0.1:{edge.port}/api/users/ws", autoping=False, heartbeat=None
        ) as ws,
    ):
        await ws.receive_json(timeout=5)
        # Traffic keeps it open past the timeout...
        for _ in range(4):
            await asyncio.sleep(0.4)
            await ws.send_str("still here")
            assert await ws.receive_str(timeout=5) == "still here"
        # ...and silence closes it: the edge cuts the connection (no close frame), and
        # says why in its metrics.
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), message
    await _eventually(
        lambda: _value(edge.admin, "meshgate_tunnels_closed_total", reason="idle_timeout") == 1
    )


async def test_an_app_that_does_not_switch_answers_as_usual_and_the_connection_closes(
    mesh: Mesh, users: tuple[App, Sidecar]
) -> None:
    edge = mesh.edge(ROUTES)
    head = (
        b"GET /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(head)
    answer = (await read_until_closed(reader, 5.0))[1]  # closed after the answer
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 200"), answer[:200]
    echoed = json.loads(rest.partition(b"\r\n\r\n")[2])
    seen = {k.lower(): v for k, v in echoed["headers"]}
    assert seen["upgrade"] == "websocket"  # asked for, and the app chose not to switch
    assert _value(edge.admin, "meshgate_tunnels_closed_total") == 0


async def test_with_upgrades_off_the_request_goes_as_a_plain_one(
    mesh: Mesh, users: tuple[App, Sidecar]
) -> None:
    edge = mesh.edge(ROUTES, {"proxy": {"upgrades": []}})
    status, _, body = await raw_request(
        edge.port,
        b"GET /api/users/echo HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n",
    )
    seen = {k.lower() for k, _ in json.loads(body)["headers"]}
    assert status == 200 and "upgrade" not in seen
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{edge.port}/api/users/ws"),
        ):
            pass
    assert refused.value.status == 400  # the app got no Upgrade, so no WebSocket


async def test_an_app_reaches_another_service_over_its_sidecars_outbound(
    mesh: Mesh, users: tuple[App, Sidecar]
) -> None:
    app, app_sidecar = users
    inventory = mesh.app("inventory", "inventory-1")
    inventory_sidecar = mesh.sidecar(inventory, "inventory-1")
    # users' own sidecar carries the call out (its resilient proxy); inventory's takes it in.
    url = f"ws://127.0.0.1:{app.outbound}/inventory/inventory/ws"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["service"] == "inventory"
        await ws.send_bytes(b"\x00\x01binary")
        assert await ws.receive_bytes(timeout=5) == b"\x00\x01binary"
    await _eventually(lambda: _value(inventory_sidecar.admin, "meshgate_tunnels_closed_total") == 1)
    assert _value(app_sidecar.admin, "meshgate_tunnels_closed_total", role="sidecar") == 1
