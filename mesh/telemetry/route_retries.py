"""The edge's route retries in ``/metrics`` (:mod:`mesh.resilience.route_retries`).

- ``meshgate_route_retries_total{route, service, reason}``: retries made, by the
  ``retry_on`` condition the failed attempt met (``connect-failure``, ``reset``,
  ``timeout`` or its status);
- ``meshgate_route_retry_budget_exhausted_total{route, service}``: retries the
  route's budget refused.

Named apart from the sidecar's ``meshgate_retries_total{service}``, which the
sidecar reads from its per-upstream budgets and which carries no route.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class RouteRetryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._retries = Counter(
            "meshgate_route_retries",
            "Retries of edge routes' requests, by route, service and the failed "
            "attempt's reason (connect-failure, reset, timeout or its status).",
            ["route", "service", "reason"],
            registry=registry,
        )
        self._exhausted = Counter(
            "meshgate_route_retry_budget_exhausted",
            "Retries of edge routes' requests refused because the route's retry budget was spent.",
            ["route", "service"],
            registry=registry,
        )

    def retried(self, route: str, service: str, reason: str) -> None:
        self._retries.labels(route, service, reason).inc()

    def exhausted(self, route: str, service: str) -> None:
        self._exhausted.labels(route, service).inc()
