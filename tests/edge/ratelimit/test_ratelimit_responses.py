"""RateLimit-* headers and refusal problems (edge/ratelimit/responses.py), from real results."""

from __future__ import annotations

from dataclasses import replace

from edge.ratelimit import responses
from edge.ratelimit.limiter import (
    FailureMode,
    LimitOutcome,
    LimitPolicy,
    LimitRequest,
    LimitResult,
)
from edge.ratelimit.local_limiter import LocalLimiter
from edge.ratelimit.rate import parse_rate
from edge.ratelimit.responses import (
    DEGRADED_HEADER,
    policy_item,
    problem_fields,
    rate_limit_headers,
)

USER = LimitPolicy("per-user", parse_rate("10/s burst 3"))
ROUTE = LimitPolicy("route", parse_rate("1000/min burst 50"), FailureMode.CLOSED)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counts_by(name: str) -> tuple[str, ...]:
    return {"per-user": ("user",), "route": ("route",)}[name]


def test_policy_items_say_the_rate_as_configured() -> None:
    assert policy_item(LimitRequest(USER, "k")) == '10;w=1;burst=3;policy="per-user"'
    assert policy_item(LimitRequest(ROUTE, "k")) == '1000;w=60;burst=50;policy="route"'
    daily = LimitPolicy("daily", parse_rate("5000/day"))
    assert policy_item(LimitRequest(daily, "k")) == '5000;w=86400;burst=5000;policy="daily"'


def test_admitted_request_headers_describe_the_limit_closest_to_exhaustion() -> None:
    limiter = LocalLimiter(clock=Clock())
    limits = [LimitRequest(ROUTE, "r"), LimitRequest(USER, "u")]
    result = limiter.decide(limits)
    headers = dict(rate_limit_headers(result))
    assert headers == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "1",  # one token short at 10/s: full again in 0.1 s, rounded up
        "RateLimit-Policy": '1000;w=60;burst=50;policy="route", 10;w=1;burst=3;policy="per-user"',
    }


def test_refusal_headers_agree_with_retry_after() -> None:
    clock = Clock()
    slow = LimitPolicy("slow", parse_rate("1/min burst 1"))
    limiter = LocalLimiter(clock=clock)
    limit = [LimitRequest(slow, "u")]
    assert limiter.decide(limit).allowed
    clock.now += 12.5
    refused = limiter.decide(limit)
    headers = dict(rate_limit_headers(refused))
    assert headers["Retry-After"] == headers["RateLimit-Reset"] == "48"  # 47.5 s, rounded up
    assert headers["RateLimit-Remaining"] == "0"
    assert DEGRADED_HEADER not in headers


def test_429_problem_names_policy_dimensions_limit_and_retry() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock=clock)
    limit = [LimitRequest(USER, "user=3fa9")]
    for _ in range(3):
        assert limiter.decide(limit).allowed
    refused = limiter.decide(limit)
    fields = problem_fields(refused, counts_by)
    assert fields["title"] == "Too many requests"
    assert fields["extra"] == {
        "policy": "per-user",
        "counts_by": ["user"],
        "limit": "10/s burst 3",
        "retry_after": 1,
    }
    assert "'per-user' (10/s burst 3, counted by user)" in fields["detail"]
    assert "retry in 1 s" in fields["detail"]
    assert "3fa9" not in str(fields)  # never the key


def test_503_problem_for_closed_policies() -> None:
    result = LimitResult(
        allowed=False,
        source="closed",
        degraded=True,
        requests=(LimitRequest(ROUTE, "r"), LimitRequest(USER, "u")),
        retry_after_s=0.5,
    )
    assert result.status == 503
    fields = problem_fields(result, counts_by)
    assert fields["title"] == "Rate limits unavailable"
    assert fields["extra"] == {"policies": ["route"], "retry_after": 1}
    headers = dict(rate_limit_headers(result))
    assert headers[DEGRADED_HEADER] == "closed"
    assert headers["Retry-After"] == "1"
    assert "RateLimit-Remaining" not in headers  # no bucket was looked at
    assert "RateLimit-Policy" in headers


def test_degraded_answers_say_who_decided() -> None:
    local = LocalLimiter(clock=Clock()).decide([LimitRequest(USER, "u")], degraded=True)
    assert dict(rate_limit_headers(local))[DEGRADED_HEADER] == "local"
    opened = LimitResult(True, "open", True, (LimitRequest(USER, "u"),))
    assert dict(rate_limit_headers(opened))[DEGRADED_HEADER] == "open"
    outcome = LimitOutcome(LimitRequest(USER, "u"), False, 0, 0.3, 0.1)
    cached = LimitResult(False, "redis", True, (outcome.request,), (outcome,), 0.1, cached=True)
    assert dict(rate_limit_headers(cached))[DEGRADED_HEADER] == "cache"
    healthy = LimitResult(True, "redis", False, (outcome.request,), (outcome,))
    assert DEGRADED_HEADER not in dict(rate_limit_headers(healthy))


