"""Which buckets a request draws from (edge/ratelimit/policies.py): rates, keys, partitions."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from edge.ratelimit import policies as policies_module
from edge.ratelimit.caller import ANONYMOUS, Caller
from edge.ratelimit.config import RateLimitsConfig
from edge.ratelimit.keys import bucket_key, slot_of
from edge.ratelimit.limiter import LimitResult
from edge.ratelimit.policies import PolicyBook, hashed
from edge.ratelimit.rate import Rate
from edge.routes import make_route

CONFIG = RateLimitsConfig.model_validate(
    {
        "policies": {
            "anonymous": {"count_by": "ip", "by_role": {"anonymous": "2/s burst 4"}},
            "per-user": {
                "count_by": "user",
                "limit": "10/s burst 20",
                "by_role": {"admin": "unlimited", "user": "5/s", "gold": "50/s", "silver": "20/s"},
                "by_plan": {"free": "1/s burst 3", "pro": "unlimited"},
            },
            "per-key": {"count_by": "api_key", "limit": "7/s"},
            "user-route": {"count_by": ["user", "route"], "limit": "1/min burst 1"},
            "route-total": {"count_by": "route", "limit": "100/s"},
            "per-role": {"count_by": "role", "limit": "30/s", "by_role": {"user": "40/s"}},
            "tenant": {"count_by": ["header:x-tenant", "ip"], "limit": "3/s"},
            "org": {"count_by": "claim:org", "limit": "9/s"},
        },
        "default_policies": ["anonymous", "per-user"],
    }
)
BOOK = PolicyBook(CONFIG)
ALICE = Caller(authenticated=True, subject="alice", roles=("user",), method="jwt")
BOB = Caller(authenticated=True, subject="bob", roles=("admin",), method="jwt")


Facts = tuple[Caller, str, str, dict[str, str]]


def facts(
    caller: Caller = ANONYMOUS,
    ip: str = "10.0.0.1",
    route: str = "orders",
    headers: dict[str, str] | None = None,
) -> Facts:
    """The arguments of Policy.limit_for (and, after the policies, of PolicyBook.limits)."""
    return caller, ip, route, headers or {}


def limit(policy: str, f: Facts) -> Any:
    return BOOK.policies[policy].limit_for(*f)


def rate_of(policy: str, caller: Caller) -> Rate | None:
    tier, _ = BOOK.policies[policy].tier_for(caller)
    return None if tier is None else tier.rate


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        (ANONYMOUS, Rate(10.0, 20)),  # no role listed: the default limit
        (ALICE, Rate(5.0, 5)),
        (BOB, None),  # admin: unlimited
        (Caller(True, "c", roles=("user", "gold", "silver")), Rate(50.0, 50)),  # most generous
        (Caller(True, "c", roles=("user", "admin")), None),  # unlimited beats any rate
        (Caller(True, "c", roles=("auditor",)), Rate(10.0, 20)),  # unlisted role: default
        (Caller(True, "k", roles=("admin",), plan="free"), Rate(1.0, 3)),  # plan beats role
        (Caller(True, "k", roles=("user",), plan="pro"), None),
        (Caller(True, "k", roles=("user",), plan="enterprise"), Rate(5.0, 5)),  # unlisted plan
    ],
)
def test_the_rate_comes_from_plan_then_roles_then_the_default(
    caller: Caller, expected: Rate | None
) -> None:
    assert rate_of("per-user", caller) == expected


def test_anonymous_only_policy_leaves_signed_in_callers_alone() -> None:
    anonymous = limit("anonymous", facts())
    assert anonymous is not None and anonymous.policy.rate == Rate(2.0, 4)
    assert limit("anonymous", facts(ALICE)) is None


def test_callers_lacking_a_dimension_are_not_counted() -> None:
    assert limit("per-user", facts(ANONYMOUS)) is None  # no subject
    assert limit("per-key", facts(ALICE)) is None  # a token is not an API key
    assert limit("tenant", facts(ALICE)) is None  # no X-Tenant header
    assert limit("org", facts(ALICE)) is None  # no org claim
    assert limit("anonymous", facts(ip="")) is None  # no client address


def test_caller_values_are_hashed_and_configured_names_are_not() -> None:
    f = facts(ALICE, route="orders-api", headers={"x-tenant": "acme"})
    assert limit("per-user", f).key == f"user={hashed('alice')}"
    assert limit("user-route", f).key == f"user={hashed('alice')}|route=orders-api"
    assert limit("route-total", f).key == "route=orders-api"
    assert limit("per-role", f).key == "role=user"
    assert limit("tenant", f).key == f"header:x-tenant={hashed('acme')}|ip={hashed('10.0.0.1')}"
    claims = Caller(True, "c", claims=MappingProxyType({"org": {"id": 7}}))
    org_hash = hashed('{"id": 7}')  # non-string claims as canonical JSON
    assert limit("org", facts(claims)).key == f"claim:org={org_hash}"
    key = Caller(True, "acme-app", roles=(), consumer="acme-app", plan="free", method="apikey")
    assert limit("per-key", facts(key)).key == f"api_key={hashed('acme-app')}"


def test_no_secret_or_identity_reaches_a_redis_key() -> None:
    secret = "mgk_0123456789ab_" + "s" * 43
    caller = Caller(True, "alice@example.com", roles=("user",), consumer=secret, method="apikey")
    f = facts(caller, ip="203.0.113.9", headers={"x-tenant": secret})
    for name in BOOK.policies:
        request = limit(name, f)
        if request is not None:
            key = bucket_key(request)
            for raw in (secret, "alice@example.com", "203.0.113.9"):
                assert raw not in key


def test_role_key_names_the_role_that_chose_the_rate() -> None:
    assert limit("per-role", facts(ALICE)).key == "role=user"
    assert limit("per-role", facts(Caller(True, "x", roles=("b", "a")))).key == "role=a,b"
    assert limit("per-role", facts()).key == "role=anonymous"


def test_a_callers_buckets_share_a_partition_and_shared_buckets_have_none() -> None:
    f = facts(ALICE)
    per_user, user_route = limit("per-user", f), limit("user-route", f)
    assert per_user.partition == user_route.partition == f"user={hashed('alice')}"
    assert slot_of(bucket_key(per_user)) == slot_of(bucket_key(user_route))
    assert limit("route-total", f).partition is None
    assert limit("per-role", f).partition is None
    tenant = limit("tenant", facts(headers={"x-tenant": "acme"}))
    assert tenant.partition == f"ip={hashed('10.0.0.1')}"  # ip outranks header


def test_the_same_bucket_gets_the_same_key_and_partition_whoever_asks() -> None:
    # The route-total bucket is shared by anonymous callers and by alice alike.
    anon, alice = limit("route-total", facts()), limit("route-total", facts(ALICE, ip="10.9.9.9"))
    assert bucket_key(anon) == bucket_key(alice)


def test_tiers_of_one_policy_share_its_buckets() -> None:
    user, gold = (
        limit("per-user", facts(ALICE)),
        limit("per-user", facts(Caller(True, "alice", roles=("gold",)))),
    )
    assert user.policy.rate != gold.policy.rate
    assert bucket_key(user) == bucket_key(gold)
    # Tiers are built once, not per request.
    assert limit("per-user", facts(ALICE)).policy is user.policy


def test_routes_name_their_policies_or_get_the_defaults() -> None:
    named = make_route(prefix="/a", service="a", source="config", options={"rate_limits": ("org",)})
    off = make_route(prefix="/b", service="b", source="config", options={"rate_limits": ()})
    default = make_route(prefix="/c", service="c", source="consul:c")
    assert [p.name for p in BOOK.for_route(named)] == ["org"]
    assert BOOK.for_route(off) == ()
    assert [p.name for p in BOOK.for_route(default)] == ["anonymous", "per-user"]
    assert [p.name for p in BOOK.for_route(None)] == ["anonymous", "per-user"]


def test_limits_keep_only_the_policies_that_count_the_request() -> None:
    policies = BOOK.for_route(None)
    assert [r.policy.name for r in BOOK.limits(policies, *facts())] == ["anonymous"]
    assert [r.policy.name for r in BOOK.limits(policies, *facts(ALICE))] == ["per-user"]
    assert BOOK.limits(policies, *facts(BOB)) == []  # admins are unlimited


def test_roles_and_plans_for_the_admin_view() -> None:
    assert BOOK.roles() == ["anonymous", "admin", "gold", "silver", "user"]
    assert BOOK.plans() == ["free", "pro"]


def test_a_bucket_asked_for_again_is_the_same_request() -> None:
    first = limit("tenant", facts(headers={"x-tenant": "acme"}))
    again = limit("tenant", facts(headers={"x-tenant": "acme"}))
    assert again is first
    other = limit("tenant", facts(headers={"x-tenant": "umbrella"}))
    assert other != first and other.key != first.key
    # Same key, another tier (a plan's rate): another request, sharing the bucket's key.
    free = Caller(authenticated=True, subject="alice", plan="free", method="jwt")
    plain = Caller(authenticated=True, subject="alice", method="jwt")
    on_plan, off_plan = limit("per-user", facts(free)), limit("per-user", facts(plain))
    assert on_plan.key == off_plan.key and on_plan.policy.rate != off_plan.policy.rate
    assert limit("per-user", facts(free)) is on_plan


def test_reused_requests_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.ratelimit.policies._MAX_CACHED_REQUESTS", 3)
    book = PolicyBook(CONFIG)
    made = [book.policies["anonymous"].limit_for(*facts(ip=f"10.0.0.{n}")) for n in range(10)]
    assert all(len(made) <= 3 for made in book.policies["anonymous"]._made.values())
    assert [m.key for m in made] == [f"ip={hashed(f'10.0.0.{n}')}" for n in range(10)]
    assert book.policies["anonymous"].limit_for(*facts(ip="10.0.0.9")) == made[9]


def test_a_full_cache_drops_its_oldest_eighth_each_unlinked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("edge.ratelimit.policies._MAX_CACHED_REQUESTS", 16)
    policy = PolicyBook(CONFIG).policies["anonymous"]
    made = [policy.limit_for(*facts(ip=f"10.0.0.{n}")) for n in range(16)]
    for limit in made:
        assert limit is not None
        limit.memo = LimitResult(True, "redis", False, (limit,))  # as the Redis limiter would
    newest = policy.limit_for(*facts(ip="10.0.1.1"))  # the 17th: room is made first
    [cache] = policy._made.values()
    assert list(cache.values()) == [*made[2:], newest]  # the oldest two (16 // 8) went
    assert [m.memo is None for m in made] == [True, True] + [False] * 14  # ... unlinked
    # A bucket dropped and asked for again is a new request, kept like any other.
    again = policy.limit_for(*facts(ip="10.0.0.0"))
    assert again == made[0] and again is not made[0] and list(cache.values())[-1] is again


def test_each_route_is_resolved_once() -> None:
    book = PolicyBook(CONFIG)
    named = make_route(prefix="/a", service="a", source="config", options={"rate_limits": ("org",)})
    assert book.for_route(named) is book.for_route(named)
    # Routes compare without their options: a route rebuilt with other options is equal,
    # yet resolved on its own.
    rebuilt = make_route(prefix="/a", service="a", source="config", options={"rate_limits": ()})
    assert rebuilt == named
    assert book.for_route(rebuilt) == () and [p.name for p in book.for_route(named)] == ["org"]


def test_anonymous_requests_to_a_route_counted_alone_share_one_answer() -> None:
    book = PolicyBook(CONFIG)
    totals = make_route(
        prefix="/t",
        service="t",
        source="config",
        options={"rate_limits": ("route-total", "per-user", "per-role")},
    )
    first = book.limits_for(totals, None, "10.0.0.1", {})
    again = book.limits_for(totals, None, "10.0.0.2", {"x-tenant": "acme"})
    assert [(r.policy.name, r.key) for r in first] == [
        ("route-total", f"route={totals.name}"),
        ("per-role", "role=anonymous"),
    ]  # per-user counts no anonymous caller
    assert again is first  # made once for the route
    # A known caller is counted by its own dimensions, never from that answer.
    alice = SimpleNamespace(method="jwt", subject="alice", roles=("user",), claims={})
    assert [r.policy.name for r in book.limits_for(totals, alice, "10.0.0.1", {})] == [
        "route-total",
        "per-user",
        "per-role",
    ]


def test_anonymous_requests_counted_by_address_or_header_each_get_their_own() -> None:
    book = PolicyBook(CONFIG)
    for names in (("route-total", "anonymous"), ("tenant",)):
        route = make_route(
            prefix="/a", service="a", source="config", options={"rate_limits": names}
        )
        one = book.limits_for(route, None, "10.0.0.1", {"x-tenant": "acme"})
        other = book.limits_for(route, None, "10.0.0.2", {"x-tenant": "globex"})
        assert [r.key for r in one] != [r.key for r in other]


def test_hashes_stay_right_when_their_cache_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    from hashlib import blake2b

    from edge.ratelimit import policies

    monkeypatch.setattr(policies, "_MAX_HASHED", 4)
    values = [f"caller-{n}" for n in range(10)] * 2
    for value in values:
        assert hashed(value) == blake2b(value.encode(), digest_size=12).hexdigest()
        assert len(policies._hashes) <= 4


SINGLE_DIMENSION = RateLimitsConfig.model_validate(
    {
        "policies": {
            "per-client": {"count_by": "header:x-client-id", "limit": "5/s"},
            "per-ip": {"count_by": "ip", "limit": "6/s"},
            "route-total": {"count_by": "route", "limit": "100/s"},
        },
        "default_policies": ["per-client"],
    }
)


@pytest.mark.parametrize(
    ("policy", "dimension", "value_of"),
    [
        ("per-client", "header:x-client-id", lambda n: ("10.0.0.1", {"x-client-id": f"c-{n}"})),
        ("per-ip", "ip", lambda n: (f"10.0.0.{n}", {})),
    ],
)
def test_anonymous_callers_counted_by_one_value_get_the_bucket_of_that_value(
    policy: str, dimension: str, value_of: Any
) -> None:
    book = PolicyBook(SINGLE_DIMENSION)
    route = make_route(
        prefix="/c", service="c", source="config", options={"rate_limits": (policy,)}
    )
    expected = book.policies[policy].limit_for
    for _ in range(2):  # the second pass is answered by raw value
        for n in range(5):
            ip, headers = value_of(n)
            got = book.limits_for(route, None, ip, headers)
            assert len(got) == 1
            assert got[0] is expected(ANONYMOUS, ip, route.name, headers)
            value = headers["x-client-id"] if headers else ip
            assert got[0].key == f"{dimension}={hashed(value)}"
            assert got[0].partition == got[0].key
    ip, headers = value_of(1)
    assert book.limits_for(route, None, ip, headers) is book.limits_for(route, None, ip, headers)


def test_a_bucket_found_by_raw_value_keeps_no_digest_of_it() -> None:
    # The raw-value cache is the only one these callers need: the value's digest is
    # not kept (one object per caller less to hold and for the collector to visit).
    book = PolicyBook(SINGLE_DIMENSION)
    route = make_route(
        prefix="/c", service="c", source="config", options={"rate_limits": ("per-client",)}
    )
    book.limits_for(route, None, "10.0.0.1", {"x-client-id": "c-0"})  # route resolved
    for n in range(1, 4):
        value = f"never-hashed-{n}"
        (got,) = book.limits_for(route, None, "10.0.0.1", {"x-client-id": value})
        assert value not in policies_module._hashes
        assert got.key == f"header:x-client-id={hashed(value)}"
    with pytest.raises(ValueError, match="anonymous"):
        PolicyBook(CONFIG).policies["per-user"].limit_of_value("x")


def test_anonymous_callers_lacking_the_counted_value_are_not_limited() -> None:
    book = PolicyBook(SINGLE_DIMENSION)
    route = make_route(prefix="/c", service="c", source="config")  # the defaults: per-client
    book.limits_for(route, None, "10.0.0.1", {"x-client-id": "c-1"})  # route now resolved
    assert book.limits_for(route, None, "10.0.0.1", {}) == ()
    assert book.limits_for(route, None, "10.0.0.1", {"x-client-id": ""}) == ()
    ip_route = make_route(
        prefix="/i", service="i", source="config", options={"rate_limits": ("per-ip",)}
    )
    book.limits_for(ip_route, None, "10.0.0.1", {})
    assert book.limits_for(ip_route, None, "", {}) == ()


def test_buckets_found_by_raw_value_stay_right_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.ratelimit.policies._MAX_CACHED_REQUESTS", 3)
    book = PolicyBook(SINGLE_DIMENSION)
    route = make_route(prefix="/c", service="c", source="config")
    for _ in range(2):
        for n in range(10):
            got = book.limits_for(route, None, "10.0.0.1", {"x-client-id": f"c-{n}"})
            assert [r.key for r in got] == [f"header:x-client-id={hashed(f'c-{n}')}"]
            assert len(book.policies["per-client"].anonymous_limits) <= 3


def test_a_known_caller_or_a_route_of_several_policies_is_not_found_by_raw_value() -> None:
    book = PolicyBook(SINGLE_DIMENSION)
    both = make_route(
        prefix="/b",
        service="b",
        source="config",
        options={"rate_limits": ("per-client", "route-total")},
    )
    for _ in range(2):
        got = book.limits_for(both, None, "10.0.0.1", {"x-client-id": "c-1"})
        assert [r.policy.name for r in got] == ["per-client", "route-total"]
    assert book.policies["per-client"].anonymous_limits == {}
    route = make_route(prefix="/c", service="c", source="config")
    alice = SimpleNamespace(method="jwt", subject="alice", roles=("user",), claims={})
    for _ in range(2):
        got = book.limits_for(route, alice, "10.0.0.1", {"x-client-id": "c-1"})
        assert [r.key for r in got] == [f"header:x-client-id={hashed('c-1')}"]
    assert book.policies["per-client"].anonymous_limits == {}
