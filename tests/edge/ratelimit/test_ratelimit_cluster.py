"""The Redis limiter on a real 3-master Redis Cluster, through redis-py's cluster client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import RedisCluster

from edge.ratelimit import LimitPolicy, LimitRequest, RedisLimiter, parse_rate
from edge.ratelimit.client import drop_idle_connections
from edge.ratelimit.keys import bucket_key, slot_of
from edge.ratelimit.script import SHA

pytestmark = pytest.mark.integration

USER = LimitPolicy("per-user", parse_rate("1/min burst 5"))
USER_ROUTE = LimitPolicy("per-user-route", parse_rate("1/min burst 1"))
ROUTE = LimitPolicy("per-route", parse_rate("1/min burst 1"))


async def test_exactness_two_edges_on_a_cluster(
    redis_cluster: Any,
    make_limiter: Callable[..., RedisLimiter],
    exactness: Callable[..., Awaitable[Any]],
) -> None:
    # The fixture's generous timeout, for the same reason as in the single-Redis test.
    edges = [make_limiter(redis_cluster.url, cluster=True) for _ in range(2)]
    run = await exactness(edges)
    print(f"cluster: {run}")
    assert run.sources == {"redis"}
    assert all(edge.status().outages == 0 for edge in edges)
    assert run.admitted <= run.ideal
    assert run.admitted >= 0.98 * run.ideal


async def test_a_callers_limits_are_atomic_in_one_slot(
    redis_cluster: Any, make_limiter: Callable[..., RedisLimiter]
) -> None:
    limiter = make_limiter(redis_cluster.url, cluster=True)
    await limiter.start()  # a cluster client's first use is slow: discover the topology now
    both = [
        LimitRequest(USER, "carol", partition="user:carol"),
        LimitRequest(USER_ROUTE, "carol|/orders", partition="user:carol"),
    ]
    assert len({slot_of(bucket_key(limit)) for limit in both}) == 1
    assert (await limiter.check(both)).allowed
    for _ in range(3):
        refused = await limiter.check(both)
        assert not refused.allowed and refused.source == "redis"
        assert refused.refused_by is not None and refused.refused_by.request.policy is USER_ROUTE
    alone = await limiter.check([both[0]])
    assert alone.allowed and alone.outcomes[0].remaining == 3


async def test_limits_across_slots_are_refunded(
    redis_cluster: Any, make_limiter: Callable[..., RedisLimiter]
) -> None:
    limiter = make_limiter(redis_cluster.url, cluster=True)
    await limiter.start()  # a cluster client's first use is slow: discover the topology now
    user = LimitRequest(USER, "dave", partition="user:dave")
    route = LimitRequest(ROUTE, "/pay")  # shared by every caller: its own partition
    assert slot_of(bucket_key(user)) != slot_of(bucket_key(route))
    first = await limiter.check([user, route])
    assert first.allowed and len(first.outcomes) == 2
    refused = await limiter.check([user, route])
    assert not refused.allowed
    assert refused.refused_by is not None and refused.refused_by.request is route
    await asyncio.sleep(0.1)  # the refund is a follow-up call
    alone = await limiter.check([user])
    assert alone.allowed and alone.outcomes[0].remaining == 3


async def test_noscript_on_every_node_is_recovered(
    redis_cluster: Any, make_limiter: Callable[..., RedisLimiter]
) -> None:
    limiter = make_limiter(redis_cluster.url, cluster=True)
    await limiter.start()  # a cluster client's first use is slow: discover the topology now
    limits = [[LimitRequest(ROUTE, f"/r{i}")] for i in range(30)]  # spread over the masters
    assert all(r.allowed for r in await asyncio.gather(*(limiter.check(x) for x in limits)))
    admin = RedisCluster.from_url(redis_cluster.url)
    try:
        await admin.script_flush()
        assert await admin.script_exists(SHA) == [False]
    finally:
        await admin.aclose()
    results = await asyncio.gather(*(limiter.check(x) for x in limits))
    assert all(not r.allowed and r.source == "redis" for r in results)
    assert limiter.healthy


async def test_idle_connections_of_every_node_can_be_dropped(
    redis_cluster: Any, make_limiter: Callable[..., RedisLimiter]
) -> None:
    # What the background probe does before trying a Redis that failed.
    limiter = make_limiter(redis_cluster.url, cluster=True)
    await limiter.start()
    limits = [[LimitRequest(ROUTE, f"/idle{i}")] for i in range(30)]  # every master
    assert all(r.allowed for r in await asyncio.gather(*(limiter.check(x) for x in limits)))
    client = limiter._client
    assert isinstance(client, RedisCluster)
    idle = [c for node in client.get_nodes() for c in node._free]
    assert idle and all(c.is_connected for c in idle)
    await drop_idle_connections(client)
    assert not any(c.is_connected for c in idle)  # they reconnect on their next use
    again = await asyncio.gather(*(limiter.check(x) for x in limits))
    assert all(r.source == "redis" for r in again) and limiter.healthy
