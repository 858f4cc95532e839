"""The Redis limiter against a real redis-server (edge/ratelimit/redis_limiter.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from demo.processes import RedisServer
from edge.ratelimit import (
    FailureMode,
    LimitPolicy,
    LimitRequest,
    LimitResult,
    parse_rate,
)
from edge.ratelimit.keys import bucket_key
from edge.ratelimit.script import ReplyDecoder

pytestmark = pytest.mark.integration


class CountingObserver:
    def __init__(self) -> None:
        self.round_trips: list[tuple[int, str | None]] = []
        self.decisions: list[LimitResult] = []
        self.health: list[bool] = []

    def on_decision(self, result: LimitResult) -> None:
        self.decisions.append(result)

    def on_decisions(self, results: Sequence[LimitResult]) -> None:
        self.decisions.extend(results)

    def on_round_trip(self, seconds: float, commands: int, error: str | None) -> None:
        self.round_trips.append((commands, error))

    def on_health_change(self, healthy: bool, reason: str | None) -> None:
        self.health.append(healthy)


async def test_charges_and_expires_when_full_again(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    limiter = make_limiter(redis_server.url)
    policy = LimitPolicy("ttl", parse_rate("10/s burst 5"))
    limit = LimitRequest(policy, "k")
    key = bucket_key(limit)
    raw = Redis.from_url(redis_server.url)
    try:
        first = await limiter.check([limit])
        assert first.allowed and first.source == "redis" and not first.degraded
        assert first.outcomes[0].remaining == 4
        assert first.outcomes[0].reset_after_s == pytest.approx(0.1, abs=0.01)
        assert 0 < await raw.pttl(key) <= 100  # one token short: full in 100 ms
        await limiter.check([LimitRequest(policy, "k", cost=3)])
        assert 200 < await raw.pttl(key) <= 400  # four short: full in 400 ms
        await asyncio.sleep(0.45)
        assert await raw.exists(key) == 0  # expired exactly when full again
        again = await limiter.check([limit])
        assert again.outcomes[0].remaining == 4
    finally:
        await raw.aclose()


async def test_noscript_is_recovered_by_reloading(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    limiter = make_limiter(redis_server.url)
    # Slow refill: the remaining counts below must not depend on how long the reload takes.
    limit = [LimitRequest(LimitPolicy("ns", parse_rate("100/h")), "k")]
    raw = Redis.from_url(redis_server.url)
    try:
        assert (await limiter.check(limit)).source == "redis"
        await raw.script_flush()
        results = await asyncio.gather(*(limiter.check(limit) for _ in range(5)))
        assert all(r.allowed and r.source == "redis" for r in results)
        assert limiter.healthy and limiter.status().outages == 0
        assert [r.outcomes[0].remaining for r in results] == [98, 97, 96, 95, 94]
    finally:
        await raw.aclose()


async def test_refused_by_route_keeps_user_tokens(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    limiter = make_limiter(redis_server.url)
    user = LimitPolicy("per-user", parse_rate("1/min burst 5"))
    route = LimitPolicy("per-user-route", parse_rate("1/min burst 1"))
    both = [
        LimitRequest(user, "alice", partition="alice"),
        LimitRequest(route, "alice|/orders", partition="alice"),
    ]
    assert (await limiter.check(both)).allowed
    for _ in range(3):
        refused = await limiter.check(both)
        assert not refused.allowed and refused.status == 429
        assert refused.refused_by is not None and refused.refused_by.request.policy is route
    # Four requests, one admitted: alice still has 4 of her 5 tokens.
    alone = await limiter.check([LimitRequest(user, "alice", partition="alice")])
    assert alone.allowed and alone.outcomes[0].remaining == 3


async def test_edges_with_skewed_clocks_agree(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    # Local clocks are only used for local caching; Redis TIME decides refill.
    limit = [LimitRequest(LimitPolicy("skew", parse_rate("2/s burst 4")), "k")]
    fast = make_limiter(redis_server.url)
    fast._clock = lambda: time.monotonic() + 3600.0
    slow = make_limiter(redis_server.url)
    admitted = [(await (fast if i % 2 else slow).check(limit)).allowed for i in range(10)]
    assert sum(admitted) == 4


async def test_concurrent_checks_share_one_round_trip(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    observer = CountingObserver()
    limiter = make_limiter(redis_server.url, observer=observer)
    await limiter.start()
    policy = LimitPolicy("batch", parse_rate("1000/s burst 1000"))
    results = await asyncio.gather(
        *(limiter.check([LimitRequest(policy, f"k{i % 7}")]) for i in range(100))
    )
    assert all(r.allowed for r in results)
    assert observer.round_trips == [(100, None)]


async def test_known_empty_buckets_are_refused_without_redis(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    observer = CountingObserver()
    limiter = make_limiter(redis_server.url, observer=observer)
    limit = [LimitRequest(LimitPolicy("empty", parse_rate("5/s burst 2")), "k")]
    assert (await limiter.check(limit)).allowed
    assert (await limiter.check(limit)).allowed  # the last token: now known empty
    trips = len(observer.round_trips)
    refusals = [await limiter.check(limit) for _ in range(50)]
    assert all(not r.allowed and r.cached and r.source == "redis" for r in refusals)
    assert len(observer.round_trips) == trips  # not one more round trip
    assert 0.15 < refusals[-1].retry_after_s <= 0.2
    assert refusals[-1].retry_after_seconds == 1 == refusals[-1].reset_seconds
    await asyncio.sleep(refusals[-1].retry_after_s)
    assert (await limiter.check(limit)).allowed  # exactly at refill time, Redis admits


async def test_exactness_two_edges_one_redis(
    redis_server: RedisServer,
    make_limiter: Callable[..., Any],
    exactness: Callable[..., Awaitable[Any]],
) -> None:
    # 200 clients, two edges and Redis on two cores can starve the event loop past
    # 50 ms now and then: the fixture's generous timeout keeps this about exactness.
    edges = [make_limiter(redis_server.url) for _ in range(2)]
    run = await exactness(edges)
    print(f"single redis: {run}")
    assert run.sources == {"redis"}
    assert all(edge.status().outages == 0 for edge in edges)
    assert run.admitted <= run.ideal
    assert run.admitted >= 0.98 * run.ideal


async def test_redis_clock_behind_the_stored_stamp_mints_nothing(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    # As after a failover to a replica whose clock is 10 s behind the old master's.
    limiter = make_limiter(redis_server.url)
    limit = LimitRequest(LimitPolicy("behind", parse_rate("2/s burst 4")), "k")
    key = bucket_key(limit)
    raw = Redis.from_url(redis_server.url)
    try:
        seconds, micros = await raw.time()
        ahead = seconds + micros / 1e6 + 10.0
        await raw.hset(key, mapping={"t": "0.5", "u": repr(ahead)})
        refused = await limiter.check([limit])
        assert not refused.allowed
        assert refused.retry_after_s == pytest.approx(10.25, abs=0.05)
        assert refused.outcomes[0].reset_after_s == pytest.approx(11.75, abs=0.05)
        assert float(await raw.hget(key, "u") or 0) == ahead  # the later stamp is kept
    finally:
        await raw.aclose()


async def test_a_failing_script_call_is_not_an_outage(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    observer = CountingObserver()
    limiter = make_limiter(redis_server.url, observer=observer)
    policy = LimitPolicy("wrongtype", parse_rate("10/s"), FailureMode.OPEN)
    broken = LimitRequest(policy, "k")
    raw = Redis.from_url(redis_server.url)
    try:
        await raw.set(bucket_key(broken), "not a hash")  # HMGET on it fails: WRONGTYPE
        result = await limiter.check([broken])
        assert result.source == "open" and result.allowed  # answered by the failure mode
        assert limiter.healthy  # Redis answered; only this call failed
        assert "script" in [error for _, error in observer.round_trips]
        assert (await limiter.check([LimitRequest(policy, "other")])).source == "redis"
        # In one batch (one EVALSHA for both), the broken call spoils only itself.
        broken_again, fine = await asyncio.gather(
            limiter.check([broken]), limiter.check([LimitRequest(policy, "fine")])
        )
        assert broken_again.source == "open"
        assert fine.source == "redis" and fine.allowed and fine.outcomes[0].remaining == 9
        before, broken_between, after = await asyncio.gather(
            limiter.check([LimitRequest(policy, "fine")]),
            limiter.check([broken]),
            limiter.check([LimitRequest(policy, "after")]),
        )
        assert [r.source for r in (before, broken_between, after)] == ["redis", "open", "redis"]
        assert [before.outcomes[0].remaining, after.outcomes[0].remaining] == [8, 9]
    finally:
        await raw.aclose()


async def test_a_batch_reply_read_as_fields_until_a_line_is_not_a_level(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    # A reply whose lines happen to add up to four fields each, with an error line among
    # them: the lines before it are read as fields, that one and the rest line by line.
    limiter = make_limiter(redis_server.url)
    policy = LimitPolicy("fields", parse_rate("10/s burst 5"), FailureMode.OPEN)
    checks = [(limiter._prepare(LimitRequest(policy, key)),) for key in ("a", "b", "c")]
    reply = b"1 100 4 100\nE A B C\n1 100 3 100"
    results = limiter._results_of_ones(checks, reply, 0.0, ReplyDecoder())
    assert [r.source for r in results] == ["redis", "open", "redis"]
    assert [results[0].outcomes[0].remaining, results[2].outcomes[0].remaining] == [4, 3]
    assert [r.requests for r in results] == checks


async def test_a_batch_is_one_evalsha_packed_by_the_limiter(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    limiter = make_limiter(redis_server.url)
    await limiter.start()
    policy = LimitPolicy("packed", parse_rate("10/s burst 5"))
    other = LimitPolicy("packed-route", parse_rate("10/s burst 3"))
    single = [LimitRequest(policy, "route=caf\u00e9")]  # a non-ASCII key: bytes, not chars
    double = [LimitRequest(policy, "u", partition="u"), LimitRequest(other, "u", partition="u")]
    raw = Redis.from_url(redis_server.url)
    try:
        await raw.config_resetstat()
        results = await asyncio.gather(
            limiter.check(single), limiter.check(double), limiter.check(single)
        )
        stats = await raw.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1
        assert [[o.remaining for o in r.outcomes] for r in results] == [[4], [4, 2], [3]]
        assert [o.request for o in results[1].outcomes] == double  # in the limits' order
        assert await raw.exists(bucket_key(single[0]).encode()) == 1
    finally:
        await raw.aclose()


async def test_batches_reuse_a_kept_connection_and_skip_one_the_server_closed(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    limiter = make_limiter(redis_server.url)
    limit = [LimitRequest(LimitPolicy("kept", parse_rate("100/h")), "k")]
    assert (await limiter.check(limit)).source == "redis"
    kept = list(limiter._idle)
    assert len(kept) == 1  # kept for the next batch, not given back to the pool
    assert (await limiter.check(limit)).source == "redis"
    assert limiter._idle == kept  # the same connection again

    raw = Redis.from_url(redis_server.url)
    try:
        # The server closes it while it is idle (as a restart or a timeout would).
        killed = await cast(Any, raw).execute_command(
            "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
        )
        assert killed >= 1  # the kept one, and any idle in the pool
        for _ in range(500):  # until this side has read the end of the stream
            if await closed_seen(kept[0]):
                break
            await asyncio.sleep(0.01)
        assert await closed_seen(kept[0])
        result = await limiter.check(limit)
        # The closed connection was not used: Redis answered on a fresh one, no outage.
        assert result.source == "redis" and result.allowed and not result.degraded
        assert result.outcomes[0].remaining == 97
        assert limiter.healthy and limiter.status().outages == 0
        assert len(limiter._idle) == 1  # the pool reopened it (redis-py reuses the object)
    finally:
        await raw.aclose()


async def closed_seen(conn: Any) -> bool:
    try:
        return bool(await conn.can_read())
    except Exception:
        return True  # can_read raises once the connection is closed


async def test_a_bucket_full_again_on_each_visit_shares_its_result(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    limiter = make_limiter(redis_server.url)
    limit = [LimitRequest(LimitPolicy("memo", parse_rate("100/s burst 3")), "k")]
    first = await limiter.check(limit)
    assert first.allowed and first.outcomes[0].remaining == 2
    assert first.outcomes[0].reset_after_s == pytest.approx(0.01, abs=0.001)
    await asyncio.sleep(0.05)  # full again
    again = await limiter.check(limit)
    assert again is first  # the same reply text: the same (read-only) result
    # Levels that differ (one batch draining the bucket) get results of their own.
    await asyncio.sleep(0.05)
    batch = await asyncio.gather(*(limiter.check(limit) for _ in range(4)))
    assert [r.allowed for r in batch] == [True, True, True, False]
    assert [r.outcomes[0].remaining for r in batch] == [2, 1, 0, 0]
    assert batch[0] is first and batch[1] is not first
    assert batch[3].retry_after_s > 0
    # Emptied: refused without Redis until it refills. The bucket keeps only its latest
    # result (level 1, from the batch): full again, a new one, equal to the first.
    assert (await limiter.check(limit)).cached
    await asyncio.sleep(0.05)
    after = await limiter.check(limit)
    assert after == first and after is not first
    assert not limiter._empty.entries
    await asyncio.sleep(0.05)
    assert await limiter.check(limit) is after


async def test_limiters_sharing_a_request_each_charge_their_own_bucket(
    redis_server: RedisServer, make_limiter: Callable[..., Any]
) -> None:
    # A limiter keeps what it sends for a bucket on its LimitRequest; another limiter
    # (another key prefix) checking the same object must still use its own key.
    first = make_limiter(redis_server.url, key_prefix="one")
    second = make_limiter(redis_server.url, key_prefix="two")
    limit = (LimitRequest(LimitPolicy("shared", parse_rate("100/h burst 5")), "k"),)
    remaining = []
    for limiter in (first, first, second, first, second):
        remaining.append((await limiter.check(limit)).outcomes[0].remaining)
    assert remaining == [4, 3, 4, 2, 3]
    raw = Redis.from_url(redis_server.url)
    try:
        for prefix in ("one", "two"):
            assert await raw.exists(bucket_key(limit[0], prefix).encode()) == 1
    finally:
        await raw.aclose()
