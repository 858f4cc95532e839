"""What ``/metrics`` answers: this process's registry, or every worker's, aggregated.

With several worker processes (the edge's ``workers``), prometheus-client's
multiprocess mode keeps every counter, gauge and histogram in a memory-mapped
file per process under ``PROMETHEUS_MULTIPROC_DIR``, and any process can
aggregate them all with ``MultiProcessCollector``. :func:`enable_multiprocess`
switches a process to that mode; it must run before the first metric is
created (the supervisor calls it before it forks the workers).

Limits of multiprocess mode (prometheus-client's): only values stored by
counters, gauges and histograms are aggregated; custom collectors and
``Gauge.set_function`` are not, which is why meshgate's time-dependent gauges
are set by refresh callbacks instead; and exemplars are not kept.

The format follows the scraper's ``Accept``, as prometheus-client's own
handlers do (:func:`prometheus_client.exposition.choose_encoder`): Prometheus
asks for OpenMetrics, the only format that carries exemplars (the trace of a
sampled request, on the duration histograms' buckets: :mod:`mesh.filters.metrics`);
a client that asks for nothing in particular gets the classic text format.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: str) -> None:
    """Store metric values in ``directory`` (empty, shared by the workers) from now on."""
    os.environ[ENV] = directory
    # The value class is chosen when prometheus_client is imported; choose again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_enabled() -> bool:
    return bool(getattr(values.ValueClass, "_multiprocess", False))


Render = Callable[[str], tuple[bytes, str]]
"""``render(accept)``: the ``/metrics`` body for a request's ``Accept``, and its type."""


def exposition(registry: CollectorRegistry, refresh: Iterable[Callable[[], None]] = ()) -> Render:
    """A ``/metrics`` renderer for the admin listener.

    Each ``refresh`` callback runs first (setting gauges whose value depends
    on time). In multiprocess mode the body aggregates every process's
    values; otherwise it is ``registry`` alone.
    """
    callbacks = tuple(refresh)

    def render(accept: str) -> tuple[bytes, str]:
        for callback in callbacks:
            callback()
        encode, content_type = choose_encoder(accept)
        if multiprocess_enabled():
            aggregate = CollectorRegistry()
            MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
            return encode(aggregate), content_type
        return encode(registry), content_type

    return render
