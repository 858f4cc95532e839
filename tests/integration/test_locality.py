"""Locality-aware routing with a real Consul, real edge and sidecar processes and real
apps: instances on catalog nodes in different zones (node meta, and service meta over
it), a proxy in one zone keeps its requests there while the zone has a healthy
instance, spills to its region, then anywhere, and comes back; the metric counts each
tier; without ``discovery.locality`` the edge spreads over every instance."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp

from demo.processes import ConsulAgent, wait_until
from tests.integration.harness import App, Edge, Mesh, consul_api, http, metrics

ROUTE = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
HERE = {"zone": "eu-1a", "region": "eu-1"}

# node → its meta: two zones of one region, and a zone of another region.
NODES = {
    "node-eu-1a": {"zone": "eu-1a", "region": "eu-1"},
    "node-eu-1b": {"zone": "eu-1b", "region": "eu-1"},
    "node-us-1a": {"zone": "us-1a", "region": "us-1"},
}
# instance → (node, service meta). users-a2 runs on the us node but says (service
# meta, which wins over the node's) that it is in eu-1a: local too.
PLACES: dict[str, tuple[str, dict[str, str]]] = {
    "users-a1": ("node-eu-1a", {}),
    "users-a2": ("node-us-1a", {"meshgate-zone": "eu-1a", "meshgate-region": "eu-1"}),
    "users-b": ("node-eu-1b", {}),
    "users-c": ("node-us-1a", {}),
}


def place(consul: ConsulAgent, instance_id: str, port: int, status: str = "passing") -> None:
    """(Re-)register ``instance_id`` on its node through the catalog, with one service
    check in ``status``: how instances on other machines look to this dev agent."""
    node, meta = PLACES[instance_id]
    body: dict[str, Any] = {
        "Node": node,
        "Address": "127.0.0.1",
        "NodeMeta": NODES[node],
        "Service": {
            "ID": instance_id,
            "Service": "users",
            "Address": "127.0.0.1",
            "Port": port,
            "Meta": meta,
        },
        "Check": {
            "CheckID": f"service:{instance_id}",
            "Name": f"{instance_id} health",
            "Status": status,
            "ServiceID": instance_id,
        },
    }
    consul_api(consul, "PUT", "/v1/catalog/register", body)


def start_users(mesh: Mesh) -> dict[str, int]:
    """An app per instance, each registered passing; instance → its app's port."""
    return {i: app.port for i, app in start_user_apps(mesh).items()}


def start_user_apps(mesh: Mesh) -> dict[str, App]:
    """An app per instance, each registered passing; instance → its app."""
    apps = {i: mesh.app("users", i) for i in PLACES}
    for instance_id, app in apps.items():
        place(mesh.consul, instance_id, app.port)
    return apps


def healthy_zones(edge: Edge) -> dict[str, str]:
    """The healthy users instances in the edge's ``/routes``, with their zones."""
    status, _, raw = http(f"http://127.0.0.1:{edge.admin}/routes")
    if status != 200:
        return {}
    routes = [r for r in json.loads(raw)["routes"] if r["service"] == "users"]
    if not routes:
        return {}
    return {i["id"]: i["zone"] for i in routes[0]["instances"] if i["healthy"]}


def sees(edge: Edge, healthy: set[str]) -> None:
    wait_until(lambda: set(healthy_zones(edge)) == healthy, 10, f"edge sees {healthy}")


async def spread(url: str, n: int = 40) -> Counter[str]:
    async with aiohttp.ClientSession() as session:
        seen: Counter[str] = Counter()
        for _ in range(n):
            async with session.get(url) as resp:
                assert resp.status == 200, await resp.text()
                seen[(await resp.json())["instance"]] += 1
    return seen


def counted(admin: int) -> dict[str, float]:
    samples = metrics(admin).get("meshgate_locality_requests_total", [])
    return {labels["scope"]: value for labels, value in samples if labels["service"] == "users"}


