"""The proxy's Prometheus series, and one upstream attempt's telemetry."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from mesh.connections import REFUSED_PER_ADDRESS, REFUSED_TOTAL
from mesh.exchange import Exchange
from mesh.snapshot import Instance, ServiceEntry, SnapshotStore, make_snapshot
from mesh.telemetry.exposition import exposition
from mesh.telemetry.metrics import (
    LATENCY_BUCKETS,
    ProxyMetrics,
    RefreshMetrics,
    adder,
    exemplar_observer,
    observer,
    status_class,
    trace_exemplar,
)
from mesh.telemetry.upstream import UpstreamTelemetry
from tests.mesh.telemetry.support import Recorder, headers_sent, make_exchange

PROJECT_ROOT = Path(__file__).resolve().parents[3]
INSTANCE = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)


def samples(
    registry: CollectorRegistry, metrics: ProxyMetrics | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What /metrics shows (refreshing ``metrics`` first, as the admin listener does)."""
    text = exposition(registry, [metrics.refresh] if metrics else [])("")[0].decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_status_class() -> None:
    assert [status_class(s) for s in (101, 204, 302, 404, 503, 600, 42)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "5xx",
        "5xx",
    ]


def entry(name: str, healthy: int, critical: int) -> ServiceEntry:
    instances = tuple(
        Instance(
            id=f"{name}-{i}", service=name, address="10.0.0.1", port=1000 + i, healthy=i < healthy
        )
        for i in range(healthy + critical)
    )
    return ServiceEntry(name=name, instances=instances)


def test_catalog_gauges_follow_the_store_and_drop_vanished_services() -> None:
    clock = [100.0]
    store = SnapshotStore(clock=lambda: clock[0])
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge", clock=lambda: clock[0])
    metrics.follow(store)
    clock[0] = 103.0  # no catalog yet: stale since following began
    assert samples(registry, metrics)[("meshgate_catalog_age_seconds", (("role", "edge"),))] == 3
    store.publish(make_snapshot({"a": entry("a", 2, 1), "b": entry("b", 1, 0)}, "test"))
    got = samples(registry, metrics)
    assert (
        got[("meshgate_instances", (("health", "passing"), ("role", "edge"), ("service", "a")))]
        == 2
    )
    assert (
        got[("meshgate_instances", (("health", "critical"), ("role", "edge"), ("service", "a")))]
        == 1
    )
    assert got[("meshgate_catalog_age_seconds", (("role", "edge"),))] == 0

    store.publish(make_snapshot({"a": entry("a", 1, 0)}, "test"))
    store.mark_out_of_sync()
    clock[0] = 107.5
    got = samples(registry, metrics)
    assert not [k for k in got if k[0] == "meshgate_instances" and ("service", "b") in k[1]]
    assert got[("meshgate_catalog_age_seconds", (("role", "edge"),))] == 4.5  # 107.5 - 103
    assert got[("meshgate_catalog_updates_total", (("role", "edge"),))] == 2


def traced_orders_call(
    role: str, sampler_ratio: float
) -> tuple[CollectorRegistry, UpstreamTelemetry, Recorder, Exchange]:
    """A registry, upstream telemetry of ``role`` over it, a span recorder sampling
    ``sampler_ratio`` of traces, and a call to ``orders`` whose trace has started."""
    registry = CollectorRegistry()
    telemetry = UpstreamTelemetry(ProxyMetrics(registry, role))
    r = Recorder(sampler_ratio=sampler_ratio)
    ex = make_exchange()
    ex.service = "orders"
    ex.trace = r.tracing.start_request(ex)
    return registry, telemetry, r, ex


def test_an_attempt_observes_the_upstream_histogram_and_ends_its_span() -> None:
    registry, telemetry, r, ex = traced_orders_call("sidecar", 1.0)

    ok = telemetry.attempt(ex, INSTANCE, 1)
    ok.responded(200)
    ok.end()
    ok.end()  # idempotent
    failed = telemetry.attempt(ex, INSTANCE, 2)
    failed.failed("connect_error")
    failed.end()
    aborted = telemetry.attempt(ex, INSTANCE, 3)
    aborted.end()

    got = samples(registry)

    def count(outcome: str) -> float:
        key = (("outcome", outcome), ("role", "sidecar"), ("service", "orders"))
        return got.get(("meshgate_upstream_duration_seconds_count", key), 0)

    assert (count("2xx"), count("connect_error"), count("aborted")) == (1, 1, 0)
    clients = [s for s in r.spans if s.kind is SpanKind.CLIENT]
    assert [(s.attributes or {})["meshgate.attempt"] for s in clients] == [1, 2, 3]
    assert [(s.attributes or {}).get("error.type") for s in clients] == [
        None,
        "connect_error",
        "aborted",
    ]
    assert clients[0].status.status_code is StatusCode.UNSET


