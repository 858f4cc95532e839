"""Fault injection in ``/metrics`` (Envoy's ``fault.delays_injected``, ``aborts_injected``,
``active_faults`` and ``faults_overflow``), labelled like ``meshgate_requests_total``:

- ``meshgate_faults_injected_total{kind, service, route}``: ``kind`` is ``delay`` or
  ``abort`` (a request delayed then aborted counts once for each);
- ``meshgate_faults_active{service, route}``: requests under an injected fault now;
- ``meshgate_faults_overflow_total{service, route}``: faults drawn but not injected,
  ``max_active`` being reached.

``route`` is the edge route's name, or ``outbound:<service>`` at a sidecar.
Series appear with the first fault of their labels; the request path pays for
them only when a fault is drawn.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class FaultMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.injected = Counter(
            "meshgate_faults_injected",
            "Faults injected into requests (fault injection), by kind: delay or abort.",
            ["kind", "service", "route"],
            registry=registry,
        )
        self.active = Gauge(
            "meshgate_faults_active",
            "Requests under an injected fault now (delays being held).",
            ["service", "route"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.overflow = Counter(
            "meshgate_faults_overflow",
            "Faults drawn but not injected because max_active were already active.",
            ["service", "route"],
            registry=registry,
        )
