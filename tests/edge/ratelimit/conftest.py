"""Real Redis processes for the rate limiter tests: one server, or a 3-master cluster.

Servers run on free ports through demo/processes.py, like everything else
the integration tests start, so they can be killed, paused and restarted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from demo.processes import RedisCluster
from edge.ratelimit import (
    LimitPolicy,
    LimitRequest,
    RedisLimiter,
    RedisLimiterSettings,
    RedisSettings,
    parse_rate,
)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster, created with ``redis-cli --cluster create``."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


MakeLimiter = Callable[..., RedisLimiter]


def _one_edge() -> int:
    return 1


# Tests that are about what Redis answers run with a batch timeout far above the
# production default (50 ms): on a loaded two-core CI machine a first check (connect,
# SCRIPT LOAD) or a stalled event loop can pass 50 ms now and then, which rightly
# switches to the fallback and would fail a test that is not about timeouts. Tests
# about timeouts pass ``timeout_s=PRODUCTION_TIMEOUT_S``.
ANSWER_TIMEOUT_S = 1.0
PRODUCTION_TIMEOUT_S = RedisLimiterSettings().timeout_s


@pytest.fixture
async def make_limiter() -> AsyncIterator[MakeLimiter]:
    """``make(url, cluster=False, instances=..., observer=..., **RedisLimiterSettings)``.

    Each limiter has its own client (like a separate edge) and is closed after the test.
    ``timeout_s`` defaults to ``ANSWER_TIMEOUT_S``, not the production default.
    """
    made: list[RedisLimiter] = []

    def make(
        url: str,
        *,
        cluster: bool = False,
        instances: Callable[[], int] = _one_edge,
        observer: Any = None,
        **settings: Any,
    ) -> RedisLimiter:
        settings.setdefault("timeout_s", ANSWER_TIMEOUT_S)
        limiter = RedisLimiter.connect(
            RedisSettings(url, cluster=cluster),
            RedisLimiterSettings(**settings),
            instances=instances,
            observer=observer,
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


@dataclass
class ExactnessRun:
    """What :func:`run_exactness` saw: admissions against the ideal count.

    ``elapsed`` runs from the moment the first check was sent to the moment
    the last answer came back: every admission happened inside that window
    (the bucket starts full at the first check), so at most ``ideal`` =
    burst + rate x elapsed tokens can have been handed out. Measuring from
    before the clients start or until after they have all been gathered
    would add the event loop's start-up and wind-down to the window (tokens
    nobody asked for), which is what made this flaky on a loaded machine.
    """

    admitted: int
    elapsed: float
    ideal: float  # burst + rate x elapsed
    checks: int
    sources: set[str] = field(default_factory=set)


async def run_exactness(
    limiters: Sequence[RedisLimiter],
    *,
    rate: str = "20/s burst 10",
    clients: int = 200,
    duration: float = 5.0,
) -> ExactnessRun:
    """``clients`` concurrent clients hammer one key for ``duration`` seconds.

    Clients are spread over ``limiters`` (separate edges). A refused client
    sleeps for the Retry-After it was given (at most until the deadline), as a
    polite client would, then tries again; an admitted one tries again at once.
    See :class:`ExactnessRun` for how the window is measured.
    """
    policy = LimitPolicy("exact", parse_rate(rate))
    limit = [LimitRequest(policy, f"key-{uuid.uuid4().hex}")]
    admitted = checks = 0
    sources: set[str] = set()
    first_sent: float | None = None
    last_answer = 0.0
    for limiter in limiters:
        await limiter.start()  # an edge loads the script and connects before serving
    deadline = time.monotonic() + duration

    async def client(n: int) -> None:
        nonlocal admitted, checks, first_sent, last_answer
        limiter = limiters[n % len(limiters)]
        while True:
            if first_sent is None:
                first_sent = time.monotonic()
            result = await limiter.check(limit)
            now = last_answer = max(last_answer, time.monotonic())
            checks += 1
            sources.add(result.source)
            if result.allowed:
                admitted += 1
            # Every client asks once more at the deadline, so the window always
            # spans the whole run: tokens nobody took before it count as missed.
            if now >= deadline:
                return
            if not result.allowed:
                await asyncio.sleep(min(max(result.retry_after_s, 0.0005), deadline - now))

    await asyncio.gather(*(client(n) for n in range(clients)))
    assert first_sent is not None
    elapsed = last_answer - first_sent
    ideal = policy.rate.burst + policy.rate.per_second * elapsed
    return ExactnessRun(admitted, elapsed, ideal, checks, sources)


@pytest.fixture
def exactness() -> Callable[..., Awaitable[ExactnessRun]]:
    """The exactness scenario, shared by the single-Redis and the Cluster tests."""
    return run_exactness
