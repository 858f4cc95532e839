"""The demo's rate limits (demo/ratelimit_setup.py) load, and differ by role and by plan."""

from __future__ import annotations

from demo.auth_setup import AUTH_ROUTE
from demo.ratelimit_setup import PUBLIC_ROUTE, describe, edge_rate_limits
from demo.runner import edge_config
from edge.config import EdgeConfig
from edge.ratelimit.caller import ANONYMOUS, Caller
from edge.ratelimit.policies import PolicyBook
from edge.ratelimit.rate import Rate


def limits_of(caller: Caller) -> dict[str, Rate]:
    book = PolicyBook(EdgeConfig.model_validate(DEMO).rate_limits)
    limits = book.limits(book.defaults, caller, "203.0.113.7", "users:/api/users", {})
    return {r.policy.name: r.policy.rate for r in limits}


AUTH = {"issuer": "http://auth.demo", "audience": "meshgate", "jwks": {"service": "auth"}}
DEMO = edge_config(
    "127.0.0.1:8500", 8080, 9901, auth=AUTH, rate_limits=edge_rate_limits("redis://r:1/0")
)


def test_the_demo_edge_config_loads_with_its_routes() -> None:
    config = EdgeConfig.model_validate(DEMO)
    assert config.rate_limits.redis.url == "redis://r:1/0"
    prefixes = [r.prefix for r in config.routes]
    assert PUBLIC_ROUTE["prefix"] in prefixes and AUTH_ROUTE["prefix"] in prefixes


def test_each_kind_of_caller_has_its_own_limit() -> None:
    user = Caller(True, "alice", roles=("user",), method="jwt")
    admin = Caller(True, "bob", roles=("admin",), method="jwt")
    free = Caller(True, None, roles=("partner",), consumer="hobby", plan="free", method="apikey")
    pro = Caller(True, None, roles=(), consumer="acme", plan="pro", method="apikey")
    plain = Caller(True, None, roles=(), consumer="x", method="apikey")
    assert limits_of(ANONYMOUS) == {"anonymous": Rate(2.0, 5)}
    assert limits_of(user) == {"per-user": Rate(5.0, 10)}
    assert limits_of(admin) == {"per-user": Rate(50.0, 100)}
    assert limits_of(free) == {"per-key": Rate(1.0, 3)}
    assert limits_of(pro) == {"per-key": Rate(20.0, 40)}
    assert limits_of(plain) == {"per-key": Rate(2.0, 5)}


def test_the_banner_shows_how_to_see_429s() -> None:
    lines = "\n".join(describe("http://e:8080", "http://a:9901", "redis://r:1/0", "k.pem"))
    assert "http://a:9901/ratelimits" in lines
    assert "hey -n 40 -c 4 http://e:8080/public/users/echo" in lines
    assert "--plan free" in lines
