"""Real Redis processes for the rate limiter tests: one server, or a 3-master cluster.

Servers run on free ports through demo/processes.py, like everything else
the integration tests start, so they can be killed, paused and restarted.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from demo.processes import BinaryNotFound, RedisServer, free_port, redis_binary, wait_until
from edge.ratelimit import (
    LimitPolicy,
    LimitRequest,
    RedisLimiter,
    RedisLimiterSettings,
    RedisSettings,
    parse_rate,
)


def _redis_cli() -> str:
    beside_server = Path(redis_binary()).with_name("redis-cli")
    if beside_server.exists():
        return str(beside_server)
    found = shutil.which("redis-cli")
    if found is None:
        raise BinaryNotFound("redis-cli not found beside redis-server nor on PATH")
    return found


def _cli(port: int, *args: str, timeout: float = 10.0) -> str:
    done = subprocess.run(
        [_redis_cli(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port; tests may kill or restart it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RedisClusterProcesses:
    """Three cluster-enabled redis-servers sharing the 16384 slots, no replicas."""

    servers: list[RedisServer]

    @property
    def url(self) -> str:
        """Any one node; the cluster client discovers the rest."""
        return self.servers[0].url


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A real 3-master Redis Cluster, created with ``redis-cli --cluster create``."""
    base = tmp_path_factory.mktemp("redis-cluster")
    servers: list[RedisServer] = []
    try:
        for _ in range(3):
            port = free_port()
            node_dir = base / f"node-{port}"
            node_dir.mkdir()
            server = RedisServer(
                port=port,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / f"nodes-{port}.conf"),
                    # An explicit bus port: port + 10000 may be taken or out of range.
                    "--cluster-port", str(free_port()),
                    "--dir", str(node_dir),
                ],
            )  # fmt: skip
            servers.append(server.start())
        addresses = [f"127.0.0.1:{s.port}" for s in servers]
        _cli(servers[0].port, "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes", timeout=30)  # fmt: skip
        for server in servers:

            def cluster_ok(port: int = server.port) -> bool:
                return "cluster_state:ok" in _cli(port, "cluster", "info")

            wait_until(cluster_ok, 30, f"cluster_state:ok on {server.port}")
        yield RedisClusterProcesses(servers)
    finally:
        for server in servers:
            server.stop()


MakeLimiter = Callable[..., RedisLimiter]


def _one_edge() -> int:
    return 1


@pytest.fixture
async def make_limiter() -> AsyncIterator[MakeLimiter]:
    """``make(url, cluster=False, instances=..., observer=..., **RedisLimiterSettings)``.

    Each limiter has its own client (like a separate edge) and is closed after the test.
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
    """What :func:`run_exactness` saw: admissions against the ideal count."""

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
    sleeps for the Retry-After it was given, as a polite client would, then
    tries again; an admitted one tries again at once.
    """
    policy = LimitPolicy("exact", parse_rate(rate))
    limit = [LimitRequest(policy, f"key-{uuid.uuid4().hex}")]
    admitted = checks = 0
    sources: set[str] = set()
    for limiter in limiters:
        await limiter.start()  # an edge loads the script and connects before serving
    started = time.monotonic()
    deadline = started + duration

    async def client(n: int) -> None:
        nonlocal admitted, checks
        limiter = limiters[n % len(limiters)]
        while (now := time.monotonic()) < deadline:
            result = await limiter.check(limit)
            checks += 1
            sources.add(result.source)
            if result.allowed:
                admitted += 1
            else:
                await asyncio.sleep(min(max(result.retry_after_s, 0.0005), deadline - now))

    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.monotonic() - started
    ideal = policy.rate.burst + policy.rate.per_second * elapsed
    return ExactnessRun(admitted, elapsed, ideal, checks, sources)


@pytest.fixture
def exactness() -> Callable[..., Awaitable[ExactnessRun]]:
    """The exactness scenario, shared by the single-Redis and the Cluster tests."""
    return run_exactness
