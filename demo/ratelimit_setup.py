"""The demo's rate limits: policies per role and per API-key plan, held in the demo's Redis.

Small on purpose, so that ``hey`` or ``curl`` in a loop shows 429s at once:

=============  ===========  ==========================================
policy         counts by    limits
=============  ===========  ==========================================
``anonymous``  ip           anonymous callers: 2/s burst 5
``per-user``   user         role ``user`` and others: 5/s burst 10;
                            role ``admin``: 50/s burst 100
``per-key``    api_key      plan ``free``: 1/s burst 3; ``pro``: 20/s
                            burst 40; keys without a plan: 2/s burst 5
=============  ===========  ==========================================

Every route has the three (``default_policies``); each counts only the
callers it can identify, so a token is counted by ``per-user``, an API key by
``per-key``, anyone else by ``anonymous``. ``/public/users`` lets anonymous
callers in (``auth: optional``), the place to watch the anonymous limit.
"""

from __future__ import annotations

from typing import Any

PUBLIC_ROUTE: dict[str, Any] = {
    "prefix": "/public/users",
    "service": "users",
    "prefix_rewrite": "/users",
    "auth": "optional",
}
"""users again, for anonymous callers too (limited by IP)."""


def edge_rate_limits(redis_url: str) -> dict[str, Any]:
    """The edge's ``rate_limits`` section, with its buckets in ``redis_url``."""
    return {
        "redis": {"url": redis_url},
        "policies": {
            "anonymous": {"count_by": "ip", "by_role": {"anonymous": "2/s burst 5"}},
            "per-user": {
                "count_by": "user",
                "limit": "5/s burst 10",
                "by_role": {"admin": "50/s burst 100"},
            },
            "per-key": {
                "count_by": "api_key",
                "limit": "2/s burst 5",
                "by_plan": {"free": "1/s burst 3", "pro": "20/s burst 40"},
            },
        },
        "default_policies": ["anonymous", "per-user", "per-key"],
    }


def describe(base: str, admin: str, redis_url: str, auth_key: str) -> list[str]:
    """Lines for the demo's banner: the limits, and how to see them refuse."""
    return [
        "Rate limits (policies and Redis health: " + admin + "/ratelimits):",
        "  anonymous 2/s burst 5 per IP; user 5/s burst 10; admin 50/s burst 100;",
        "  API keys by plan: free 1/s burst 3, pro 20/s burst 40. Watch the 429s:",
        f"  hey -n 40 -c 4 {base}/public/users/echo                 # anonymous",
        f"  ADMIN=$(meshgate token --sub bob --role admin --key {auth_key})",
        f'  hey -n 200 -c 4 -H "Authorization: Bearer $ADMIN" {base}/api/users/echo',
        f"  FREE=$(meshgate apikey --redis {redis_url} create --consumer hobby --plan free)",
        f'  for i in $(seq 6); do curl -si -H "X-API-Key: $FREE" {base}/api/users/echo '
        "| grep -iE '^HTTP|^ratelimit|^retry'; done",
    ]
