"""Redis killed, paused or absent: failure modes, no waiting, recovery (redis_limiter.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from demo.processes import RedisServer, free_port
from edge.ratelimit import (
    FailureMode,
    LimitPolicy,
    LimitRequest,
    LimitResult,
    RedisLimiter,
    parse_rate,
)
from tests.edge.ratelimit.conftest import PRODUCTION_TIMEOUT_S

pytestmark = pytest.mark.integration

OPEN = LimitPolicy("fail-open", parse_rate("1/min burst 10"), FailureMode.OPEN)
CLOSED = LimitPolicy("fail-closed", parse_rate("1/min burst 10"), FailureMode.CLOSED)
LOCAL = LimitPolicy("fail-local", parse_rate("1/min burst 10"), FailureMode.LOCAL)


def answer_without_waiting(pending: Awaitable[LimitResult]) -> LimitResult:
    """The answer of ``check()``; fail the test if awaiting it would suspend (wait on anything).

    The Redis limiter hands back a future: done already, or awaiting it waits.
    """
    if isinstance(pending, asyncio.Future):
        if pending.done():
            answer: LimitResult = pending.result()
            return answer
        pending.cancel()
    else:
        coro = cast(Coroutine[Any, Any, LimitResult], pending)
        try:
            coro.send(None)
        except StopIteration as done:
            result: LimitResult = done.value
            return result
        coro.close()
    pytest.fail("check() suspended: it waited on Redis while degraded")


async def timed(limiter: RedisLimiter, limits: Sequence[LimitRequest]) -> tuple[LimitResult, float]:
    started = time.monotonic()
    result = await limiter.check(limits)
    return result, time.monotonic() - started


async def wait_healthy(limiters: Sequence[RedisLimiter], within: float) -> float:
    started = time.monotonic()
    while not all(limiter.healthy for limiter in limiters):
        assert time.monotonic() - started < within, "limits did not become global again in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_redis_killed_then_restarted(
    redis_server: RedisServer, make_limiter: Callable[..., RedisLimiter]
) -> None:
    edges = [
        make_limiter(redis_server.url, instances=lambda: 2, timeout_s=PRODUCTION_TIMEOUT_S)
        for _ in range(2)
    ]
    for edge in edges:
        await edge.start()
    for policy in (OPEN, CLOSED, LOCAL):
        result = await edges[0].check([LimitRequest(policy, "warm")])
        assert result.source == "redis" and result.allowed

    redis_server.kill()

    # The check that meets the dead Redis answers by its policy, within the timeout.
    for edge in edges:
        result, took = await timed(edge, [LimitRequest(OPEN, "k")])
        assert took < 0.3  # the 50 ms timeout and loop lag, no reconnect backoff
        assert result.allowed and result.source == "open" and result.degraded
        assert not edge.healthy
    status = edges[0].status()
    assert not status.healthy and status.degraded_since is not None
    assert status.last_error is not None and "connection" in status.last_error

    # From now on nothing waits on Redis: every check completes without suspending.
    edge = edges[0]
    opened = answer_without_waiting(edge.check([LimitRequest(OPEN, "k")]))
    assert opened.allowed and opened.source == "open" and opened.status == 200
    closed = answer_without_waiting(edge.check([LimitRequest(CLOSED, "k")]))
    assert not closed.allowed and closed.source == "closed" and closed.status == 503
    assert closed.retry_after_seconds == 1
    local = [answer_without_waiting(edge.check([LimitRequest(LOCAL, "k")])) for _ in range(8)]
    assert {r.source for r in local} == {"local"} and all(r.degraded for r in local)
    assert sum(r.allowed for r in local) == 5  # burst 10 shared by 2 healthy edges
    assert local[-1].status == 429 and local[-1].outcomes[0].remaining == 0
    mixed = answer_without_waiting(
        edge.check([LimitRequest(OPEN, "m"), LimitRequest(CLOSED, "m"), LimitRequest(LOCAL, "m")])
    )
    assert mixed.source == "closed"  # closed wins over local and open
    # Many more: each is answered without suspending (answer_without_waiting fails otherwise).
    # No wall-clock bound here: on a shared machine it measures the neighbours, not the
    # limiter; the end-to-end p99 while Redis is down is asserted in tests/integration.
    for _ in range(200):
        answer_without_waiting(edge.check([LimitRequest(LOCAL, "many")]))

    # Redis comes back (empty: no persistence): both edges are global again within 5 s.
    restarted_at = time.monotonic()
    redis_server.start()
    took = await wait_healthy(edges, within=5.0)
    print(f"global again {took:.2f}s after restart")
    fresh = [LimitRequest(OPEN, "after-restart")]
    results = [await edges[i % 2].check(fresh) for i in range(20)]
    assert {r.source for r in results} == {"redis"}
    assert sum(r.allowed for r in results) == 10  # one bucket for both edges: global
    assert time.monotonic() - restarted_at < 5.0
    assert edges[0].status().outages == 1


async def test_connections_pooled_before_an_outage_do_not_fail_after_it(
    redis_server: RedisServer, make_limiter: Callable[..., RedisLimiter]
) -> None:
    # One batch per check, so that 20 concurrent checks fill the pool with 20 connections.
    limiter = make_limiter(redis_server.url, max_batch=1)
    await limiter.start()
    keys = [[LimitRequest(OPEN, f"k{i}")] for i in range(20)]
    assert {r.source for r in await asyncio.gather(*map(limiter.check, keys))} == {"redis"}

    redis_server.kill()  # every pooled connection now leads nowhere
    assert (await limiter.check(keys[0])).source == "open"
    redis_server.start()
    await wait_healthy([limiter], within=5.0)

    # Without dropping them, each stale connection would fail once: one outage each.
    for _ in range(3):
        results = await asyncio.gather(*map(limiter.check, keys))
        assert {r.source for r in results} == {"redis"}
    assert limiter.healthy and limiter.status().outages == 1


async def test_redis_paused_timeouts_are_honoured(
    redis_server: RedisServer, make_limiter: Callable[..., RedisLimiter]
) -> None:
    limiter = make_limiter(redis_server.url, probe_interval_s=0.25, timeout_s=PRODUCTION_TIMEOUT_S)
    await limiter.start()
    policy = LimitPolicy("paused", parse_rate("1/min burst 5"), FailureMode.LOCAL)
    assert (await limiter.check([LimitRequest(policy, "before")])).source == "redis"
    admin = Redis.from_url(redis_server.url)
    try:
        await admin.client_pause(3000)
        paused_at = time.monotonic()
        result, took = await timed(limiter, [LimitRequest(policy, "k")])
        assert 0.045 <= took < 0.3  # waited for the timeout, not for the 3 s pause
        assert result.source == "local" and result.degraded and result.allowed
        status = limiter.status()
        assert status.last_error is not None and status.last_error.startswith("timeout")
        # Probes keep timing out during the pause; requests never wait meanwhile.
        while time.monotonic() - paused_at < 2.5:
            answer_without_waiting(limiter.check([LimitRequest(policy, "k")]))
            assert not limiter.healthy
            await asyncio.sleep(0.05)
        took = await wait_healthy([limiter], within=3.0)
        recovered_after = time.monotonic() - paused_at
        print(f"global again {recovered_after:.2f}s after CLIENT PAUSE 3000")
        assert 2.9 < recovered_after < 4.5
        # Replies are not mixed up after the cancelled calls: counts are right.
        fresh = [LimitRequest(policy, "after-pause")]
        remaining = [(await limiter.check(fresh)).outcomes[0].remaining for _ in range(6)]
        assert remaining == [4, 3, 2, 1, 0, 0]
    finally:
        await admin.aclose()


async def test_starts_degraded_when_redis_is_absent(
    make_limiter: Callable[..., RedisLimiter],
) -> None:
    server = RedisServer(port=free_port())
    limiter = make_limiter(server.url, probe_interval_s=0.1)
    policy = LimitPolicy("absent", parse_rate("10/s burst 2"), FailureMode.CLOSED)
    started = time.monotonic()
    await limiter.start()
    assert time.monotonic() - started < 0.5  # refused at once, not start()'s 5 s
    assert not limiter.healthy
    refused = answer_without_waiting(limiter.check([LimitRequest(policy, "k")]))
    assert refused.status == 503
    server.start()
    try:
        await wait_healthy([limiter], within=5.0)
        assert (await limiter.check([LimitRequest(policy, "k")])).source == "redis"
    finally:
        server.stop()


async def test_check_nowait_answers_at_once_only_without_redis(
    make_limiter: Callable[..., RedisLimiter],
) -> None:
    server = RedisServer(port=free_port())
    limiter = make_limiter(server.url, probe_interval_s=0.1)
    policy = LimitPolicy("nowait", parse_rate("10/s burst 2"))  # local when Redis fails
    limit = LimitRequest(policy, "k")
    await limiter.start()
    assert not limiter.healthy
    local = limiter.check_nowait([limit])
    assert isinstance(local, LimitResult)  # the fallback decides without suspending
    assert local.allowed and local.source == "local" and local.degraded
    server.start()
    try:
        await wait_healthy([limiter], within=5.0)
        pending = limiter.check_nowait([limit])
        assert not isinstance(pending, LimitResult)  # a Redis check must be waited for
        result = await pending
        assert result.source == "redis" and result.outcomes[0].remaining == 1
    finally:
        server.stop()
