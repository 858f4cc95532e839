"""The rate-limit filter (edge/filters/rate_limit.py) on real exchanges, with in-process buckets.

The limiter here is the real :class:`LocalLimiter` on a fake clock: the filter
does not care which limiter answers, and Redis is covered by the integration
tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from edge.filters.rate_limit import RateLimitFilter
from edge.ratelimit.config import RateLimitsConfig
from edge.ratelimit.limiter import LimitRequest, LimitResult
from edge.ratelimit.local_limiter import LocalLimiter
from edge.ratelimit.policies import PolicyBook
from edge.routes import Route, make_route
from mesh.exchange import Exchange
from tests.mesh.telemetry.support import Recorder

CONFIG = RateLimitsConfig.model_validate(
    {
        "policies": {
            "anonymous": {"count_by": "ip", "by_role": {"anonymous": "1/min burst 2"}},
            "per-user": {
                "count_by": "user",
                "limit": "1/min burst 3",
                "by_role": {"admin": "1/min burst 6"},
            },
            "per-user-route": {"count_by": ["user", "route"], "limit": "1/min burst 1"},
        },
        "default_policies": ["anonymous", "per-user"],
    }
)
DEFAULT_ROUTE = make_route(prefix="/api", service="api", source="config")
STRICT_ROUTE = make_route(
    prefix="/pay",
    service="pay",
    source="config",
    options={"rate_limits": ("per-user", "per-user-route")},
)
OPEN_ROUTE = make_route(
    prefix="/free", service="free", source="config", options={"rate_limits": ()}
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingLimiter:
    """A LocalLimiter that remembers what it was asked."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.local = LocalLimiter(clock=self.clock)
        self.asked: list[list[LimitRequest]] = []

    async def check(self, limits: Sequence[LimitRequest]) -> LimitResult:
        return self.check_nowait(limits)

    def check_nowait(self, limits: Sequence[LimitRequest]) -> LimitResult:
        self.asked.append(list(limits))
        return self.local.check_nowait(limits)


def exchange(route: Route | None, identity: Any = None, ip: str = "192.0.2.7") -> Exchange:
    ex = Exchange(
        request=make_mocked_request("GET", "/x"),
        path="/x",
        query="",
        request_id="req-1",
        client_ip=ip,
        upstream_headers=CIMultiDict(),
    )
    if route is not None:
        ex.attrs["route"] = route
    if identity is not None:
        ex.attrs["identity"] = identity
    return ex


async def upstream(ex: Exchange) -> web.StreamResponse:
    return web.Response(text="ok")


def user(subject: str, *roles: str) -> SimpleNamespace:
    """Shaped like the auth feature's Identity (duck-typed on purpose)."""
    return SimpleNamespace(method="jwt", subject=subject, roles=roles, claims={})


async def call(flt: RateLimitFilter, ex: Exchange) -> tuple[int, dict[str, str], Any]:
    response = await flt(ex, upstream)
    ex.apply_response_headers(response)
    body: Any = None
    if isinstance(response, web.Response) and response.body is not None:
        raw = response.body
        assert isinstance(raw, bytes)
        body = json.loads(raw) if response.content_type.endswith("json") else raw.decode()
    return response.status, dict(response.headers), body


async def test_admitted_requests_pass_with_ratelimit_headers() -> None:
    limiter = RecordingLimiter()
    flt = RateLimitFilter(PolicyBook(CONFIG), limiter)
    ex = exchange(DEFAULT_ROUTE)
    status, headers, body = await call(flt, ex)
    assert (status, body) == (200, "ok")
    result = ex.attrs["rate_limit"]  # for the access log
    assert result.allowed and result.source == "local"
    assert headers["RateLimit-Limit"] == "2"
    assert headers["RateLimit-Remaining"] == "1"
    assert headers["RateLimit-Policy"] == '1;w=60;burst=2;policy="anonymous"'
    assert "Retry-After" not in headers


async def test_refusal_is_a_429_problem_with_retry_after() -> None:
    flt = RateLimitFilter(PolicyBook(CONFIG), RecordingLimiter())
    for _ in range(2):
        assert (await call(flt, exchange(DEFAULT_ROUTE)))[0] == 200
    status, headers, body = await call(flt, exchange(DEFAULT_ROUTE))
    assert status == 429
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Retry-After"] == headers["RateLimit-Reset"] == "60"
    assert headers["RateLimit-Remaining"] == "0"
    assert body["type"].endswith("/rate-limited")
    assert body["policy"] == "anonymous" and body["counts_by"] == ["ip"]
    assert body["limit"] == "1/min burst 2" and body["retry_after"] == 60
    assert body["request_id"] == "req-1"
    assert "192.0.2.7" not in json.dumps(body)
    # Another address has its own bucket.
    assert (await call(flt, exchange(DEFAULT_ROUTE, ip="192.0.2.8")))[0] == 200


