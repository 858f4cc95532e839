"""Global rate limits end to end: real redis-servers, Consul, edges, the auth service and an app.

Every request goes through ``meshgate edge`` processes to the ``api`` demo app
behind its sidecar; limits live in a real redis-server (or a real 3-master
Redis Cluster) that the tests kill, pause and restart. Callers authenticate
with real JWTs signed by the demo auth service's key, and with real API keys
created by ``meshgate apikey``.

The module shares one Consul agent, app, sidecar and auth service; each test
starts its own Redis and edges and stops them when it ends, so the number of
edges registered in Consul is always the number the test started.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from demo.auth_service import key_id_for, load_or_create_key_file, mint_token
from demo.processes import (
    ConsulAgent,
    ManagedProcess,
    RedisCluster,
    RedisServer,
    meshgate_argv,
    redis_cli,
    wait_until,
)
from tests.integration.harness import Edge, Mesh, passing_ids, registered_ids

ISSUER = "http://auth.demo"
AUDIENCE = "meshgate"
EDGE_SERVICE = "meshgate-edge"
DEGRADED = "X-RateLimit-Degraded"


# --- the shared mesh, and what each test starts --------------------------------------


@dataclass
class Stack:
    """Consul, the ``api`` app with its sidecar, and the auth service (whose key signs JWTs)."""

    mesh: Mesh
    consul: ConsulAgent
    auth_port: int
    auth_key: Path

    def token(self, sub: str, *roles: str) -> str:
        key = load_or_create_key_file(self.auth_key)
        return mint_token(key, key_id_for(key), sub, roles, ISSUER, AUDIENCE, 300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("rate-limits")
    consul = ConsulAgent().start()
    mesh = Mesh(workdir, consul)
    try:
        mesh.sidecar(mesh.app("api"), "api-1")
        auth_key = workdir / "auth-key.pem"
        load_or_create_key_file(auth_key)
        auth = mesh.auth_service(auth_key)
        yield Stack(mesh, consul, auth.port, auth_key)
    finally:
        mesh.close()
        consul.stop()


@dataclass
class Limits:
    """Starts the redis-servers and edges of one test; stops them when the test ends."""

    stack: Stack
    processes: list[ManagedProcess] = field(default_factory=list)
    redis_servers: list[RedisServer] = field(default_factory=list)
    clusters: list[RedisCluster] = field(default_factory=list)

    def redis(self) -> RedisServer:
        server = RedisServer().start()
        self.redis_servers.append(server)
        return server

    def cluster(self, base: Path) -> RedisCluster:
        cluster = RedisCluster(base)
        self.clusters.append(cluster)
        return cluster.start()

    def edge(
        self,
        redis_url: str,
        policies: dict[str, Any],
        routes: list[dict[str, Any]],
        *,
        default_policies: Sequence[str] = (),
        redis: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> Edge:
        """An edge with these policies, its limits in ``redis_url``, JWTs verified if ``auth``."""
        extra: dict[str, Any] = {
            "rate_limits": {
                "redis": {"url": redis_url, **(redis or {})},
                "policies": policies,
                "default_policies": list(default_policies),
            },
            "registration": {"check_interval": "500ms"},
        }
        if auth is not None:
            extra["auth"] = {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks": {"url": f"http://127.0.0.1:{self.stack.auth_port}/.well-known/jwks.json"},
                # Anonymous callers are let in (and limited by IP); tokens are checked.
                "default_route": "optional",
                **auth,
            }
        before = len(self.stack.mesh.processes)
        try:
            return self.stack.mesh.edge(routes, extra=extra)
        finally:  # stopped with the test even if it never became ready
            self.processes += self.stack.mesh.processes[before:]

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=5)
        for server in self.redis_servers:
            server.stop()
        for cluster in self.clusters:
            cluster.stop()


@pytest.fixture
def limits(stack: Stack) -> Iterator[Limits]:
    started = Limits(stack)
    try:
        yield started
    finally:
        started.close()


def admin_json(edge: Edge, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def wait_for_healthy_edges(edges: Sequence[Edge], count: int) -> None:
    """Until every edge counts ``count`` healthy edges in Consul (the fallback's divisor)."""
    for edge in edges:
        wait_until(
            lambda e=edge: admin_json(e, "/ratelimits")["local_fallback"]["healthy_edges"] == count,
            20,
            f"edge :{edge.port} to see {count} healthy edges",
        )


@dataclass(frozen=True)
class Reply:
    sent: float
    answered: float
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def latency(self) -> float:
        return self.answered - self.sent


async def send(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> Reply:
    sent = time.monotonic()
    async with session.get(url, headers=headers) as resp:
        body: Any = (
            await resp.json(content_type=None)
            if "json" in resp.headers.get("Content-Type", "")
            else await resp.read()
        )
        return Reply(sent, time.monotonic(), resp.status, dict(resp.headers), body)


async def statuses(
    session: aiohttp.ClientSession, url: str, n: int, headers: dict[str, str] | None = None
) -> list[int]:
    return [(await send(session, url, headers)).status for _ in range(n)]


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


# --- exactness -----------------------------------------------------------------------


@dataclass
class Hammered:
    admitted: int
    elapsed: float
    ideal: float
    statuses: Counter[int]
    degraded: int
    refusal: Reply | None
    per_edge: Counter[int]


async def hammer(
    edges: Sequence[Edge],
    path: str,
    *,
    rate: float,
    burst: int,
    warm_path: str,
    clients: int = 200,
    duration: float = 5.0,
) -> Hammered:
    """``clients`` concurrent clients on one key through ``edges`` for ``duration`` seconds.

    Client ``n`` uses edge ``n % len(edges)``. Each first opens its connection
    with a request to ``warm_path`` (not limited), so that 200 TCP handshakes
    do not delay the start; then all start within 50 ms of each other. A
    refused client asks again after a random pause of 0.1 to 0.3 s
    (Retry-After is whole seconds, far longer than a token takes at 20/s), an
    admitted one at once, until the deadline: about 1000 requests a second,
    enough that a token never waits long for a taker, not so many that
    requests queue up in the edges. ``elapsed`` runs from the first request
    sent to the last response received: every admission happened inside it,
    so at most ``burst + rate x elapsed`` can have been admitted.
    """
    replies: list[tuple[int, Reply]] = []
    warmed = 0
    go = asyncio.Event()
    deadline = math.inf
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(n: int) -> None:
            nonlocal warmed, deadline
            rng = random.Random(n)
            edge = edges[n % len(edges)]
            assert (await send(session, f"{edge.url}{warm_path}")).status == 200
            warmed += 1
            if warmed == clients:
                deadline = time.monotonic() + duration
                go.set()
            await go.wait()
            await asyncio.sleep(rng.uniform(0, 0.05))
            while True:
                reply = await send(session, f"{edge.url}{path}")
                replies.append((n % len(edges), reply))
                pause = 0.0 if reply.status == 200 else rng.uniform(0.1, 0.3)
                if time.monotonic() + pause >= deadline:
                    return
                await asyncio.sleep(pause)

        await asyncio.gather(*(client(n) for n in range(clients)))
    first = min(r.sent for _, r in replies)
    last = max(r.answered for _, r in replies)
    admitted = [(i, r) for i, r in replies if r.status == 200]
    refusals = [r for _, r in replies if r.status == 429]
    return Hammered(
        admitted=len(admitted),
        elapsed=last - first,
        ideal=burst + rate * (last - first),
        statuses=Counter(r.status for _, r in replies),
        degraded=sum(1 for _, r in replies if DEGRADED in r.headers),
        refusal=refusals[0] if refusals else None,
        per_edge=Counter(i for i, _ in admitted),
    )


EXACT_POLICIES = {"exact": {"count_by": "route", "limit": "20/s burst 10"}}
EXACT_ROUTES = [
    {"prefix": "/api", "service": "api", "rate_limits": ["exact"]},
    {"prefix": "/warm", "service": "api", "prefix_rewrite": "/api", "rate_limits": []},
]
# Exactness is the point here, not timeouts (tested below): 200 clients, two
# edges and Redis share two cores, and a 50 ms stall of an edge's event loop
# would rightly switch that edge to its fallback.
EXACT_REDIS = {"timeout": "500ms"}


def assert_exact(run: Hammered) -> None:
    assert run.statuses.keys() <= {200, 429}, run.statuses
    assert run.degraded == 0, "an edge fell back to local limits"
    assert run.admitted <= run.ideal, run
    assert run.admitted >= 0.98 * run.ideal, run
    # Both edges admitted: the limit is one bucket for both, not one each.
    assert len(run.per_edge) == 2 and min(run.per_edge.values()) > 0, run.per_edge
    assert run.refusal is not None
    headers = run.refusal.headers
    assert headers["RateLimit-Policy"] == '20;w=1;burst=10;policy="exact"'
    assert headers["Retry-After"] == headers["RateLimit-Reset"] == "1"
    assert headers["RateLimit-Limit"] == "10" and headers["RateLimit-Remaining"] == "0"


async def test_exactness_two_edges_one_redis(limits: Limits) -> None:
    redis = limits.redis()
    edges = [
        limits.edge(redis.url, EXACT_POLICIES, EXACT_ROUTES, redis=EXACT_REDIS) for _ in range(2)
    ]
    run = await hammer(edges, "/api/echo", rate=20.0, burst=10, warm_path="/warm/echo")
    print(f"single redis through 2 edges: {run}")
    assert_exact(run)


async def test_exactness_on_a_redis_cluster(limits: Limits, tmp_path: Path) -> None:
    cluster = limits.cluster(tmp_path / "cluster")
    redis = {**EXACT_REDIS, "cluster": True}
    edges = [limits.edge(cluster.url, EXACT_POLICIES, EXACT_ROUTES, redis=redis) for _ in range(2)]
    run = await hammer(edges, "/api/echo", rate=20.0, burst=10, warm_path="/warm/echo")
    print(f"3-master cluster through 2 edges: {run}")
    assert_exact(run)
    # The buckets really are in the cluster.
    keys = [redis_cli(s.port, "--scan", "--pattern", "mg:rl:*") for s in cluster.servers]
    assert sum(1 for out in keys if "exact" in out) == 1


# --- all or nothing, roles, plans, IPs ----------------------------------------------


async def test_a_refusal_by_the_route_limit_keeps_the_users_tokens(
    stack: Stack, limits: Limits
) -> None:
    redis = limits.redis()
    edge = limits.edge(
        redis.url,
        {
            "per-user": {"count_by": "user", "limit": "1/min burst 5"},
            "per-user-route": {"count_by": ["user", "route"], "limit": "1/min burst 1"},
        },
        [
            {"prefix": "/api/pay", "service": "api", "rate_limits": ["per-user", "per-user-route"]},
            {"prefix": "/api", "service": "api", "rate_limits": ["per-user"]},
        ],
        auth={},
    )
    alice = {"Authorization": f"Bearer {stack.token('alice', 'user')}"}
    async with aiohttp.ClientSession() as session:
        first = await send(session, f"{edge.url}/api/pay/1", alice)
        assert first.status == 200
        for _ in range(3):
            refused = await send(session, f"{edge.url}/api/pay/1", alice)
            assert refused.status == 429
            assert refused.body["policy"] == "per-user-route"
            assert refused.body["counts_by"] == ["user", "route"]
        # Four requests, one admitted: 4 of alice's 5 per-user tokens are left.
        remaining = []
        for _ in range(5):
            reply = await send(session, f"{edge.url}/api/echo", alice)
            remaining.append((reply.status, reply.headers.get("RateLimit-Remaining")))
        assert remaining == [(200, "3"), (200, "2"), (200, "1"), (200, "0"), (429, "0")]


async def test_limits_follow_roles_and_plans_and_anonymous_floods_spare_users(
    stack: Stack, limits: Limits
) -> None:
    redis = limits.redis()
    edge = limits.edge(
        redis.url,
        {
            "anonymous": {"count_by": "ip", "by_role": {"anonymous": "1/min burst 3"}},
            "per-user": {
                "count_by": "user",
                "limit": "1/min burst 4",
                "by_role": {"admin": "1/min burst 8"},
            },
            "per-key": {
                "count_by": "api_key",
                "limit": "1/min burst 2",
                "by_plan": {"gold": "1/min burst 6"},
            },
        },
        [{"prefix": "/api", "service": "api"}],
        default_policies=["anonymous", "per-user", "per-key"],
        auth={"api_keys": {"redis_url": redis.url}},
    )
    gold, free = (create_api_key(redis.url, consumer, plan) for consumer, plan in
                  (("acme", "gold"), ("hobby", "free")))  # fmt: skip
    url = f"{edge.url}/api/echo"
    async with aiohttp.ClientSession() as session:
        # An anonymous flood from 127.0.0.1 exhausts the anonymous bucket of that address...
        assert await statuses(session, url, 10) == [200] * 3 + [429] * 7
        refused = await send(session, url)
        assert refused.body["policy"] == "anonymous" and refused.body["counts_by"] == ["ip"]
        # ... and signed-in callers from the same address are not touched by it.
        alice = {"Authorization": f"Bearer {stack.token('alice', 'user')}"}
        bob = {"Authorization": f"Bearer {stack.token('bob', 'admin')}"}
        assert await statuses(session, url, 5, alice) == [200] * 4 + [429]
        assert await statuses(session, url, 9, bob) == [200] * 8 + [429]
        assert (await send(session, url, bob)).headers["RateLimit-Limit"] == "8"
        # API keys: by the key's plan; a plan no policy names gets the default limit.
        for key, burst in ((gold, 6), (free, 2)):
            replies = [await send(session, url, {"X-API-Key": key}) for _ in range(burst + 1)]
            assert [r.status for r in replies] == [200] * burst + [429]
            assert replies[-1].body["policy"] == "per-key"
            assert replies[-1].body["counts_by"] == ["api_key"]
            # Only per-key counts API keys: "user" is a token's subject.
            assert replies[0].headers["RateLimit-Policy"] == (
                f'1;w=60;burst={burst};policy="per-key"'
            )
        # No key, token or address reached Redis in clear.
        dump = redis_cli(redis.port, "--scan", "--pattern", "mg:rl:*")
        assert dump.count("\n") >= 5
        for secret in (gold, free, "alice", "bob", "acme", "127.0.0.1"):
            assert secret not in dump
    view = admin_json(edge, "/ratelimits")
    by_role = view["other_routes"]["by_role"]
    assert by_role["admin"]["per-user"] == "1/min burst 8"
    assert by_role["anonymous"]["anonymous"] == "1/min burst 3"
    assert view["other_routes"]["by_plan"]["gold"]["per-key"] == "1/min burst 6"
    assert view["redis"]["healthy"] is True


def create_api_key(redis_url: str, consumer: str, plan: str) -> str:
    done = subprocess.run(
        meshgate_argv("apikey", "--redis", redis_url, "create", "--consumer", consumer,
                      "--plan", plan),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


# --- edges counting each other --------------------------------------------------------


async def test_each_edge_registers_itself_and_leaves_on_shutdown(
    stack: Stack, limits: Limits
) -> None:
    redis = limits.redis()
    edges = [limits.edge(redis.url, EXACT_POLICIES, EXACT_ROUTES) for _ in range(2)]
    wait_for_healthy_edges(edges, 2)
    ids = passing_ids(stack.consul, EDGE_SERVICE)
    assert len(ids) == 2 and all(str(edge.port) in " ".join(ids) for edge in edges)
    limits.processes[0].stop()  # SIGTERM: readiness fails, the instance deregisters
    assert len(registered_ids(stack.consul, EDGE_SERVICE)) == 1
    wait_for_healthy_edges(edges[1:], 1)


# --- Redis failing under load -------------------------------------------------------

FAILURE_POLICIES = {
    "fail-open": {"count_by": "route", "limit": "5/s burst 5", "on_failure": "open"},
    "fail-closed": {"count_by": "route", "limit": "5/s burst 5", "on_failure": "closed"},
    "fail-local": {"count_by": "route", "limit": "10/s burst 20", "on_failure": "local"},
}
FAILURE_ROUTES = [
    {
        "prefix": f"/{mode}",
        "service": "api",
        "prefix_rewrite": "/api",
        "rate_limits": [f"fail-{mode}"],
    }
    for mode in ("open", "closed", "local")
]
MODES = ("open", "closed", "local")


@dataclass(frozen=True)
class Sample:
    edge: int
    mode: str
    reply: Reply

    @property
    def degraded(self) -> str | None:
        return self.reply.headers.get(DEGRADED)


class Load:
    """Background clients, one per edge and route: request, pause 20 ms, repeat, until stopped.

    About 45 requests a second per client: the load is steady, and small
    enough that the latencies measured are the edges', not a saturated machine's.
    """

    def __init__(self, edges: Sequence[Edge], clients: int = 1, pause: float = 0.02) -> None:
        self.samples: list[Sample] = []
        self._edges = edges
        self._clients = clients
        self._pause = pause
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for e, edge in enumerate(self._edges):
            for mode in MODES:
                for _ in range(self._clients):
                    self._tasks.append(asyncio.create_task(self._client(e, mode, edge)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._session is not None:
            await self._session.close()

    async def _client(self, e: int, mode: str, edge: Edge) -> None:
        assert self._session is not None
        url = f"{edge.url}/{mode}/echo"
        while not self._stop.is_set():
            self.samples.append(Sample(e, mode, await send(self._session, url)))
            await asyncio.sleep(self._pause)

    def between(self, start: float, end: float, mode: str | None = None) -> list[Sample]:
        """Samples sent in [start, end), of ``mode`` if given."""
        return [
            s
            for s in self.samples
            if start <= s.reply.sent < end and (mode is None or s.mode == mode)
        ]


# A bucket Redis reported empty just before it failed stays refused until its
# next token is due (the known-empty cache; 1/rate = 0.2 s here): judge the
# failure modes from then on.
CACHED_REFUSALS_S = 0.25


def assert_failure_modes_apply(load: Load, start: float, end: float, edges: int) -> None:
    """Between ``start`` (Redis failed) and ``end``: open admits, closed answers 503, local
    enforces each edge's share of the limit."""
    judged = load.between(start + CACHED_REFUSALS_S, end)
    assert judged, "no request was sent while Redis was failing"
    for s in judged:
        if s.mode == "open":
            assert (s.reply.status, s.degraded) == (200, "open"), s
        elif s.mode == "closed":
            assert (s.reply.status, s.degraded) == (503, "closed"), s
            assert s.reply.body["type"].endswith("/rate-limits-unavailable")
            assert s.reply.body["policies"] == ["fail-closed"]
            assert s.reply.headers["Retry-After"] == "1"
        else:
            assert s.degraded == "local", s
    for e in range(edges):
        local = [s for s in load.between(start, end, "local") if s.edge == e]
        local = [s for s in local if s.degraded == "local"]
        assert {s.reply.status for s in local} == {200, 429}
        # Each edge enforces its share of 10/s burst 20: 1/edges of it, from a full bucket.
        admitted = sum(1 for s in local if s.reply.status == 200)
        span = max(s.reply.answered for s in local) - min(s.reply.sent for s in local)
        share_burst, share_rate = 20 / edges, 10 / edges
        assert share_burst <= admitted <= share_burst + share_rate * span + 1, (admitted, span)


def latencies(samples: Sequence[Sample]) -> list[float]:
    return [s.reply.latency for s in samples]


async def seconds_until_global(load: Load, since: float, edges: int, limit: float) -> float:
    """Seconds from ``since`` until every edge answers from Redis again (no degraded header)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        await asyncio.sleep(0.05)
        recovered = []
        for e in range(edges):
            mine = [s for s in load.between(since, math.inf) if s.edge == e]
            healthy = [s for s in mine if s.degraded is None]
            if healthy and all(
                s.degraded is None for s in mine if s.reply.sent >= healthy[0].reply.sent
            ):
                recovered.append(healthy[0].reply.answered)
        if len(recovered) == edges:
            return max(recovered) - since
    raise AssertionError(f"limits still degraded {limit}s after Redis came back")


def metric(edge: Edge, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise KeyError(name)


async def test_redis_killed_during_load(limits: Limits) -> None:
    redis = limits.redis()
    edges = [limits.edge(redis.url, FAILURE_POLICIES, FAILURE_ROUTES) for _ in range(2)]
    wait_for_healthy_edges(edges, 2)  # the local fallback's divisor comes from Consul
    async with Load(edges) as load:
        await asyncio.sleep(1.0)
        killed = time.monotonic()
        redis.kill()
        await asyncio.sleep(2.0)
        view = await asyncio.to_thread(admin_json, edges[0], "/ratelimits")
        assert view["redis"]["state"] == "degraded" and view["redis"]["last_error"]
        assert view["local_fallback"]["healthy_edges"] == 2
        assert await asyncio.to_thread(metric, edges[1], "meshgate_ratelimit_degraded") == 1.0
        restarted = time.monotonic()
        redis.start()
        recovery = await seconds_until_global(load, restarted, len(edges), limit=10.0)
        await asyncio.sleep(0.5)
    healthy = load.between(0, killed)
    assert healthy and all(s.degraded is None for s in healthy)
    assert {s.reply.status for s in healthy if s.mode == "closed"} == {200, 429}
    assert_failure_modes_apply(load, killed, restarted, len(edges))
    down = load.between(killed, restarted)
    down_p99 = p99(latencies(down))
    print(
        f"redis down: {len(down)} requests, p99 {down_p99 * 1000:.1f} ms; "
        f"global again {recovery:.2f} s after restart"
    )
    assert down_p99 < 0.100
    assert recovery < 5.0
    # Global again: decided by the restarted Redis, which holds the buckets.
    after = load.between(restarted + recovery + 0.1, math.inf)
    assert after and all(s.degraded is None for s in after)
    assert {s.reply.status for s in after if s.mode == "open"} == {200, 429}
    assert "fail-open" in redis_cli(redis.port, "--scan", "--pattern", "mg:rl:*")
    assert metric(edges[0], "meshgate_ratelimit_degraded") == 0.0


async def test_redis_paused_timeouts_are_honoured(limits: Limits) -> None:
    redis = limits.redis()
    edge = limits.edge(redis.url, FAILURE_POLICIES, FAILURE_ROUTES)  # timeout: the 50 ms default
    async with Load([edge]) as load:
        await asyncio.sleep(0.5)
        paused = time.monotonic()
        redis_cli(redis.port, "CLIENT", "PAUSE", "3000")
        await asyncio.sleep(3.0)
        recovery = await seconds_until_global(load, paused + 3.0, 1, limit=10.0)
        await asyncio.sleep(0.3)
    during = load.between(paused, paused + 3.0)
    worst = max(latencies(during))
    print(
        f"redis paused: {len(during)} requests, p99 {p99(latencies(during)) * 1000:.1f} ms, "
        f"worst {worst * 1000:.1f} ms; global again {recovery:.2f} s after the pause"
    )
    # Nobody waited for the pause: one batch waited out the 50 ms timeout, the
    # rest were answered at once by the failure modes.
    assert p99(latencies(during)) < 0.100
    assert worst < 0.5
    assert_failure_modes_apply(load, paused, paused + 3.0, 1)
    assert recovery < 5.0
    assert edge_status(edge)["outages"] == 1


def edge_status(edge: Edge) -> dict[str, Any]:
    status: dict[str, Any] = admin_json(edge, "/ratelimits")["redis"]
    return status
