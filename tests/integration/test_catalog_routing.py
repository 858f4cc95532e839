"""Traffic follows Consul's health-checked catalog, and survives Consul going away."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import aiohttp
import pytest

from demo.processes import ConsulAgent, free_port, port_open, wait_until
from tests.integration.harness import (
    Mesh,
    consul_api,
    http,
    metrics,
    passing_ids,
    registered_ids,
)

ROUTES = [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}]


async def instances_hit(session: aiohttp.ClientSession, url: str, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        async with session.get(url) as resp:
            assert resp.status == 200, await resp.text()
            seen[(await resp.json())["instance"]] += 1
    return seen


async def seconds_until_only(
    session: aiohttp.ClientSession, url: str, allowed: set[str], limit: float
) -> float:
    """Time until 10 consecutive requests only reach ``allowed`` instances."""
    start = time.monotonic()
    streak = 0
    while time.monotonic() - start < limit:
        async with session.get(url) as resp:
            instance = (await resp.json())["instance"] if resp.status == 200 else None
        streak = streak + 1 if instance in allowed else 0
        if streak >= 10:
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError(f"traffic still reached instances outside {allowed} after {limit}s")


async def test_traffic_follows_the_catalog_and_survives_consul_outage(
    mesh: Mesh, consul: ConsulAgent
) -> None:
    app_a, app_b = mesh.app("users", "users-a"), mesh.app("users", "users-b")
    mesh.sidecar(app_a, "users-a")
    sidecar_b = mesh.sidecar(app_b, "users-b")
    edge = mesh.edge(ROUTES)
    url = f"{edge.url}/api/users/echo"

    async with aiohttp.ClientSession() as session:
        # Both instances are passing in Consul: they share the traffic.
        seen = await instances_hit(session, url, 20)
        assert set(seen) == {"users-a", "users-b"}
        assert min(seen.values()) >= 5, seen

        # users-b turns critical (maintenance mode adds a critical check at once).
        consul_api(consul, "PUT", "/v1/agent/service/maintenance/users-b?enable=true&reason=test")
        elapsed = await seconds_until_only(session, url, {"users-a"}, limit=5)
        assert elapsed < 2.0, f"critical instance kept getting traffic for {elapsed:.2f}s"
        consul_api(consul, "PUT", "/v1/agent/service/maintenance/users-b?enable=false")
        await seconds_until_only(session, url, {"users-a", "users-b"}, limit=5)
        assert set(await instances_hit(session, url, 10)) == {"users-a", "users-b"}

        # Consul goes away: the last snapshot keeps serving, and its age shows.
        consul.kill()
        assert set(await instances_hit(session, url, 10)) == {"users-a", "users-b"}
        await asyncio.sleep(1.5)
        async with session.get(f"http://127.0.0.1:{edge.admin}/routes") as resp:
            routes = await resp.json()
        assert routes["catalog"]["age_seconds"] >= 1.0
        assert set(await instances_hit(session, url, 10)) == {"users-a", "users-b"}

        # Consul comes back empty (a dev agent keeps no data); the sidecars
        # register again and the edge follows changes again.
        consul.start()  # same port, a fresh agent
        deadline = time.monotonic() + 15
        while registered_ids(consul, "users") != {"users-a", "users-b"}:
            assert time.monotonic() < deadline, "sidecars did not re-register"
            await asyncio.sleep(0.2)
        while passing_ids(consul, "users") != {"users-a", "users-b"}:
            assert time.monotonic() < deadline, "instances did not turn healthy"
            await asyncio.sleep(0.2)
        consul_api(consul, "PUT", "/v1/agent/service/maintenance/users-a?enable=true")
        await seconds_until_only(session, url, {"users-b"}, limit=10)
        consul_api(consul, "PUT", "/v1/agent/service/maintenance/users-a?enable=false")

        # Every instance deregistered (sidecars stopped): 503 with a problem body.
        for proc in [p for p in mesh.processes if p.name.startswith("sidecar-")]:
            proc.stop()
        assert sidecar_b.process.proc is not None
        deadline = time.monotonic() + 5
        while True:
            async with session.get(url) as resp:
                if resp.status == 503:
                    assert resp.headers["Content-Type"] == "application/problem+json"
                    assert int(resp.headers["Retry-After"]) > 0
                    body = await resp.json()
                    break
            assert time.monotonic() < deadline, "edge kept routing to deregistered instances"
            await asyncio.sleep(0.05)
        assert body["status"] == 503
        assert body["service"] == "users"
        assert set(body) >= {"type", "title", "status", "detail", "request_id"}
        assert body["request_id"] == resp.headers["X-Request-Id"]


def test_edge_opens_its_listener_after_the_first_catalog_or_the_timeout(mesh: Mesh) -> None:
    """A worker without a catalog keeps its listener shut for discovery.initial_fetch_timeout
    (other workers, or a refused connect, rather than its 503s); then it opens, warns, and
    answers 503 with a problem body until the catalog comes."""
    unreachable = free_port()  # nothing listens: Consul never answers
    edge = mesh.edge(
        ROUTES,
        extra={
            "consul": {"address": f"127.0.0.1:{unreachable}"},
            "discovery": {"initial_fetch_timeout": "3s"},
        },
        wait_ready=False,
    )
    wait_until(lambda: port_open("127.0.0.1", edge.admin), 20, "the admin listener")
    # The admin listener opens before the wait begins, which is 3 s long.
    assert not port_open("127.0.0.1", edge.port), "edge listener open without a catalog"
    status, _, raw = http(f"http://127.0.0.1:{edge.admin}/readyz")
    assert status == 503
    assert json.loads(raw) == {
        "ready": False,
        "catalog": False,
        "listening": False,
        "draining": False,
    }
    wait_until(lambda: port_open("127.0.0.1", edge.port), 15, "the edge listener")
    assert "no catalog after 3s: opening the edge listener anyway" in edge.process.log_tail()
    # Open, but still not ready: there is no catalog to route by.
    status, _, raw = http(f"http://127.0.0.1:{edge.admin}/readyz")
    assert status == 503
    assert json.loads(raw)["listening"] is True and json.loads(raw)["catalog"] is False
    status, headers, raw = http(f"{edge.url}/api/users/echo")
    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    body = json.loads(raw)
    assert body["status"] == 503
    assert body["service"] == "users"


@pytest.mark.parametrize("declared_in", ["edge config", "consul meta"])
async def test_a_canary_takes_its_share_and_gives_it_back_when_down(
    mesh: Mesh, consul: ConsulAgent, declared_in: str
) -> None:
    stable, canary = mesh.app("users", "users-stable"), mesh.app("users", "users-canary")
    if declared_in == "edge config":
        mesh.sidecar(stable, "users-stable")
        mesh.sidecar(canary, "users-canary", extra={"service": {"tags": ["canary"]}})
        route = {**ROUTES[0], "canary": {"tag": "canary", "weight": 25, "header": "X-Canary"}}
        edge = mesh.edge([route])
    else:
        # The service declares its route, and the canary's instance declares the canary.
        meta = {"meshgate-route": "/api/users", "meshgate-route-rewrite": "/users"}
        mesh.sidecar(stable, "users-stable", extra={"service": {"meta": meta}})
        canary_meta = {
            **meta,
            "meshgate-route-canary": "canary:25",
            "meshgate-route-canary-header": "X-Canary",
        }
        service = {"tags": ["canary"], "meta": canary_meta}
        mesh.sidecar(canary, "users-canary", extra={"service": service})
        edge = mesh.edge([])
    url = f"{edge.url}/api/users/echo"
    # The edge may have the route before it has both instances: wait for both.
    wait_until(lambda: passing_ids(consul, "users") == {"users-stable", "users-canary"}, 10, "both")

    async with aiohttp.ClientSession() as session:
        # 400 requests at 25 %: 100 expected, sd 8.7; 50-150 is nearly six sd either way.
        seen = await instances_hit(session, url, 400)
        assert set(seen) == {"users-stable", "users-canary"}
        assert 50 <= seen["users-canary"] <= 150, seen
        # A request may name its side.
        for value, instance in (("always", "users-canary"), ("never", "users-stable")):
            for _ in range(10):
                async with session.get(url, headers={"X-Canary": value}) as resp:
                    assert (await resp.json())["instance"] == instance

        # The canary goes critical: its share goes to the stable instance, asked for or not.
        consul_api(
            consul, "PUT", "/v1/agent/service/maintenance/users-canary?enable=true&reason=test"
        )
        await seconds_until_only(session, url, {"users-stable"}, limit=5)
        async with session.get(url, headers={"X-Canary": "always"}) as resp:
            assert resp.status == 200 and (await resp.json())["instance"] == "users-stable"

    sides = {
        labels["side"]: value
        for labels, value in metrics(edge.admin)["meshgate_canary_requests_total"]
        if labels["route"] == "users:/api/users"
    }
    assert sides["canary"] >= seen["users-canary"] + 10
    assert sides["stable"] >= seen["users-stable"] + 10
