"""Prometheus metrics of the proxy engine, shared by edge and sidecar (``meshgate_`` prefix).

Every series here works in prometheus-client's multiprocess mode (the edge's
``workers``): only plain counters, gauges and histograms, gauges with an
explicit aggregation, and no value computed at scrape time by a callback in
another process. Values that depend on time (catalog age) are set by
:meth:`ProxyMetrics.refresh`, which the admin listener calls before each
scrape and the edge's workers call every second.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.samples import Exemplar
from prometheus_client.values import MutexValue

from mesh.connections import REFUSAL_REASONS
from mesh.snapshot import Snapshot, SnapshotStore
from mesh.tunnel import CLOSE_REASONS

# Fine at the low end: a proxy hop on loopback takes well under a millisecond.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def status_class(status: int) -> str:
    """``"2xx"`` for 204; anything out of range counts as ``"5xx"``."""
    return STATUS_CLASSES.get(status // 100, "5xx")


M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """A labelled metric's children, each looked up through ``labels()`` once and kept.

    ``labels()`` turns every value into a string, checks the count and takes
    a lock on every call: a few microseconds that per-request series would pay
    on every request. Only for series whose children are never removed (a
    removed child would keep counting here, unseen).
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        """The child for ``labels`` (strings, in the metric's label order)."""
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


def _in_place(*values: object) -> bool:
    """Whether ``values`` are all single-process ``MutexValue`` objects, which the
    per-request series update in place (see :func:`observer`)."""
    return all(type(value) is MutexValue for value in values)


F = TypeVar("F", bound=Callable[..., None])


class ChildFunctions(Generic[M, F]):
    """A labelled metric's children, each turned into a function once (``make``) and kept.

    ``functions(*labels)`` is ``make(metric.labels(*labels))``, made on first use:
    :func:`adder` for a counter, :func:`observer` for a histogram, so that a
    per-request series costs one dictionary look-up and a call. Only for series
    whose children are never removed, as :class:`Children`.
    """

    __slots__ = ("_children", "_functions", "_make")

    def __init__(self, metric: M, make: Callable[[M], F]) -> None:
        self._children = Children(metric)
        self._make = make
        self._functions: dict[tuple[str, ...], F] = {}

    def __call__(self, *labels: str) -> F:
        """The function of the child for ``labels`` (strings, in the metric's label order)."""
        function = self._functions.get(labels)
        if function is None:
            function = self._functions[labels] = self._make(self._children(*labels))
        return function


def adder(child: Counter) -> Callable[[], None]:
    """``child.inc`` (by one); with single-process values, in place (see :func:`observer`)."""
    value = getattr(child, "_value", None)
    if not _in_place(value):
        return child.inc

    def add_in_place() -> None:
        value._value += 1  # type: ignore[union-attr]

    return add_in_place


def observer(child: Histogram) -> Callable[[float], None]:
    """``child.observe`` (without an exemplar), its bucket found by bisection.

    prometheus-client's ``Histogram.observe`` looks for the first bucket whose
    upper bound holds the amount by walking the bounds in Python, one by one:
    for a few milliseconds against these fine :data:`LATENCY_BUCKETS`, about
    115 bytecodes a call, and every request makes two calls (request and
    upstream duration). ``bisect_left`` finds the same bucket in C. The sum,
    then that bucket, are added to as ``observe`` adds to them. ``amount``
    must be a number, not NaN (which ``observe`` counts in no bucket).

    How they are added to depends on the child's value objects:

    * single-process values (``MutexValue``, the default without
      ``PROMETHEUS_MULTIPROC_DIR``): their floats are updated in place,
      without the lock ``MutexValue.inc`` takes (:func:`adder` does the
      same). That lock keeps two *writing* threads from losing an update;
      every per-request series is written by one thread only, the process's
      event loop, and a scrape reading meanwhile sees the old float or the
      new one, whole. About 60 bytecodes a request fewer, with the counters;
    * anything else (multiprocess values, which write an mmap file): through
      their own ``inc``.

    For a child that does not keep ``_upper_bounds``, ``_buckets`` and
    ``_sum`` as prometheus-client 0.2x's histogram children do (a parent
    with its labels unset keeps none), this is ``child.observe`` itself.
    """
    known = _histogram_fields(child)
    if known is None:
        return child.observe
    bounds, buckets, total = known
    if _in_place(total, *buckets):

        def observe_in_place(amount: float) -> None:
            total._value += amount
            buckets[bisect_left(bounds, amount)]._value += 1

        return observe_in_place
    inc_total = total.inc
    incs = [bucket.inc for bucket in buckets]

    def observe(amount: float) -> None:
        inc_total(amount)
        incs[bisect_left(bounds, amount)](1)

    return observe


