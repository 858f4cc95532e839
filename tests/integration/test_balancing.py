"""Weights registered in Consul shift the edge's traffic; a route's hash policy keeps each
key on one instance, across edge workers, and moves only the keys of an instance that
goes away (real Consul, real edge processes, real upstream apps)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
from collections import Counter
from typing import Any

import aiohttp
import pytest

from demo.processes import ConsulAgent, free_port, wait_until
from mesh.maglev import MaglevTable, key_hash
from mesh.snapshot import Instance
from tests.integration.harness import (
    Edge,
    Mesh,
    consul_api,
    descendants,
    http,
    metrics,
    passing_ids,
)

ROUTE = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}


def register(
    mesh: Mesh, instance_id: str, weight: int | None = None, tags: tuple[str, ...] = ()
) -> None:
    """Start an app and register it in Consul as it is (no sidecar), with ``weight`` as
    its ``Weights.Passing`` (None: Consul's default) and ``tags``."""
    app = mesh.app("users", instance_id)
    body: dict[str, Any] = {
        "Name": "users",
        "ID": instance_id,
        "Address": "127.0.0.1",
        "Port": app.port,
        "Tags": list(tags),
    }
    if weight is not None:
        body["Weights"] = {"Passing": weight, "Warning": 1}
    consul_api(mesh.consul, "PUT", "/v1/agent/service/register", body)


def edge_sees(edge: Edge, healthy: set[str]) -> bool:
    """The edge's catalog holds exactly ``healthy`` as the healthy users instances."""
    status, _, raw = http(f"http://127.0.0.1:{edge.admin}/routes")
    if status != 200:
        return False
    routes = json.loads(raw)["routes"]
    users = [r for r in routes if r["service"] == "users"]
    return bool(users) and {i["id"] for i in users[0]["instances"] if i["healthy"]} == healthy


async def settles_on(
    session: aiohttp.ClientSession, url: str, key: str, instance: str, limit: float = 10
) -> None:
    """Until 5 requests with ``key`` in a row reach ``instance`` (every worker has
    followed the catalog's change by then, or the key is mapped wrong)."""
    deadline = time.monotonic() + limit
    streak = 0
    while streak < 5:
        got = await instance_of(session, url, {"X-User-Id": key})
        streak = streak + 1 if got == instance else 0
        assert time.monotonic() < deadline, f"{key} still reaches {got}, not {instance}"
        if not streak:
            await asyncio.sleep(0.05)


async def instance_of(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> str:
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        instance: str = (await resp.json())["instance"]
        return instance


def test_consul_refuses_a_passing_weight_below_one(mesh: Mesh, consul: ConsulAgent) -> None:
    """Why a weight of 0 never reaches the snapshot from Consul (docs: README)."""
    body = {"Name": "users", "ID": "users-z", "Port": 1, "Weights": {"Passing": 0, "Warning": 1}}
    with pytest.raises(urllib.error.HTTPError) as refused:
        consul_api(consul, "PUT", "/v1/agent/service/register", body)
    assert refused.value.code == 400
    assert "users-z" not in passing_ids(consul, "users")


@pytest.mark.parametrize("balancer", ["round_robin", "least_request"])
async def test_consul_weights_shift_the_share_of_requests(
    mesh: Mesh, consul: ConsulAgent, balancer: str
) -> None:
    for instance_id, weight in (("users-a", 1), ("users-b", 2), ("users-c", 5)):
        register(mesh, instance_id, weight)
    edge = mesh.edge([ROUTE], extra={"proxy": {"load_balancer": balancer}})
    wait_until(lambda: edge_sees(edge, {"users-a", "users-b", "users-c"}), 10, "all three")
    url = f"{edge.url}/api/users/echo"
    _, _, raw = http(f"http://127.0.0.1:{edge.admin}/routes")
    instances = json.loads(raw)["routes"][0]["instances"]
    assert {i["id"]: i["weight"] for i in instances} == {"users-a": 1, "users-b": 2, "users-c": 5}

    async with aiohttp.ClientSession() as session:
        seen = Counter([await instance_of(session, url) for _ in range(400)])
    # Expected 50, 100 and 250 of 400. Round robin is exact over every 8 requests;
    # least_request draws at random (one request at a time: none in flight), and
    # these bounds are more than 4 standard deviations wide.
    assert 20 <= seen["users-a"] <= 85, seen
    assert 60 <= seen["users-b"] <= 140, seen
    assert 200 <= seen["users-c"] <= 300, seen
    assert seen["users-a"] < seen["users-b"] < seen["users-c"], seen


KEYS = [f"user-{n}" for n in range(30)]
IDS = ("users-a", "users-b", "users-c")


def expected_owner(key: str, ids: tuple[str, ...]) -> str:
    """The instance a key maps to among ``ids``, computed here, in the test's process."""
    table = MaglevTable([Instance(id=i, service="users", address="x", port=1) for i in ids])
    picked = table.pick(key_hash(key))
    assert picked is not None
    return picked.id


async def test_a_hash_key_sticks_to_one_instance_across_workers_and_only_its_keys_move(
    mesh: Mesh, consul: ConsulAgent
) -> None:
    for instance_id in IDS:
        register(mesh, instance_id)
    route = {**ROUTE, "hash_policy": [{"header": "X-User-Id"}, {"cookie": "session"}]}
    edge = mesh.edge([route], extra={"workers": 2})
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    wait_until(lambda: edge_sees(edge, set(IDS)), 10, "all three")
    url = f"{edge.url}/api/users/echo"
    owners = {key: expected_owner(key, IDS) for key in KEYS}
    assert set(owners.values()) == set(IDS)  # the keys chosen spread over all three

    # A connection per request: SO_REUSEPORT spreads them over both workers, and every
    # worker maps every key as this process computes it.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for key in KEYS:
            for _ in range(4):
                assert await instance_of(session, url, {"X-User-Id": key}) == owners[key]
            # The cookie, the second source, when the header is absent.
            assert await instance_of(session, url, {"Cookie": f"session={key}"}) == owners[key]

        # No key at all: balanced as usual, every instance takes some.
        unkeyed = Counter([await instance_of(session, url) for _ in range(30)])
        assert set(unkeyed) == set(IDS), unkeyed

        # The instance of user-0 goes critical: its keys move, every other key stays.
        gone = owners["user-0"]
        consul_api(consul, "PUT", f"/v1/agent/service/maintenance/{gone}?enable=true")
        left = tuple(i for i in IDS if i != gone)
        wait_until(lambda: edge_sees(edge, set(left)), 10, f"{gone} out")
        moved = {key: expected_owner(key, left) for key in KEYS}
        for key in KEYS:
            if owners[key] == gone:
                await settles_on(session, url, key, moved[key])
            else:
                # Maglev: the others stay put, on both workers, before and after the change.
                assert moved[key] == owners[key], key
                for _ in range(3):
                    assert await instance_of(session, url, {"X-User-Id": key}) == owners[key]

        # It comes back: every key goes home again.
        consul_api(consul, "PUT", f"/v1/agent/service/maintenance/{gone}?enable=false")
        wait_until(lambda: edge_sees(edge, set(IDS)), 10, f"{gone} back")
        for key in KEYS:
            await settles_on(session, url, key, owners[key])

    status, _, raw = http(f"http://127.0.0.1:{edge.admin}/routes")
    assert status == 200
    shown = [r["hash_policy"] for r in json.loads(raw)["routes"]]
    assert shown == [[{"header": "X-User-Id"}, {"cookie": "session"}]]


async def test_a_key_whose_instance_refuses_connections_goes_to_the_next_slot_onward(
    mesh: Mesh,
) -> None:
    """Consul lists users-dead as passing (no check), but nothing listens on its port:
    the connect fails, and the retry takes the instance the table holds next onward,
    the same every time; the other keys never notice."""
    live = ("users-a", "users-b")
    for instance_id in live:
        register(mesh, instance_id)
    dead_port = free_port()
    body = {"Name": "users", "ID": "users-dead", "Address": "127.0.0.1", "Port": dead_port}
    consul_api(mesh.consul, "PUT", "/v1/agent/service/register", body)
    route = {**ROUTE, "hash_policy": [{"header": "X-User-Id"}]}
    edge = mesh.edge([route])
    ids = (*live, "users-dead")
    wait_until(lambda: edge_sees(edge, set(ids)), 10, "all three")
    url = f"{edge.url}/api/users/echo"
    table = MaglevTable([Instance(id=i, service="users", address="x", port=1) for i in ids])
    taken_over: Counter[str] = Counter()  # the dead instance's keys, by who takes them
    async with aiohttp.ClientSession() as session:
        for key in KEYS:
            owner = table.pick(key_hash(key))
            onward = table.pick(key_hash(key), {"users-dead"})
            assert owner is not None and onward is not None
            if owner.id == "users-dead":
                taken_over[onward.id] += 1
            else:
                assert onward is owner
            for _ in range(3):
                assert await instance_of(session, url, {"X-User-Id": key}) == onward.id, key
    # The walk onward spreads the dead instance's keys over the others (not all to one).
    assert set(taken_over) == set(live), taken_over


async def test_a_sidecars_calls_with_a_hash_key_stick_to_its_instance(mesh: Mesh) -> None:
    for instance_id in IDS:
        register(mesh, instance_id)
    orders = mesh.app("orders", "orders-1")
    affinity = {"hash_policy": [{"header": "X-User-Id"}]}
    sidecar = mesh.sidecar(orders, "orders-1", {"resilience": {"services": {"users": affinity}}})
    url = f"http://127.0.0.1:{sidecar.outbound}/users/users/echo"
    owners = {key: expected_owner(key, IDS) for key in KEYS}
    async with aiohttp.ClientSession() as session:

        async def reached() -> set[str]:
            return {await instance_of(session, url) for _ in range(12)}

        deadline = time.monotonic() + 10
        while await reached() != set(IDS):  # until the sidecar's catalog holds all three
            assert time.monotonic() < deadline, "the sidecar never reached all three"
        for key in KEYS:
            for _ in range(3):
                assert await instance_of(session, url, {"X-User-Id": key}) == owners[key]
        # No key: balanced as usual.
        assert await reached() == set(IDS)

    status, _, raw = http(f"http://127.0.0.1:{sidecar.admin}/breakers")
    assert status == 200
    assert json.loads(raw)["users"]["hash_policy"] == [{"header": "X-User-Id"}]


async def test_a_sidecars_calls_follow_a_canary_by_tag_and_header(mesh: Mesh) -> None:
    register(mesh, "users-a", tags=("canary",))
    for instance_id in ("users-b", "users-c"):
        register(mesh, instance_id)
    orders = mesh.app("orders", "orders-1")
    canary = {"canary": {"tag": "canary", "weight": 25, "header": "X-Canary"}}
    sidecar = mesh.sidecar(orders, "orders-1", {"resilience": {"services": {"users": canary}}})
    url = f"http://127.0.0.1:{sidecar.outbound}/users/users/echo"
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 10
        seen: set[str] = set()
        while seen != set(IDS):  # until the sidecar's catalog holds all three
            assert time.monotonic() < deadline, f"the sidecar reached only {seen}"
            seen.add(await instance_of(session, url, {"X-Canary": "always"}))
            # Twice: one round-robin counter serves both sides, so one call a turn
            # would meet the stable side at the same place every time.
            for _ in range(2):
                seen.add(await instance_of(session, url, {"X-Canary": "never"}))
        for _ in range(5):
            assert await instance_of(session, url, {"X-Canary": "always"}) == "users-a"
            assert await instance_of(session, url, {"X-Canary": "never"}) != "users-a"
        before = canary_sides(sidecar.admin)
        drawn = Counter([await instance_of(session, url) for _ in range(200)])
    # 25 % of 200: 50 expected, standard deviation about 6; these bounds are 4 wide.
    assert 25 <= drawn["users-a"] <= 75, drawn
    assert drawn["users-b"] > 0 and drawn["users-c"] > 0, drawn
    after = canary_sides(sidecar.admin)
    counted = {side: after.get(side, 0) - before.get(side, 0) for side in ("canary", "stable")}
    assert counted == {"canary": drawn["users-a"], "stable": 200 - drawn["users-a"]}

    status, _, raw = http(f"http://127.0.0.1:{sidecar.admin}/breakers")
    assert status == 200
    assert json.loads(raw)["users"]["canary"] == {
        "tag": "canary",
        "weight": 25.0,
        "header": "X-Canary",
    }


def canary_sides(admin: int) -> dict[str, float]:
    """The sidecar's calls to users by canary side, from its /metrics."""
    return {
        labels["side"]: value
        for labels, value in metrics(admin).get("meshgate_canary_requests_total", [])
        if labels["role"] == "sidecar" and labels["route"] == "outbound:users"
    }
