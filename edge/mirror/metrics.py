"""Mirroring in ``/metrics``: what became of each request chosen for a copy, and of each
copy sent."""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from mesh.telemetry.metrics import ChildFunctions, adder

Decision = Literal["sent", "dropped", "skipped_body", "skipped_upgrade", "no_instance"]
"""What became of a request chosen for a copy: ``sent``; ``dropped`` (the route's copies
in flight at their cap); ``skipped_body`` (chunked, or longer than ``max_body_size``);
``skipped_upgrade`` (a WebSocket handshake); ``no_instance`` (the shadow service has no
healthy instance)."""

FAILED: Final = "failed"
"""A copy without an answer: no connection, a reset, a broken answer."""
TIMEOUT: Final = "timeout"
"""A copy not done within its time."""


class MirrorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "meshgate_mirror_requests",
            "Requests chosen for a copy to a shadow service, by route, shadow service and "
            "outcome (sent, dropped, skipped_body, skipped_upgrade, no_instance).",
            ["route", "service", "outcome"],
            registry=registry,
        )
        self.responses = Counter(
            "meshgate_mirror_responses",
            "Copies sent to a shadow service, by route, shadow service and result (the "
            "answer's status class, failed or timeout).",
            ["route", "service", "result"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "meshgate_mirror_in_flight",
            "Copies to shadow services in flight now.",
            registry=registry,
            multiprocess_mode="livesum",
        )

        # Every copy counts twice: each series' increment looked up once, not through
        # labels() (a lock and the labels' checks) on every copy.
        self._decided = ChildFunctions(self.requests, adder)
        self._done = ChildFunctions(self.responses, adder)

    def decided(self, route: str, service: str, outcome: Decision) -> None:
        self._decided(route, service, outcome)()

    def done(self, route: str, service: str, result: str) -> None:
        self._done(route, service, result)()
