"""The rate-limit feature of the edge: wires config, Redis limiter, filter, metrics and view.

Built by :func:`edge.features.build_features` when ``rate_limits.policies`` is
not empty (an edge without policies never connects to Redis). It contributes:

* one ``after_routing`` filter (:class:`edge.filters.rate_limit.RateLimitFilter`),
  placed after authentication so the caller's identity is known;
* the admin view ``/ratelimits`` (:mod:`edge.ratelimit.overview`);
* Prometheus series on the edge's registry: ``meshgate_ratelimit_*`` from
  :class:`edge.ratelimit.prometheus.PrometheusObserver` (decisions by policy
  and outcome, Redis latency and errors, ``degraded``), plus
  ``meshgate_ratelimit_healthy_edges``, the local fallback's divisor;
* a lifecycle: ``start`` connects and loads the script (never fails: an
  unreachable Redis starts the edge degraded, probing in the background),
  ``stop`` closes the client after in-flight checks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Gauge

from edge.config import EdgeConfig
from edge.feature import BaseFeature, EdgeContext, JsonView
from edge.filters.rate_limit import RateLimitFilter
from edge.gateway import config_routes
from edge.ratelimit.config import RateLimitsConfig
from edge.ratelimit.instances import HealthyEdges
from edge.ratelimit.overview import overview, redacted_url
from edge.ratelimit.policies import PolicyBook
from edge.ratelimit.prometheus import PrometheusObserver
from edge.ratelimit.redis_limiter import RedisLimiter
from edge.routes import Route
from mesh.chain import Filter
from mesh.config.reload import Reload

# How long start() waits for Redis before serving degraded (it keeps probing).
_START_TIMEOUT_S = 2.0


class RateLimitFeature(BaseFeature):
    """Global rate limits for the edge; see the module docstring."""

    name = "rate_limits"

    def __init__(
        self,
        config: RateLimitsConfig,
        ctx: EdgeContext,
        *,
        edge_service: str,
        routes: Sequence[Route] = (),
    ) -> None:
        """``edge_service``: the Consul service the edges register as (the fallback's N).

        ``routes``: the config's routes, for the admin view.
        """
        self._redis = config.redis
        self._routes = tuple(routes)
        self._book = PolicyBook(config)
        edges_gauge = Gauge(
            "meshgate_ratelimit_healthy_edges",
            "Healthy edges sharing the limits; the local fallback enforces 1/N of each.",
            registry=ctx.registry,
        )
        self._edges = HealthyEdges(ctx.store, edge_service, on_change=edges_gauge.set)
        self.limiter = RedisLimiter.connect(
            config.redis.client_settings(),
            config.redis.limiter_settings(),
            instances=self._edges,
            observer=PrometheusObserver(ctx.registry),
        )
        self._filter = RateLimitFilter(self._book, self.limiter)

    def after_routing(self) -> list[Filter]:
        return [self._filter]

    def admin_views(self) -> Mapping[str, JsonView]:
        return {"/ratelimits": self.view}

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """New policies, on the same Redis client and the same fallback; None when the
        file turns rate limits off (that, like a Redis change, waits for a restart)."""
        if not config.rate_limits.enabled:
            return None
        book = PolicyBook(config.rate_limits)
        limiter_filter = RateLimitFilter(book, self.limiter)
        routes = tuple(config_routes(config))

        def commit() -> None:
            self._book, self._filter, self._routes = book, limiter_filter, routes

        return Reload(("rate_limits.policies", "rate_limits.default_policies"), commit)

    async def start(self) -> None:
        await self.limiter.start(timeout_s=_START_TIMEOUT_S)

    async def stop(self) -> None:
        await self.limiter.aclose()

    def view(self) -> dict[str, Any]:
        """The ``/ratelimits`` document (see :func:`edge.ratelimit.overview.overview`)."""
        redis = self._redis
        return overview(
            self._book,
            self._routes,
            redis={
                "url": redacted_url(redis.url),
                "cluster": redis.cluster,
                "timeout_ms": round(redis.timeout * 1000, 3),
                "probe_interval_ms": round(redis.probe_interval * 1000, 3),
            },
            health=self.limiter.status(),
            healthy_edges=self._edges(),
            edge_service=self._edges.service,
            now=time.monotonic(),  # the limiter's clock
        )