async def test_roles_get_their_own_rates_and_anonymous_floods_do_not_touch_users() -> None:
    flt = RateLimitFilter(PolicyBook(CONFIG), RecordingLimiter())
    for _ in range(5):
        await call(flt, exchange(DEFAULT_ROUTE))  # an anonymous flood from the same address
    alice, bob = user("alice", "user"), user("bob", "admin")
    alice_statuses = [(await call(flt, exchange(DEFAULT_ROUTE, alice)))[0] for _ in range(4)]
    bob_statuses = [(await call(flt, exchange(DEFAULT_ROUTE, bob)))[0] for _ in range(7)]
    assert alice_statuses == [200, 200, 200, 429]
    assert bob_statuses == [200] * 6 + [429]


async def test_a_refusal_by_the_route_limit_keeps_the_users_tokens() -> None:
    limiter = RecordingLimiter()
    flt = RateLimitFilter(PolicyBook(CONFIG), limiter)
    alice = user("alice", "user")
    assert (await call(flt, exchange(STRICT_ROUTE, alice)))[0] == 200
    for _ in range(3):
        status, _, body = await call(flt, exchange(STRICT_ROUTE, alice))
        assert status == 429 and body["policy"] == "per-user-route"
    assert [len(asked) for asked in limiter.asked] == [2, 2, 2, 2]  # one check, both limits
    # Of her 3 per-user tokens, only the admitted request took one.
    statuses = [(await call(flt, exchange(DEFAULT_ROUTE, alice)))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_routes_without_limits_and_uncounted_callers_pass_untouched() -> None:
    limiter = RecordingLimiter()
    flt = RateLimitFilter(PolicyBook(CONFIG), limiter)
    status, headers, _ = await call(flt, exchange(OPEN_ROUTE))
    assert status == 200 and "RateLimit-Policy" not in headers
    no_policy = RateLimitsConfig.model_validate(
        {"policies": {"per-user": {"count_by": "user", "limit": "1/s"}}}
    )
    flt = RateLimitFilter(PolicyBook(no_policy), limiter)
    assert (await call(flt, exchange(DEFAULT_ROUTE)))[0] == 200  # no default policies
    flt = RateLimitFilter(PolicyBook(CONFIG), limiter)
    assert (await call(flt, exchange(STRICT_ROUTE)))[0] == 200  # anonymous: no user to count
    assert limiter.asked == []


async def test_a_sampled_request_gets_a_ratelimit_span_and_an_unsampled_one_none() -> None:
    flt = RateLimitFilter(PolicyBook(CONFIG), RecordingLimiter())
    for ratio, spans in ((1.0, 1), (0.0, 0)):
        recorder = Recorder(sampler_ratio=ratio)
        ex = exchange(DEFAULT_ROUTE)
        ex.trace = recorder.tracing.start_request(ex)
        assert (await call(flt, ex))[0] == 200
        found = [s for s in recorder.spans if s.name == "ratelimit"]
        assert len(found) == spans
        if found:
            assert dict(found[0].attributes or {}) == {
                "meshgate.ratelimit.source": "local",
                "meshgate.ratelimit.allowed": True,
                "meshgate.ratelimit.degraded": False,
            }


async def test_an_answer_at_once_adds_no_coroutine_to_the_chain() -> None:
    # The limiter answered without waiting: the filter hands back the next handler's
    # own awaitable, so the request's chain is one coroutine shorter.
    flt = RateLimitFilter(PolicyBook(CONFIG), RecordingLimiter())
    ex = exchange(DEFAULT_ROUTE)
    downstream = asyncio.get_running_loop().create_future()
    downstream.set_result(web.Response(text="ok"))
    assert flt(ex, lambda _: downstream) is downstream
    assert ex.attrs["rate_limit"].allowed
    assert ("RateLimit-Remaining", "1") in ex.response_headers


class WaitingLimiter(RecordingLimiter):
    """Answers like RecordingLimiter, but only once ``release`` is called (like Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[asyncio.Future[LimitResult], LimitResult]] = []

    def check_nowait(self, limits: Sequence[LimitRequest]) -> asyncio.Future[LimitResult]:
        future: asyncio.Future[LimitResult] = asyncio.get_running_loop().create_future()
        self.pending.append((future, super().check_nowait(limits)))
        return future

    def release(self) -> None:
        for future, result in self.pending:
            future.set_result(result)
        self.pending.clear()


async def test_a_check_that_waits_holds_the_request_until_answered() -> None:
    limiter = WaitingLimiter()
    flt = RateLimitFilter(PolicyBook(CONFIG), limiter)
    reached: list[Exchange] = []

    async def recording_upstream(ex: Exchange) -> web.StreamResponse:
        reached.append(ex)
        return web.Response(text="ok")

    # The anonymous policy's burst is 2: the third request is refused.
    exchanges = [exchange(DEFAULT_ROUTE) for _ in range(3)]
    tasks = [asyncio.ensure_future(flt(ex, recording_upstream)) for ex in exchanges]
    await asyncio.sleep(0)
    assert reached == [] and not any(t.done() for t in tasks)  # nothing passes before the answer
    limiter.release()
    responses = await asyncio.gather(*tasks)
    assert [r.status for r in responses] == [200, 200, 429]
    assert reached == exchanges[:2]
    assert [ex.attrs["rate_limit"].allowed for ex in exchanges] == [True, True, False]
    assert ("RateLimit-Remaining", "0") in exchanges[1].response_headers
    assert any(name == "Retry-After" for name, _ in exchanges[2].response_headers)
