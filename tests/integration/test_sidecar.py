"""The sidecar: outbound calls by service name, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp

from tests.integration.harness import Mesh, registered_ids

ROUTES = [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}]


async def test_outbound_reaches_other_services_by_name(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    orders = mesh.sidecar(mesh.app("orders", "orders-1"), "orders-1")
    base = f"http://127.0.0.1:{orders.outbound}"
    async with aiohttp.ClientSession() as session:
        # Path form: /<service>/<rest>
        async with session.get(f"{base}/users/users/echo") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["service"] == "users" and body["path"] == "/users/echo"
        # Host form: Host: <service>, path unchanged
        async with session.get(f"{base}/users/echo", headers={"Host": "users"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["path"] == "/users/echo"
        async with session.get(f"{base}/nosuch/echo") as resp:
            assert resp.status == 404
            problem = await resp.json()
        assert problem["service"] == "nosuch"
        assert resp.headers["Content-Type"] == "application/problem+json"


async def test_sigterm_deregisters_within_a_second_and_finishes_in_flight(mesh: Mesh) -> None:
    sidecar = mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge(ROUTES)
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(
            session.get(f"{edge.url}/api/users/slow?ms=1500", timeout=aiohttp.ClientTimeout(10))
        )
        await asyncio.sleep(0.3)  # the request is now held by the app
        sent = time.monotonic()
        sidecar.process.send_signal(signal.SIGTERM)
        while "users-1" in registered_ids(mesh.consul, "users"):
            assert time.monotonic() - sent < 1.0, "instance still in Consul 1 s after SIGTERM"
            await asyncio.sleep(0.02)
        resp = await in_flight
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["slept_ms"] == "1500"
        resp.release()
    assert sidecar.process.proc is not None
    assert sidecar.process.proc.wait(10) == 0
