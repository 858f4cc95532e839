"""The ``/ratelimits`` admin view: policies, what applies to each route and role, Redis health.

Pure functions of the compiled policies, the routes and the limiter's state,
so the view is tested without a server. Nothing here names a caller: the view
shows configuration and health, never keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from edge.ratelimit.caller import ANONYMOUS_ROLE, Caller
from edge.ratelimit.health import HealthStatus
from edge.ratelimit.policies import Policy, PolicyBook
from edge.routes import Route

# Dimensions an anonymous caller never has: policies counting by them skip it.
_IDENTITY_DIMENSIONS = ("user", "api_key", "claim:")


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for display)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def applies_to(policy: Policy, caller: Caller) -> str:
    """What ``policy`` does to callers like ``caller``: a rate, ``unlimited`` or ``not counted``."""
    if not caller.authenticated and any(
        d == prefix or (prefix.endswith(":") and d.startswith(prefix))
        for d in policy.dimensions
        for prefix in _IDENTITY_DIMENSIONS
    ):
        return "not counted (anonymous callers have no " + _identity_dims(policy) + ")"
    limit, _ = policy.tier_for(caller)
    return "unlimited" if limit is None else str(limit.rate)


def _identity_dims(policy: Policy) -> str:
    return " or ".join(
        d
        for d in policy.dimensions
        if any(d == p or (p.endswith(":") and d.startswith(p)) for p in _IDENTITY_DIMENSIONS)
    )


def policies_by_audience(book: PolicyBook, policies: Sequence[Policy]) -> dict[str, Any]:
    """For each role (and each API-key plan) the policies name: what each policy gives it."""
    by_role: dict[str, dict[str, str]] = {}
    for role in book.roles():
        caller = (
            Caller(authenticated=False)
            if role == ANONYMOUS_ROLE
            else Caller(authenticated=True, roles=(role,))
        )
        by_role[role] = {p.name: applies_to(p, caller) for p in policies}
    other = Caller(authenticated=True, roles=())
    by_role["(any other role)"] = {p.name: applies_to(p, other) for p in policies}
    by_plan = {
        plan: {
            p.name: applies_to(p, Caller(authenticated=True, roles=(), plan=plan)) for p in policies
        }
        for plan in book.plans()
    }
    return {"by_role": by_role, "by_plan": by_plan}


def overview(
    book: PolicyBook,
    routes: Sequence[Route],
    *,
    redis: dict[str, Any],
    health: HealthStatus,
    healthy_edges: int,
    edge_service: str,
    now: float,
) -> dict[str, Any]:
    """The whole ``/ratelimits`` document.

    ``routes`` are the routes of the edge config (routes declared in Consul
    meta have the default policies, shown under ``other_routes``); ``now`` is
    the limiter's clock, to show how long Redis has been failing.
    """
    route_views = []
    for route in routes:
        policies = book.for_route(route)
        route_views.append(
            {
                "route": route.name,
                "prefix": route.prefix,
                "host": route.host,
                "policies": [p.name for p in policies],
                **policies_by_audience(book, policies),
            }
        )
    degraded_for = None if health.degraded_since is None else now - health.degraded_since
    return {
        "policies": {name: policy.describe() for name, policy in book.policies.items()},
        "default_policies": list(book.config.default_policies),
        "routes": route_views,
        "other_routes": {
            "policies": [p.name for p in book.defaults],
            **policies_by_audience(book, book.defaults),
        },
        "redis": {
            **redis,
            "healthy": health.healthy,
            "state": "healthy" if health.healthy else "degraded",
            "degraded_for_seconds": degraded_for,
            "last_error": health.last_error,
            "outages": health.outages,
        },
        "local_fallback": {
            "edge_service": edge_service,
            "healthy_edges": healthy_edges,
            "share": f"1/{healthy_edges}",
        },
    }
