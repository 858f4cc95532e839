"""Edge configs for the rate-limit scenarios: global limits in the run's Redis that never refuse.

Both scenarios make every request a real check against Redis (one EVALSHA,
coalesced with the other requests of its event-loop turn into one pipeline),
with limits high enough that wrk never sees a 429, so their req/s compare
with the plain ``edge`` scenario of the same run:

* **many keys** (``edge+ratelimit``): the policy counts by an ``X-Client-Id``
  header that a wrk Lua script sets on every request, cycling through
  :data:`MANY_CALLERS` distinct callers, as many clients of an API would:
  each bucket is touched again every ``MANY_CALLERS`` requests, so the edge's
  key caches see a large working set and Redis holds that many live keys.
* **a new key per request** (``edge+ratelimit-newkey``, formerly the
  many-keys scenario): the policy counts by the request id the edge gives
  every request (``header:x-request-id``), so every request creates a Redis
  key that is never seen again - the worst case rather than a realistic one.
* **one hot key**: the policy counts by route, so every request draws from
  the same bucket.

A third scenario answers the question an approximate mode (token leasing)
would raise: **local only** points the limiter at a port where no Redis
listens, so every decision is made in-process by the ``local`` fallback, with
no Redis I/O at all. Its cost is the floor any scheme that still decides per
request in the edge could reach.
"""

from __future__ import annotations

from typing import Any

from bench.context import BenchContext
from demo.processes import free_port

NEVER_REFUSES = "100000000/s burst 100000000"
REDIS_TIMEOUT_MS = 50
"""The limiter's default Redis timeout, scaled by ``ctx.runtime_slowdown``."""


def _rate_limited(ctx: BenchContext, count_by: str, redis_url: str | None = None) -> dict[str, Any]:
    return {
        "rate_limits": {
            "redis": {
                "url": redis_url or ctx.redis.url,
                "timeout": f"{REDIS_TIMEOUT_MS * ctx.runtime_slowdown:g}ms",
            },
            "policies": {"bench": {"count_by": count_by, "limit": NEVER_REFUSES}},
            "default_policies": ["bench"],
        }
    }


MANY_CALLERS = 10_000
"""Distinct callers (X-Client-Id values) the many-keys scenario cycles through."""

_MANY_CALLERS_LUA = """\
-- Every request names the next of {n} callers in an X-Client-Id header.
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, {{["X-Client-Id"] = "client-" .. (n % {n})}})
end
"""


def many_callers_edge_config(ctx: BenchContext) -> dict[str, Any]:
    """A global limit per caller, the caller named by the ``X-Client-Id`` header."""
    return _rate_limited(ctx, "header:x-client-id")


def many_callers_script(ctx: BenchContext) -> str:
    """The wrk script cycling X-Client-Id through MANY_CALLERS values; returns its path."""
    path = ctx.path("many-callers.lua")
    path.write_text(_MANY_CALLERS_LUA.format(n=MANY_CALLERS))
    return str(path)


def new_key_edge_config(ctx: BenchContext) -> dict[str, Any]:
    """A global limit with a new bucket for every request (its request id)."""
    return _rate_limited(ctx, "header:x-request-id")


def hot_key_edge_config(ctx: BenchContext) -> dict[str, Any]:
    """A global limit on one bucket that every request draws from."""
    return _rate_limited(ctx, "route")


def local_only_edge_config(ctx: BenchContext) -> dict[str, Any]:
    """One hot key, decided in-process: Redis is unreachable (nothing listens there)."""
    return _rate_limited(ctx, "route", redis_url=f"redis://127.0.0.1:{free_port()}/0")
