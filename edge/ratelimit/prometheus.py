"""Prometheus series for the rate limiters, on a registry the caller owns.

Series (``<namespace>_ratelimit_`` prefix, namespace "meshgate" by default):

- ``decisions_total{policy, outcome, source}``: one per limit per check.
  ``outcome`` is ``allowed`` (the request was admitted), ``refused`` (this
  limit refused it), ``spared`` (another limit refused it; this one kept its
  tokens), ``failed_open`` / ``failed_closed`` (answered by a failure mode).
  ``source`` is the result's source; refusals from the known-empty cache
  count as ``redis``.
- ``redis_round_trip_seconds`` (histogram) and ``redis_batch_commands`` (histogram).
- ``redis_errors_total{kind}``: failed batches by kind (timeout, connection, ...).
- ``degraded`` (gauge): 1 while Redis is unusable.

Admissions decided one at a time (the in-process fallback, while Redis is
down) are added up during an event-loop turn and counted at its end, one
``inc()`` per policy: prometheus-client takes a lock and makes four calls per
``inc()``, which every request would otherwise pay. Outside a running loop
they are counted at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edge.ratelimit.limiter import LimitResult
from mesh.telemetry.metrics import Children


class PrometheusObserver:
    """A :class:`~edge.ratelimit.observer.LimiterObserver` that records Prometheus series.

    Register one per registry; the ``policy`` label takes policy names, so its
    cardinality is that of the configuration, never of callers. One event loop
    uses an instance (admissions wait for the end of its turn to be counted).
    """

    def __init__(self, registry: CollectorRegistry, namespace: str = "meshgate") -> None:
        ns, sub, reg = namespace, "ratelimit", registry
        self._decisions = Counter(
            "decisions",
            "Rate limit decisions per limit.",
            ["policy", "outcome", "source"],
            namespace=ns,
            subsystem=sub,
            registry=reg,
        )
        self._latency = Histogram(
            "redis_round_trip_seconds",
            "Time of one pipelined batch of rate limit scripts.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            namespace=ns,
            subsystem=sub,
            registry=reg,
        )
        self._batch = Histogram(
            "redis_batch_commands",
            "Script calls per pipelined batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            namespace=ns,
            subsystem=sub,
            registry=reg,
        )
        self._errors = Counter(
            "redis_errors",
            "Failed rate limit batches by kind.",
            ["kind"],
            namespace=ns,
            subsystem=sub,
            registry=reg,
        )
        self._decisions_of = Children(self._decisions)
        # source -> policy name -> admissions not yet counted (see the module docstring).
        self._admitted: dict[str, dict[str, int]] = {"local": {}, "redis": {}}
        self._flush_scheduled = False
        self._degraded = Gauge(
            "degraded",
            "1 while Redis is unusable and failure modes apply.",
            namespace=ns,
            subsystem=sub,
            registry=reg,
        )

    def on_decision(self, result: LimitResult) -> None:
        source = result.source
        if result.allowed:
            admitted = self._admitted.get(source)
            if admitted is not None:  # "local" or "redis": counted at the end of the turn
                for request in result.requests:
                    name = request.policy.name
                    admitted[name] = admitted.get(name, 0) + 1
                if not self._flush_scheduled:
                    self._schedule_flush()
                return
        if source in ("open", "closed"):
            outcome = "failed_open" if source == "open" else "failed_closed"
            for request in result.requests:
                self._count(request.policy.name, outcome, source)
            return
        refusing = {id(o.request) for o in result.outcomes if not o.allowed}
        for request in result.requests:
            outcome = "refused" if id(request) in refusing else "spared"
            self._count(request.policy.name, outcome, source)

    def on_decisions(self, results: Sequence[LimitResult]) -> None:
        # A batch's admissions are added up first: one inc() (a lock, four calls in
        # prometheus-client) per policy per batch instead of one per request.
        # Counted by policy name (a string, its hash kept) under the batch's one source,
        # rather than by a (policy, outcome, source) tuple made and hashed per request.
        counts: dict[str, int] = {}
        batch_source = "redis"
        for result in results:
            source = result.source
            if result.allowed and source == batch_source:
                for request in result.requests:
                    name = request.policy.name
                    counts[name] = counts.get(name, 0) + 1
            else:
                self.on_decision(result)  # refusals, failure modes, the local fallback
        for name, count in counts.items():
            self._decisions_of(name, "allowed", batch_source).inc(count)

    def flush(self) -> None:
        """Count the admissions added up so far (done at the end of every loop turn)."""
        self._flush_scheduled = False
        for source, admitted in self._admitted.items():
            if admitted:
                for name, count in admitted.items():
                    self._decisions_of(name, "allowed", source).inc(count)
                admitted.clear()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no loop turn to wait for
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def _count(self, policy: str, outcome: str, source: str) -> None:
        self._decisions_of(policy, outcome, source).inc()

    def on_round_trip(self, seconds: float, commands: int, error: str | None) -> None:
        if error is not None:
            self._errors.labels(error).inc()
            return
        self._latency.observe(seconds)
        self._batch.observe(commands)

    def on_health_change(self, healthy: bool, reason: str | None) -> None:
        self._degraded.set(0 if healthy else 1)