TracedObserve = Callable[[float, dict[str, str]], None]


def exemplar_observer(child: Histogram) -> TracedObserve:
    """``child.observe`` with an exemplar: labels (``trace_id`` and ``span_id``, as
    Grafana links them to a trace) that the amount's bucket keeps, the latest one
    per bucket, and OpenMetrics exposes beside it. It counts the amount as
    :func:`observer` does, so one series takes both.

    With single-process values, in place as :func:`observer` (the exemplar too),
    and without prometheus-client's check of the labels, which costs a sampled
    request (one in ten by default) more than the rest of its observation: the
    callers' labels are two hex ids, valid names and 48 characters of values,
    within OpenMetrics' 128. Multiprocess values keep no exemplar (a limit of
    prometheus-client): there it counts through :func:`observer`. A child it
    does not know gets ``child.observe(amount, exemplar)`` itself.
    """
    known = _histogram_fields(child)
    if known is None:
        return child.observe
    bounds, buckets, total = known
    if not _in_place(total, *buckets):
        plain = observer(child)

        def observe_without_exemplar(amount: float, exemplar: dict[str, str]) -> None:
            plain(amount)

        return observe_without_exemplar

    def observe_in_place(amount: float, exemplar: dict[str, str]) -> None:
        total._value += amount
        bucket = buckets[bisect_left(bounds, amount)]
        bucket._value += 1
        bucket._exemplar = Exemplar(exemplar, amount, time.time())

    return observe_in_place