def openmetrics_exemplars(registry: CollectorRegistry, name: str) -> dict[str, dict[str, str]]:
    """The exemplars of ``name``'s samples in the OpenMetrics exposition, by ``le``."""
    body, content_type = exposition(registry)("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    return {
        sample.labels["le"]: dict(sample.exemplar.labels)
        for family in openmetrics_families(body.decode())  # type: ignore[no-untyped-call]
        for sample in family.samples
        if sample.name == name and sample.exemplar is not None
    }


@pytest.mark.parametrize("sampled", [True, False])
def test_a_sampled_attempt_names_its_client_span_on_its_bucket(sampled: bool) -> None:
    registry, telemetry, r, ex = traced_orders_call("edge", 1.0 if sampled else 0.0)
    attempt = telemetry.attempt(ex, INSTANCE, 1)
    attempt.responded(200)
    attempt.end()
    kept = openmetrics_exemplars(registry, "meshgate_upstream_duration_seconds_bucket")
    if sampled:
        (client,) = [s for s in r.spans if s.kind is SpanKind.CLIENT]
        context = client.get_span_context()
        assert context is not None
        assert list(kept.values()) == [
            {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
        ]
    else:
        assert kept == {}  # no trace in Jaeger to link to
    # Counted once either way.
    key = (("outcome", "2xx"), ("role", "edge"), ("service", "orders"))
    assert samples(registry)[("meshgate_upstream_duration_seconds_count", key)] == 1


def test_without_metrics_or_trace_an_attempt_costs_nothing_visible() -> None:
    ex = make_exchange()
    attempt = UpstreamTelemetry().attempt(ex, INSTANCE, 1)
    attempt.responded(200)
    attempt.end()
    assert "traceparent" not in headers_sent(ex)


def test_refresh_metrics_count_by_outcome() -> None:
    registry = CollectorRegistry()
    jwks = RefreshMetrics(registry, "jwks")
    assert samples(registry)[("meshgate_jwks_refreshes_total", (("outcome", "failure"),))] == 0
    jwks.record(True, 0.02)
    jwks.record(False, 1.5)
    jwks.record(True, 0.01)
    got = samples(registry)
    assert got[("meshgate_jwks_refreshes_total", (("outcome", "success"),))] == 2
    assert got[("meshgate_jwks_refreshes_total", (("outcome", "failure"),))] == 1
    assert got[("meshgate_jwks_refresh_duration_seconds_count", ())] == 3


def test_refresh_metrics_with_labels_count_per_source() -> None:
    registry = CollectorRegistry()
    jwks = RefreshMetrics(registry, "jwks", ("provider",))
    staff = jwks.recorder("staff")
    # A source's two series exist once it has a recorder.
    assert (
        samples(registry)[
            ("meshgate_jwks_refreshes_total", (("outcome", "failure"), ("provider", "staff")))
        ]
        == 0
    )
    staff(True, 0.02)
    staff(False, 0.5)
    jwks.recorder("default")(True, 0.01)
    got = samples(registry)
    for provider, outcome, count in [
        ("staff", "success", 1),
        ("staff", "failure", 1),
        ("default", "success", 1),
        ("default", "failure", 0),
    ]:
        key = (("outcome", outcome), ("provider", provider))
        assert got[("meshgate_jwks_refreshes_total", key)] == count
    staff_count = (("provider", "staff"),)
    assert got[("meshgate_jwks_refresh_duration_seconds_count", staff_count)] == 2
    with pytest.raises(ValueError):
        jwks.recorder()


def test_connection_observer_counts_connections_refusals_and_malformed_requests() -> None:
    registry = CollectorRegistry()
    observer_ = ProxyMetrics(registry, "edge").connection_observer("edge")
    role_listener = (("listener", "edge"), ("role", "edge"))

    def refused(reason: str) -> float:
        labels = tuple(sorted((*role_listener, ("reason", reason))))
        return samples(registry)[("meshgate_connections_refused_total", labels)]

    # Both series are there before any refusal.
    assert (refused(REFUSED_TOTAL), refused(REFUSED_PER_ADDRESS)) == (0, 0)
    for _ in range(3):
        observer_.opened()
    observer_.closed()
    assert samples(registry)[("meshgate_malformed_requests_total", role_listener)] == 0
    observer_.refused(REFUSED_PER_ADDRESS)
    observer_.refused(REFUSED_PER_ADDRESS)
    observer_.malformed()
    assert samples(registry)[("meshgate_connections", role_listener)] == 2
    assert (refused(REFUSED_TOTAL), refused(REFUSED_PER_ADDRESS)) == (0, 2)
    assert samples(registry)[("meshgate_malformed_requests_total", role_listener)] == 1


def test_children_looks_up_each_label_tuple_once_and_counts_into_its_series() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    first = metrics.requests_of("edge", "r", "svc", "2xx")
    assert metrics.requests_of("edge", "r", "svc", "2xx") is first
    assert first is metrics.requests.labels("edge", "r", "svc", "2xx")
    first.inc()
    metrics.requests_of("edge", "r", "svc", "5xx").inc(2)
    assert (
        registry.get_sample_value(
            "meshgate_requests_total",
            {"role": "edge", "route": "r", "service": "svc", "code_class": "2xx"},
        )
        == 1.0
    )
    assert (
        registry.get_sample_value(
            "meshgate_requests_total",
            {"role": "edge", "route": "r", "service": "svc", "code_class": "5xx"},
        )
        == 2.0
    )


# Every bound, either side of it, zero, a negative amount and one past the last bound.
AMOUNTS = [
    *LATENCY_BUCKETS,
    *(b * 0.999 for b in LATENCY_BUCKETS),
    *(b * 1.001 for b in LATENCY_BUCKETS),
    0.0,
    -1.0,
    1e9,
]


def test_observer_counts_every_amount_where_histogram_observe_does() -> None:
    registry = CollectorRegistry()
    by_library = Histogram("lib", "h", ["k"], buckets=LATENCY_BUCKETS, registry=registry)
    by_observer = Histogram("fast", "h", ["k"], buckets=LATENCY_BUCKETS, registry=registry)
    observe = observer(by_observer.labels("v"))
    assert observe != by_observer.labels("v").observe  # the bisecting one, not the fallback
    for amount in AMOUNTS:
        by_library.labels("v").observe(amount)
        observe(amount)
    got = samples(registry)
    library = {
        (name[3:], labels): v
        for (name, labels), v in got.items()
        if name[:3] == "lib" and name != "lib_created"
    }
    fast = {
        (name[4:], labels): v
        for (name, labels), v in got.items()
        if name[:4] == "fast" and name != "fast_created"
    }
    assert fast == library
    assert fast[("_count", (("k", "v"),))] == len(AMOUNTS)


def test_exemplar_observer_counts_and_keeps_exemplars_where_histogram_observe_does() -> None:
    registry = CollectorRegistry()
    by_library = Histogram("lib", "h", ["k"], buckets=LATENCY_BUCKETS, registry=registry)
    by_observer = Histogram("fast", "h", ["k"], buckets=LATENCY_BUCKETS, registry=registry)
    observe = exemplar_observer(by_observer.labels("v"))
    assert observe != by_observer.labels("v").observe  # in place, not the fallback
    for n, amount in enumerate(AMOUNTS):
        if math.isnan(amount):
            continue  # observe counts NaN in no bucket; the callers never pass one
        exemplar = trace_exemplar(n + 1, n + 2)
        by_library.labels("v").observe(amount, exemplar)
        observe(amount, exemplar)
    got = samples(registry)
    library = {
        (n[3:], lb): v for (n, lb), v in got.items() if n[:3] == "lib" and "created" not in n
    }
    fast = {(n[4:], lb): v for (n, lb), v in got.items() if n[:4] == "fast" and "created" not in n}
    assert fast == library
    kept_by_library = openmetrics_exemplars(registry, "lib_bucket")
    assert kept_by_library  # every bucket that took an amount keeps its latest
    assert openmetrics_exemplars(registry, "fast_bucket") == kept_by_library


def test_observers_make_each_label_tuple_once_and_observe_into_its_series() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    first = metrics.observe_duration("edge", "r", "svc")
    assert metrics.observe_duration("edge", "r", "svc") is first
    first(0.003)
    metrics.observe_duration("edge", "r", "other")(0.2)
    got = samples(registry)
    series = (("role", "edge"), ("route", "r"), ("service", "svc"))
    assert got[("meshgate_request_duration_seconds_count", series)] == 1
    assert got[("meshgate_request_duration_seconds_bucket", (("le", "0.0025"), *series))] == 0
    assert got[("meshgate_request_duration_seconds_bucket", (("le", "0.005"), *series))] == 1
    assert got[("meshgate_request_duration_seconds_sum", series)] == 0.003


def test_exemplar_observer_counts_as_observer_does_and_keeps_the_latest_per_bucket() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    metrics.observe_duration("edge", "r", "svc")(0.003)
    traced = metrics.observe_duration_traced("edge", "r", "svc")
    assert metrics.observe_duration_traced("edge", "r", "svc") is traced
    traced(0.004, trace_exemplar(1, 2))
    traced(0.0045, trace_exemplar(3, 4))  # the same bucket: the later one is kept
    traced(0.2, trace_exemplar(5, 6))
    got = samples(registry)
    series = (("role", "edge"), ("route", "r"), ("service", "svc"))
    assert got[("meshgate_request_duration_seconds_count", series)] == 4
    assert got[("meshgate_request_duration_seconds_bucket", (("le", "0.005"), *series))] == 3
    assert got[("meshgate_request_duration_seconds_sum", series)] == pytest.approx(0.2115)
    kept = openmetrics_exemplars(registry, "meshgate_request_duration_seconds_bucket")
    assert kept == {
        "0.005": {"trace_id": f"{3:032x}", "span_id": f"{4:016x}"},
        "0.25": {"trace_id": f"{5:032x}", "span_id": f"{6:016x}"},
    }


def test_trace_exemplar_is_hex_of_fixed_width() -> None:
    assert trace_exemplar(0xABC, 0x1) == {"trace_id": "0" * 29 + "abc", "span_id": "0" * 15 + "1"}


def test_observer_of_a_histogram_with_labels_unset_is_refused_as_observe_is() -> None:
    histogram = Histogram("h", "h", ["k"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values"):
        histogram.observe(1.0)
    with pytest.raises(ValueError, match="missing label values"):
        observer(histogram)(1.0)


def test_observer_of_a_histogram_it_does_not_know_is_its_observe() -> None:
    class Odd:
        def observe(self, amount: float) -> None: ...

    odd = Odd()
    assert observer(odd) == odd.observe  # type: ignore[arg-type]


def test_counters_of_a_counter_it_does_not_know_add_through_its_inc() -> None:
    counter = Counter("c", "c", ["k"], registry=CollectorRegistry())
    child = counter.labels("v")
    child._value = None  # not a value class it knows
    assert adder(child) == child.inc


def test_counters_make_each_label_tuple_once_and_add_one_to_its_series() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    add = metrics.count_request("edge", "r", "svc", "2xx")
    assert metrics.count_request("edge", "r", "svc", "2xx") is add
    add()
    add()
    metrics.count_request("edge", "r", "svc", "5xx")()
    metrics.requests_of("edge", "r", "svc", "5xx").inc()  # the library's own, on the same child
    got = samples(registry)
    series = (("role", "edge"), ("route", "r"), ("service", "svc"))
    assert got[("meshgate_requests_total", (("code_class", "2xx"), *series))] == 2
    assert got[("meshgate_requests_total", (("code_class", "5xx"), *series))] == 2


MULTIPROCESS_SCRIPT = """
import json, sys
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from mesh.telemetry.metrics import LATENCY_BUCKETS, adder, exemplar_observer, observer
amounts = json.loads(sys.argv[1])
lib = Histogram("lib", "h", ["k"], buckets=LATENCY_BUCKETS)
fast = Histogram("fast", "h", ["k"], buckets=LATENCY_BUCKETS)
observe = observer(fast.labels("v"))
traced = exemplar_observer(Histogram("traced", "h", ["k"], buckets=LATENCY_BUCKETS).labels("v"))
libc = Counter("libc", "c", ["k"])
add = adder(Counter("fastc", "c", ["k"]).labels("v"))
for amount in amounts:
    lib.labels("v").observe(amount)
    observe(amount)
    traced(amount, {"trace_id": "ab" * 16, "span_id": "cd" * 8})
    libc.labels("v").inc()
    add()
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(json.dumps([[s.name, sorted(s.labels.items()), s.value]
                  for m in registry.collect() for s in m.samples]))
"""


def test_multiprocess_values_see_what_observe_and_inc_write(tmp_path: Path) -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR`` (the edge's workers), values live in mmap files:
    the observer and the counters write them through their ``inc``, as the library does."""
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, json.dumps(AMOUNTS)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    got: dict[tuple[str, str], float] = {}
    for name, labels, value in json.loads(result.stdout):
        got[name, json.dumps(labels)] = value
    library = {(n[3:], labels): v for (n, labels), v in got.items() if n.startswith("lib_")}
    fast = {(n[4:], labels): v for (n, labels), v in got.items() if n.startswith("fast_")}
    traced = {(n[6:], labels): v for (n, labels), v in got.items() if n.startswith("traced_")}
    assert library and fast == library
    assert traced == library  # counted, its exemplars dropped (multiprocess keeps none)
    assert fast[("_count", json.dumps([["k", "v"]]))] == len(AMOUNTS)
    assert got["fastc_total", json.dumps([["k", "v"]])] == len(AMOUNTS)
    assert got["libc_total", json.dumps([["k", "v"]])] == len(AMOUNTS)
