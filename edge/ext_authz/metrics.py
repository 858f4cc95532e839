"""External authorization in ``/metrics``: what became of each request, and how long the
checks took."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from mesh.telemetry.metrics import LATENCY_BUCKETS, ChildFunctions, adder, observer

Result = Literal["allowed", "denied", "error", "failed_open", "skipped"]
"""What became of a request at the check: ``allowed`` (a 2xx answer), ``denied``
(another answer), ``error`` (no usable answer, refused with ``status_on_error``),
``failed_open`` (no usable answer, let through by ``failure_mode: allow``), ``skipped``
(its route is not checked)."""

CheckEnd = Literal["allowed", "denied", "error"]
"""How a check ended, for its duration: allowed, denied, or no usable answer."""


class ExtAuthzMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "meshgate_ext_authz_requests",
            "Requests at the edge's external authorization, by route and result (allowed, "
            "denied, error, failed_open, skipped).",
            ["route", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "meshgate_ext_authz_duration_seconds",
            "Time of one external authorization check, from sending it to the end of the "
            "answer (or the failure), by how it ended (allowed, denied, error).",
            ["result"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        for end in ("allowed", "denied", "error"):
            self.duration.labels(end)  # every series exists from the start
        # Every request counts once, and every check is timed: each series' function
        # looked up once, not through labels() (a lock and the labels' checks) per request.
        self._count: ChildFunctions[Counter, Callable[[], None]] = ChildFunctions(
            self.requests, adder
        )
        self._observe: ChildFunctions[Histogram, Callable[[float], None]] = ChildFunctions(
            self.duration, observer
        )

    def counter(self, route: str, result: Result) -> Callable[[], None]:
        """The function counting one request of ``route`` with ``result``."""
        return self._count(route, result)

    def count(self, route: str, result: Result) -> None:
        self._count(route, result)()

    def observe(self, end: CheckEnd, seconds: float) -> None:
        self._observe(end)(seconds)