def _histogram_fields(child: Histogram) -> tuple[list[float], list[Any], Any] | None:
    """A histogram child's bounds, bucket values and sum value, when it keeps them as
    prometheus-client 0.2x's children do (sorted bounds ending at +Inf, one bucket
    each, a sum with ``inc``); None otherwise (a parent with its labels unset keeps
    none)."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if (
        type(bounds) is not list
        or type(buckets) is not list
        or not bounds
        or len(bounds) != len(buckets)
        or bounds[-1] != math.inf
        or bounds != sorted(bounds)
        or not callable(getattr(total, "inc", None))
    ):
        return None
    return bounds, buckets, total


def trace_exemplar(trace_id: int, span_id: int) -> dict[str, str]:
    """The exemplar naming a span: its trace id and span id, as hex (what Jaeger's search
    and Grafana's trace links take)."""
    return {"trace_id": f"{trace_id:032x}", "span_id": f"{span_id:016x}"}


class ProxyMetrics:
    """The series every meshgate process has, labelled with its ``role``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        role: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.role = role
        self._clock = clock
        self._following_since = 0.0
        self._store: SnapshotStore | None = None
        self._instance_keys: set[tuple[str, str]] = set()
        self.requests = Counter(
            "meshgate_requests",
            "Requests handled, by route, service and status class.",
            ["role", "route", "service", "code_class"],
            registry=registry,
        )
        self.duration = Histogram(
            "meshgate_request_duration_seconds",
            "Time from request received to response completed.",
            ["role", "route", "service"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "meshgate_upstream_duration_seconds",
            "Time of one upstream attempt, from sending the request to its response headers "
            "(outcome: status class, or the kind of failure).",
            ["role", "service", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests_of = Children(self.requests)
        self.count_request = ChildFunctions(self.requests, adder)
        """``count_request(role, route, service, code_class)()``: see :func:`adder`."""
        self.observe_duration = ChildFunctions(self.duration, observer)
        """``observe_duration(role, route, service)(seconds)``: see :func:`observer`."""
        self.observe_upstream_duration = ChildFunctions(self.upstream_duration, observer)
        """``observe_upstream_duration(role, service, outcome)(seconds)``."""
        self.observe_duration_traced = ChildFunctions(self.duration, exemplar_observer)
        """``observe_duration_traced(role, route, service)(seconds, exemplar)``: for a
        sampled request, its trace kept on the bucket (see :func:`exemplar_observer`)."""
        self.observe_upstream_duration_traced = ChildFunctions(
            self.upstream_duration, exemplar_observer
        )
        """``observe_upstream_duration_traced(role, service, outcome)(seconds, exemplar)``."""
        self.catalog_age = Gauge(
            "meshgate_catalog_age_seconds",
            "Seconds since the catalog was last in sync with its source (0 while in sync; "
            "before the first sync, since the process started following it).",
            ["role"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.instances = Gauge(
            "meshgate_instances",
            "Instances per service and health in the current snapshot.",
            ["role", "service", "health"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.catalog_swaps = Counter(
            "meshgate_catalog_updates",
            "Snapshots published because the catalog changed.",
            ["role"],
            registry=registry,
        )
        self.connections = Gauge(
            "meshgate_connections",
            "Client connections open, by listener.",
            ["role", "listener"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.connections_refused = Counter(
            "meshgate_connections_refused",
            "Client connections closed as soon as accepted because a limit was reached "
            "(reason: max_connections, max_connections_per_address).",
            ["role", "listener", "reason"],
            registry=registry,
        )
        self.tunnels = Gauge(
            "meshgate_tunnels",
            "Switched connections (WebSocket) open now, by service.",
            ["role", "service"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.tunnels_closed = Counter(
            "meshgate_tunnels_closed",
            "Switched connections ended, by why (client_closed, upstream_closed, "
            "idle_timeout, cancelled).",
            ["role", "service", "reason"],
            registry=registry,
        )
        self.tunnel_bytes = Counter(
            "meshgate_tunnel_bytes",
            "Bytes carried by switched connections that have ended, by direction "
            "(to_upstream, to_client).",
            ["role", "service", "direction"],
            registry=registry,
        )
        self.canary_requests = Counter(
            "meshgate_canary_requests",
            "Requests to routes with a canary, by the side they went to (canary, stable; "
            "before a side without healthy instances falls back to the other).",
            ["role", "route", "side"],
            registry=registry,
        )
        # A canary's every request counts: its increment found once per (route, side).
        self._canary_counted = ChildFunctions(self.canary_requests, adder)
        self.malformed_requests = Counter(
            "meshgate_malformed_requests",
            "Requests the HTTP parser refused (a bad request line, header or framing; "
            "answered 400 with a problem body).",
            ["role", "listener"],
            registry=registry,
        )

    def count_canary(self, route: str, side: str) -> None:
        """One request to ``route`` sent to ``side`` of its canary."""
        self._canary_counted(self.role, route, side)()

    def tunnel_observer(self, service: str) -> TunnelMetrics:
        """What counts one tunnel to ``service`` (a :class:`mesh.tunnel.TunnelObserver`);
        the service's series of every close reason exist, at 0, from its first tunnel."""
        for reason in CLOSE_REASONS:
            self.tunnels_closed.labels(self.role, service, reason)
        return TunnelMetrics(self, service)

    def connection_observer(self, listener: str) -> ConnectionMetrics:
        """What counts ``listener``'s client connections (a
        :class:`mesh.connections.ConnectionObserver`); a refusal series exists, at 0,
        for each reason a limit may give from the start, so that an alert can rate() it."""
        for reason in REFUSAL_REASONS:
            self.connections_refused.labels(self.role, listener, reason)
        return ConnectionMetrics(
            self.connections.labels(self.role, listener),
            self.connections_refused,
            (self.role, listener),
            self.malformed_requests.labels(self.role, listener),
        )

    def follow(self, store: SnapshotStore) -> None:
        """Keep the catalog gauges up to date from ``store``."""
        self._store = store
        self._following_since = self._clock()
        self.refresh()
        store.subscribe(self._on_snapshot)

    def refresh(self) -> None:
        """Set the time-dependent gauges (catalog age) to their value now."""
        if self._store is not None:
            age = self._store.age()
            if age is None:  # never in sync yet: stale since we started
                age = self._clock() - self._following_since
            self.catalog_age.labels(self.role).set(age)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.refresh()  # a publish is a sync: the age is 0 from now, not from the next scrape
        self.catalog_swaps.labels(self.role).inc()
        keys: set[tuple[str, str]] = set()
        for name, entry in snapshot.services.items():
            healthy = len(entry.healthy)
            self.instances.labels(self.role, name, "passing").set(healthy)
            self.instances.labels(self.role, name, "critical").set(len(entry.instances) - healthy)
            keys.update({(name, "passing"), (name, "critical")})
        for service, health in self._instance_keys - keys:
            # Zero first: in multiprocess mode a removed series keeps its file value.
            self.instances.labels(self.role, service, health).set(0)
            self.instances.remove(self.role, service, health)
        self._instance_keys = keys


class ConnectionMetrics:
    """One listener's connection series: the open gauge, and refusals by reason."""

    __slots__ = ("_labels", "_malformed", "_open", "_refused")

    def __init__(
        self, open_gauge: Gauge, refused: Counter, labels: tuple[str, str], malformed: Counter
    ) -> None:
        self._open = open_gauge
        self._refused = refused
        self._labels = labels
        """``(role, listener)``: the refusal counter's first two labels."""
        self._malformed = malformed

    def opened(self) -> None:
        self._open.inc()

    def closed(self) -> None:
        self._open.dec()

    def refused(self, reason: str) -> None:
        self._refused.labels(*self._labels, reason).inc()

    def malformed(self) -> None:
        self._malformed.inc()


class TunnelMetrics:
    """One tunnel's series: open while it lasts; at its end, why and how many bytes."""

    __slots__ = ("_metrics", "_service")

    def __init__(self, metrics: ProxyMetrics, service: str) -> None:
        self._metrics = metrics
        self._service = service

    def opened(self) -> None:
        m = self._metrics
        m.tunnels.labels(m.role, self._service).inc()

    def closed(self, reason: str, to_upstream: int, to_client: int) -> None:
        m, service = self._metrics, self._service
        m.tunnels.labels(m.role, service).dec()
        m.tunnels_closed.labels(m.role, service, reason).inc()
        m.tunnel_bytes.labels(m.role, service, "to_upstream").inc(to_upstream)
        m.tunnel_bytes.labels(m.role, service, "to_client").inc(to_client)


class RefreshMetrics:
    """Refreshes of something fetched over the network, by outcome (for auth: the JWKS).

    ``RefreshMetrics(registry, "jwks")`` gives ``meshgate_jwks_refreshes_total{outcome}``
    (``success`` or ``failure``) and ``meshgate_jwks_refresh_duration_seconds``.
    With ``labels`` (e.g. ``("provider",)``) both series carry those labels first,
    and each source records through its own :meth:`recorder`; without, through
    :meth:`record`. Either way, call it once per fetch, however it ended; it never
    raises.
    """

    def __init__(
        self, registry: CollectorRegistry, what: str, labels: tuple[str, ...] = ()
    ) -> None:
        self._labels = labels
        self.refreshes = Counter(
            f"meshgate_{what}_refreshes",
            f"Fetches of the {what}, by outcome (success, failure).",
            [*labels, "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            f"meshgate_{what}_refresh_duration_seconds",
            f"Time of one fetch of the {what}.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        if not labels:
            for outcome in ("success", "failure"):
                self.refreshes.labels(outcome)  # both series exist from the start

    def record(self, ok: bool, seconds: float) -> None:
        """Count one fetch (only without ``labels``: else use :meth:`recorder`)."""
        self.refreshes.labels("success" if ok else "failure").inc()
        self.duration.observe(seconds)

    def recorder(self, *values: str) -> Callable[[bool, float], None]:
        """:meth:`record` for the source with these label ``values`` (one per label);
        its success and failure series exist from this call on."""
        if len(values) != len(self._labels):
            raise ValueError(f"expected values for {self._labels}, got {values}")
        counts = {
            ok: self.refreshes.labels(*values, "success" if ok else "failure")
            for ok in (True, False)
        }
        duration = self.duration.labels(*values)

        def record(ok: bool, seconds: float) -> None:
            counts[ok].inc()
            duration.observe(seconds)

        return record