def admitted(policy: LimitPolicy, remaining: int, reset_after_s: float) -> LimitResult:
    request = LimitRequest(policy, "k")
    outcome = LimitOutcome(request, True, remaining, reset_after_s, 0.0)
    return LimitResult(True, "redis", False, (request,), (outcome,))


def test_header_tuples_of_repeated_values_are_made_once() -> None:
    first = rate_limit_headers(admitted(USER, 2, 0.4))
    again = rate_limit_headers(admitted(USER, 2, 0.3))
    assert list(first) == [
        ("RateLimit-Limit", "3"),
        ("RateLimit-Remaining", "2"),
        ("RateLimit-Reset", "1"),
        ("RateLimit-Policy", '10;w=1;burst=3;policy="per-user"'),
    ]
    assert again is first  # the same values: the whole set is made once
    other = rate_limit_headers(admitted(USER, 1, 0.4))
    assert other[1] == ("RateLimit-Remaining", "1")
    assert other[0] is first[0] and other[3] is first[3]  # shared parts are made once too
    # Large numbers are not kept, but still right.
    big = dict(rate_limit_headers(admitted(USER, 123_456_789, 5000.5)))
    assert big["RateLimit-Remaining"] == "123456789" and big["RateLimit-Reset"] == "5001"


def test_header_cache_tells_policies_apart_by_identity() -> None:
    # Equal policies are different objects; each gets its own, equal, headers.
    twin = LimitPolicy("per-user", parse_rate("10/s burst 3"))
    other = LimitPolicy("per-user", parse_rate("20/s burst 7"))
    assert rate_limit_headers(admitted(twin, 1, 0.1)) == rate_limit_headers(admitted(USER, 1, 0.1))
    headers = dict(rate_limit_headers(admitted(other, 1, 0.1)))
    assert headers["RateLimit-Limit"] == "7"
    assert headers["RateLimit-Policy"] == '20;w=1;burst=7;policy="per-user"'


def test_admitted_header_sets_stay_right_and_bounded() -> None:
    # Every distinct (remaining, reset, degraded) gets its own set; the cache starts over
    # once full rather than growing with the values seen.
    cache = responses._HeaderCache()
    for n in range(responses._CACHED_SETS + 5):
        headers = dict(cache.admitted_set(USER, n, n % 7, "local" if n % 2 else ""))
        assert headers["RateLimit-Remaining"] == str(n)
        assert headers["RateLimit-Reset"] == str(n % 7)
        assert headers.get(DEGRADED_HEADER) == ("local" if n % 2 else None)
    assert len(cache.admitted_sets(USER)) <= responses._CACHED_SETS


def test_header_cache_stays_bounded() -> None:
    cache = responses._HeaderCache()
    policies = [
        LimitPolicy(f"p{n}", parse_rate(f"{n + 1}/s"))
        for n in range(responses._CACHED_POLICIES + 5)
    ]
    for policy in policies:
        assert cache.limit(policy) == ("RateLimit-Limit", str(policy.rate.burst))
    assert len(cache.policies) <= responses._CACHED_POLICIES
    assert cache.policy(policies[0]) == ("RateLimit-Policy", '1;w=1;burst=1;policy="p0"')
    for n in (0, responses._CACHED_NUMBERS - 1, responses._CACHED_NUMBERS, 10**9):
        assert cache.remaining(n) == ("RateLimit-Remaining", str(n))
    assert set(cache.remainings) == {0, responses._CACHED_NUMBERS - 1}


def test_a_results_headers_are_made_once_and_kept_on_it() -> None:
    limit = LimitRequest(USER, "u=1")
    result = LimitResult(True, "redis", False, (limit,), (LimitOutcome(limit, True, 2, 0.1, 0.0),))
    assert result.headers is None
    headers = rate_limit_headers(result)
    assert result.headers is headers
    assert dict(headers) == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "1",
        "RateLimit-Policy": '10;w=1;burst=3;policy="per-user"',
    }
    assert rate_limit_headers(result) is headers  # shared by every request given this result
    # Kept headers are no part of the answer: not compared, not copied to another result.
    fresh = LimitResult(True, "redis", False, (limit,), (LimitOutcome(limit, True, 2, 0.1, 0.0),))
    assert fresh == result and hash(fresh) == hash(result)
    degraded = replace(result, degraded=True, source="local")
    assert degraded.headers is None
    assert dict(rate_limit_headers(degraded))[DEGRADED_HEADER] == "local"
