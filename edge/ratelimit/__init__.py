"""Global rate limiting for the edge: token buckets in Redis, with a local fallback.

Public API (import from here):

- :func:`parse_rate`, :class:`Rate`: ``"100/s burst 200"`` → rate and burst.
- :class:`LimitPolicy`, :class:`LimitRequest`, :class:`FailureMode`: what to check.
- :class:`Limiter` (protocol), :class:`LimitResult`, :class:`LimitOutcome`: the answer.
- :class:`RedisLimiter`, :class:`RedisLimiterSettings`, :class:`RedisSettings`:
  global limits on one Redis or a Redis Cluster.
- :class:`LocalLimiter`: in-process limits (the fallback, or standalone).
- :class:`LimiterObserver`, :class:`PrometheusObserver`: metrics hooks.

The pure arithmetic (:mod:`edge.ratelimit.bucket`) and the Lua script
(``token_bucket.lua``) are the same algorithm; see their docstrings.

The edge feature built on it (:mod:`edge.ratelimit.feature`) adds, one module
each: the ``rate_limits`` config section (:mod:`~edge.ratelimit.config`), the
caller as auth leaves it (:mod:`~edge.ratelimit.caller`), which buckets a
request draws from (:mod:`~edge.ratelimit.policies`), the RateLimit-* headers
and problem bodies (:mod:`~edge.ratelimit.responses`), the number of healthy
edges (:mod:`~edge.ratelimit.instances`) and the ``/ratelimits`` admin view
(:mod:`~edge.ratelimit.overview`). The HTTP filter is
:mod:`edge.filters.rate_limit`.
"""

from edge.ratelimit.client import RedisClient, RedisSettings, create_redis_client
from edge.ratelimit.health import HealthStatus
from edge.ratelimit.limiter import (
    FailureMode,
    Limiter,
    LimitOutcome,
    LimitPolicy,
    LimitRequest,
    LimitResult,
    Source,
    whole_seconds,
)
from edge.ratelimit.local_limiter import LocalLimiter
from edge.ratelimit.observer import LimiterObserver, NullObserver
from edge.ratelimit.prometheus import PrometheusObserver
from edge.ratelimit.rate import Rate, parse_rate
from edge.ratelimit.redis_limiter import RedisLimiter, RedisLimiterSettings

__all__ = [
    "FailureMode",
    "HealthStatus",
    "LimitOutcome",
    "LimitPolicy",
    "LimitRequest",
    "LimitResult",
    "Limiter",
    "LimiterObserver",
    "LocalLimiter",
    "NullObserver",
    "PrometheusObserver",
    "Rate",
    "RedisClient",
    "RedisLimiter",
    "RedisLimiterSettings",
    "RedisSettings",
    "Source",
    "create_redis_client",
    "parse_rate",
    "whole_seconds",
]