async def test_edge_stays_in_its_zone_spills_to_region_then_anywhere_and_comes_back(
    mesh: Mesh, consul: ConsulAgent
) -> None:
    ports = start_users(mesh)
    edge = mesh.edge([ROUTE], extra={"discovery": {"locality": HERE}})
    sees(edge, set(PLACES))
    assert healthy_zones(edge) == {
        "users-a1": "eu-1a",
        "users-a2": "eu-1a",
        "users-b": "eu-1b",
        "users-c": "us-1a",
    }
    url = f"{edge.url}/api/users/echo"

    # Both instances of the edge's zone, and only they, take the requests.
    assert await spread(url) == Counter({"users-a1": 20, "users-a2": 20})
    assert counted(edge.admin) == {"zone": 40}

    # One local instance left: still enough (min_healthy 1).
    place(consul, "users-a1", ports["users-a1"], "critical")
    sees(edge, {"users-a2", "users-b", "users-c"})
    assert await spread(url, 10) == Counter({"users-a2": 10})

    # The zone has none: the region's other zone takes them all.
    place(consul, "users-a2", ports["users-a2"], "critical")
    sees(edge, {"users-b", "users-c"})
    assert await spread(url, 10) == Counter({"users-b": 10})

    # The region has none either (users-b deregistered): anywhere.
    consul_api(
        consul, "PUT", "/v1/catalog/deregister", {"Node": "node-eu-1b", "ServiceID": "users-b"}
    )
    sees(edge, {"users-c"})
    assert await spread(url, 10) == Counter({"users-c": 10})

    # The zone is back: every request there again.
    place(consul, "users-a1", ports["users-a1"])
    sees(edge, {"users-a1", "users-c"})
    assert await spread(url, 10) == Counter({"users-a1": 10})
    assert counted(edge.admin) == {"zone": 60, "region": 10, "any": 10}


async def test_min_healthy_spills_a_zone_too_small(mesh: Mesh) -> None:
    start_users(mesh)
    locality = {**HERE, "min_healthy": 3}  # the zone has 2, the region 3
    edge = mesh.edge([ROUTE], extra={"discovery": {"locality": locality}})
    sees(edge, set(PLACES))
    seen = await spread(f"{edge.url}/api/users/echo", 30)
    assert seen == Counter({"users-a1": 10, "users-a2": 10, "users-b": 10})
    assert counted(edge.admin) == {"region": 30}


async def test_without_locality_the_edge_spreads_over_every_instance(mesh: Mesh) -> None:
    start_users(mesh)
    edge = mesh.edge([ROUTE])
    sees(edge, set(PLACES))
    seen = await spread(f"{edge.url}/api/users/echo")
    assert seen == Counter({i: 10 for i in PLACES})
    assert counted(edge.admin) == {}


async def test_locality_applies_after_outlier_ejection(mesh: Mesh) -> None:
    """Consul says the zone's instances pass, but they fail every request: once the
    edge ejects them, the zone has none left for the rule, and the region takes over."""
    apps = start_user_apps(mesh)
    breaker = {"consecutive_failures": 3, "open_base": "60s", "open_max": "60s"}
    extra = {
        "discovery": {"locality": HERE},
        "outlier_detection": {"enabled": True, "breaker": {**breaker, "open_jitter": 0}},
    }
    edge = mesh.edge([ROUTE], extra=extra)
    sees(edge, set(PLACES))
    url = f"{edge.url}/api/users/echo"
    for local in ("users-a1", "users-a2"):
        apps[local].faults(error_rate=1.0, error_status=500)
    statuses = [http(url)[0] for _ in range(6)]  # a1, a2, a1, a2, a1, a2
    assert statuses == [500] * 6
    # Both ejected (2 of 4: within max_ejection_share 0.5): the region answers.
    assert await spread(url, 10) == Counter({"users-b": 10})
    assert counted(edge.admin) == {"zone": 6, "region": 10}


async def test_sidecar_outbound_prefers_its_zone(mesh: Mesh, consul: ConsulAgent) -> None:
    ports = start_users(mesh)
    orders = mesh.sidecar(
        mesh.app("orders", "orders-1"), "orders-1", extra={"discovery": {"locality": HERE}}
    )
    url = f"http://127.0.0.1:{orders.outbound}/users/users/echo"
    wait_until(lambda: http(url)[0] == 200, 10, "the sidecar reaches users")
    seen = await spread(url)
    assert set(seen) == {"users-a1", "users-a2"}, seen

    place(consul, "users-a1", ports["users-a1"], "critical")
    place(consul, "users-a2", ports["users-a2"], "critical")
    wait_until(lambda: json.loads(http(url)[2])["instance"] == "users-b", 10, "spilled")
    assert await spread(url, 10) == Counter({"users-b": 10})
    assert counted(orders.admin)["region"] >= 10
