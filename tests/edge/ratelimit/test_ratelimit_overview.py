"""The /ratelimits admin view (edge/ratelimit/overview.py)."""

from __future__ import annotations

import json

from edge.ratelimit.config import RateLimitsConfig
from edge.ratelimit.health import HealthStatus
from edge.ratelimit.overview import overview, redacted_url
from edge.ratelimit.policies import PolicyBook
from edge.routes import make_route

BOOK = PolicyBook(
    RateLimitsConfig.model_validate(
        {
            "policies": {
                "anonymous": {"count_by": "ip", "by_role": {"anonymous": "2/s"}},
                "per-user": {
                    "count_by": "user",
                    "limit": "10/s",
                    "by_role": {"admin": "unlimited"},
                    "by_plan": {"free": "1/s"},
                    "on_failure": "closed",
                },
            },
            "default_policies": ["anonymous", "per-user"],
        }
    )
)
ROUTES = [
    make_route(prefix="/api/users", service="users", source="config"),
    make_route(
        prefix="/api/pay", service="pay", source="config", options={"rate_limits": ("per-user",)}
    ),
]


def test_redis_passwords_are_never_shown() -> None:
    assert redacted_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redacted_url("rediss://edge:s3cret@redis/1") == "rediss://edge:***@redis/1"
    assert redacted_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_view_shows_policies_routes_roles_and_health() -> None:
    view = overview(
        BOOK,
        ROUTES,
        redis={"url": "redis://redis:6379/0"},
        health=HealthStatus(False, 90.0, "timeout: TimeoutError()", 3),
        healthy_edges=2,
        edge_service="meshgate-edge",
        now=100.0,
    )
    json.dumps(view)  # served as JSON
    assert view["policies"]["per-user"] == {
        "counts_by": ["user"],
        "limit": "10/s burst 10",
        "by_role": {"admin": "unlimited"},
        "by_plan": {"free": "1/s burst 1"},
        "on_failure": "closed",
    }
    users, pay = view["routes"]
    assert users["route"] == "users:/api/users" and users["policies"] == ["anonymous", "per-user"]
    assert users["by_role"]["anonymous"] == {
        "anonymous": "2/s burst 2",
        "per-user": "not counted (anonymous callers have no user)",
    }
    assert users["by_role"]["admin"] == {"anonymous": "unlimited", "per-user": "unlimited"}
    assert users["by_role"]["(any other role)"]["per-user"] == "10/s burst 10"
    assert users["by_plan"] == {"free": {"anonymous": "unlimited", "per-user": "1/s burst 1"}}
    assert pay["policies"] == ["per-user"]
    assert view["other_routes"]["policies"] == ["anonymous", "per-user"]
    assert view["redis"] == {
        "url": "redis://redis:6379/0",
        "healthy": False,
        "state": "degraded",
        "degraded_for_seconds": 10.0,
        "last_error": "timeout: TimeoutError()",
        "outages": 3,
    }
    assert view["local_fallback"] == {
        "edge_service": "meshgate-edge",
        "healthy_edges": 2,
        "share": "1/2",
    }
