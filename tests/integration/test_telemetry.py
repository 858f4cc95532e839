"""Traces, metrics and access logs on real processes, with a real OTLP/HTTP receiver.

Every process (edge, sidecars, demo apps) exports to
:class:`tests.integration.otlp_receiver.OtlpReceiver` through the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` variable; the receiver decodes the protobuf
payloads exactly as Jaeger would receive them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from demo.processes import RedisServer, free_port, meshgate_argv, wait_until
from mesh.telemetry.tracing import (
    EVENT_BREAKER_OPENED,
    EVENT_BREAKER_REJECTED,
    EVENT_HEDGE,
    EVENT_RATE_LIMITED,
    EVENT_RETRY,
)
from tests.integration.harness import App, Edge, Mesh, Sidecar, descendants, http, metrics
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan

ORDERS_ROUTE = [{"prefix": "/api/orders", "service": "orders", "prefix_rewrite": "/orders"}]
SAMPLE_ALL = {"telemetry": {"tracing": {"sampler_ratio": 1.0}}}
SAMPLE_NONE = {"telemetry": {"tracing": {"sampler_ratio": 0.0}}}
SAMPLE_ALL_FAST_LOG = {
    "telemetry": {"tracing": {"sampler_ratio": 1.0}, "access_log": {"flush_interval": "100ms"}}
}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """A receiver every process started by the test exports to (and nothing else set)."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    r = OtlpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    try:
        yield r
    finally:
        r.stop()


# --- helpers ---------------------------------------------------------------------------


def traceparent(trace_id: str, span_id: str = "00f067aa0ba902b7", sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def new_trace_id() -> str:
    return os.urandom(16).hex()


def parse_traceresponse(value: str) -> tuple[str, str, bool]:
    """A ``traceresponse`` (or ``traceparent``) value: trace id, span id, sampled."""
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id, bool(int(flags, 16) & 1)


@dataclass
class OrdersMesh:
    edge: Edge
    orders_sidecar: Sidecar
    inventory_sidecar: Sidecar
    inventory: App


def orders_mesh(
    mesh: Mesh,
    edge_extra: dict[str, Any] | None = None,
    sidecar_extra: dict[str, Any] | None = None,
) -> OrdersMesh:
    """edge → orders sidecar → orders → its sidecar (outbound) → inventory sidecar → inventory."""
    inventory = mesh.app("inventory", "inventory-1")
    inventory_sidecar = mesh.sidecar(inventory, "inventory-1", extra=sidecar_extra)
    orders = mesh.app("orders", "orders-1")
    orders_sidecar = mesh.sidecar(orders, "orders-1", extra=sidecar_extra)
    edge = mesh.edge(ORDERS_ROUTE, extra=edge_extra)
    # The orders sidecar must see inventory in its catalog, the edge must see orders.
    wait_until(lambda: http(f"{edge.url}/api/orders/1")[0] == 200, 20, "orders to answer")
    return OrdersMesh(edge, orders_sidecar, inventory_sidecar, inventory)


def chain(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[ReceivedSpan]:
    """The spans from ``root`` down, each the only child of the one before."""
    children: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        children.setdefault(s.parent_id, []).append(s)
    out = [root]
    while children.get(out[-1].span_id):
        below = children[out[-1].span_id]
        assert len(below) == 1, f"{out[-1].name} has {len(below)} children: {below}"
        out.append(below[0])
    return out


def requests_by_class(scraped: dict[str, Any], role: str, **labels: str) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for sample_labels, value in scraped.get("meshgate_requests_total", []):
        if sample_labels["role"] == role and all(sample_labels[k] == v for k, v in labels.items()):
            counts[sample_labels["code_class"]] += value
    return {k: v for k, v in counts.items() if v}


def access_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"ts"')]


def first_hop(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    """The spans of ``trace_id``'s first hop: its SERVER span, the child of the caller's
    span in :func:`traceparent` (``00f067aa0ba902b7``), and that span's children."""
    spans = receiver.trace(trace_id)
    servers = [s for s in spans if s.parent_id == "00f067aa0ba902b7"]
    ids = {s.span_id for s in servers}
    return servers + [s for s in spans if s.parent_id in ids]


def events(span: ReceivedSpan, name: str) -> list[dict[str, Any]]:
    return [e.attributes for e in span.events if e.name == name]


# --- one request, one trace --------------------------------------------------------------


def test_one_request_is_one_trace_across_every_hop(mesh: Mesh, receiver: OtlpReceiver) -> None:
    m = orders_mesh(mesh, edge_extra=SAMPLE_ALL)
    edge, orders_sidecar, inventory_sidecar = m.edge, m.orders_sidecar, m.inventory_sidecar
    status, headers, body = http(f"{edge.url}/api/orders/7")
    assert status == 200, body
    trace_id, edge_span_id, sampled = parse_traceresponse(headers["traceresponse"])
    assert sampled

    spans = receiver.wait_for_trace(trace_id, 11)
    time.sleep(0.5)  # nothing more should come
    spans = receiver.trace(trace_id)
    assert len(spans) == 11, receiver.describe(spans)
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == 11  # distinct span ids
    roots = [s for s in spans if not s.parent_id]
    assert [r.span_id for r in roots] == [edge_span_id]
    for s in spans:
        assert not s.parent_id or s.parent_id in by_id, f"parent of {s} missing"

    path = chain(spans, roots[0])
    assert [(s.service, s.kind) for s in path] == [
        ("meshgate-edge", "SERVER"),
        ("meshgate-edge", "CLIENT"),
        ("orders-sidecar", "SERVER"),  # inbound
        ("orders-sidecar", "CLIENT"),  # → the orders app
        ("orders", "SERVER"),
        ("orders", "CLIENT"),  # OpenTelemetry's aiohttp client instrumentation
        ("orders-sidecar", "SERVER"),  # outbound
        ("orders-sidecar", "CLIENT"),  # → inventory's sidecar
        ("inventory-sidecar", "SERVER"),
        ("inventory-sidecar", "CLIENT"),
        ("inventory", "SERVER"),
    ], receiver.describe(path)
    edge_server, edge_client, in_server, app_client, orders_app, _, out_server, out_client = path[
        :8
    ]
    inv_server, inv_client, inventory_app = path[8:]

    # HTTP semantic conventions on the edge's SERVER span.
    a = edge_server.attributes
    assert edge_server.name == "GET /api/orders"
    assert a["http.request.method"] == "GET"
    assert a["http.route"] == "/api/orders"
    assert a["url.path"] == "/api/orders/7"
    assert a["http.response.status_code"] == 200
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", edge.port)
    assert a["network.peer.address"] == "127.0.0.1"
    assert "error.type" not in a and not edge_server.error

    # One CLIENT span per attempt, naming the instance it went to.
    c = edge_client.attributes
    assert c["meshgate.attempt"] == 1 and "http.request.resend_count" not in c
    assert (c["server.address"], c["server.port"]) == ("127.0.0.1", orders_sidecar.inbound)
    assert c["meshgate.instance"] == "orders-1"
    assert c["url.full"] == f"http://127.0.0.1:{orders_sidecar.inbound}/orders/7"
    assert c["http.response.status_code"] == 200

    assert in_server.attributes["meshgate.route"] == "inbound"
    assert in_server.attributes["url.path"] == "/orders/7"
    assert app_client.attributes["meshgate.instance"] == "local-app"
    assert orders_app.name == "GET /orders/{order_id}"
    assert out_server.attributes["meshgate.route"] == "outbound:inventory"
    assert out_client.attributes["meshgate.instance"] == "inventory-1"
    assert out_client.attributes["server.port"] == inventory_sidecar.inbound
    assert inv_server.attributes["meshgate.route"] == "inbound"
    assert inventory_app.name == "GET /inventory/stock/{item}"
    for s in path:
        assert s.attributes.get("http.response.status_code", 200) == 200

    # The app at the far end received the context of the CLIENT span that reached it.
    received = json.loads(body)["stock"]["traceparent"]
    assert parse_traceresponse(received) == (trace_id, inv_client.span_id, True)


def test_sampling_zero_exports_nothing_yet_the_context_reaches_the_far_end(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    edge = orders_mesh(mesh, edge_extra=SAMPLE_NONE).edge
    status, headers, body = http(f"{edge.url}/api/orders/7")
    assert status == 200
    trace_id, _, sampled = parse_traceresponse(headers["traceresponse"])
    assert not sampled
    received = json.loads(body)["stock"]["traceparent"]
    assert parse_traceresponse(received)[::2] == (trace_id, False)

    # A caller's own unsampled context is kept, trace id and all.
    caller = new_trace_id()
    status, headers, body = http(
        f"{edge.url}/api/orders/8", {"traceparent": traceparent(caller, sampled=False)}
    )
    assert status == 200
    assert parse_traceresponse(headers["traceresponse"])[0] == caller
    received = json.loads(body)["stock"]["traceparent"]
    assert parse_traceresponse(received)[::2] == (caller, False)
    assert received != traceparent(caller, sampled=False)  # a new parent span id per hop

    # A problem body names the trace too, sampled or not.
    status, headers, body = http(f"{edge.url}/nowhere")
    assert status == 404
    assert json.loads(body)["trace_id"] == parse_traceresponse(headers["traceresponse"])[0]

    time.sleep(1.5)  # several export periods
    assert receiver.spans == [], receiver.describe()


def test_pending_spans_are_flushed_on_shutdown(
    mesh: Mesh, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch delay far longer than the test: only the flush at shutdown can export.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    app = mesh.app("users", "users-1")
    sidecar = mesh.sidecar(app, "users-1")
    edge = mesh.edge(
        [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}],
        extra=SAMPLE_ALL,
    )
    wait_until(lambda: http(f"{edge.url}/api/users/echo")[0] == 200, 20, "users to answer")
    status, headers, _ = http(f"{edge.url}/api/users/echo")
    assert status == 200
    trace_id = parse_traceresponse(headers["traceresponse"])[0]
    time.sleep(0.5)
    assert receiver.trace(trace_id) == []
    assert edge.process.stop(timeout=10) == 0
    assert sidecar.process.stop(timeout=10) == 0
    spans = receiver.wait_for_trace(trace_id, 4, timeout=5)
    assert {(s.service, s.kind) for s in spans} >= {
        ("meshgate-edge", "SERVER"),
        ("meshgate-edge", "CLIENT"),
        ("users-sidecar", "SERVER"),
        ("users-sidecar", "CLIENT"),
    }


# --- resilience: retries and breakers ---------------------------------------------------

NO_BREAKER = {"min_calls": 100, "window_size": 100, "failure_rate": 1.0}
FAST_BREAKER = {
    "min_calls": 5,
    "window_size": 10,
    "consecutive_failures": None,
    "open_base": "5s",
    "open_jitter": 0,
}


def caller_and_backend(mesh: Mesh, breaker: dict[str, Any], **retries: Any) -> tuple[Sidecar, Any]:
    """A backend app behind its sidecar, and a caller's sidecar (the test plays its app)."""
    app = mesh.app("backend", "backend-0")
    mesh.sidecar(app, "backend-0")
    caller_app = mesh.app("client", "client-1")
    policy: dict[str, Any] = {"breaker": {**breaker, "consecutive_failures": None}}
    if retries:
        policy["retries"] = retries
    caller = mesh.sidecar(
        caller_app,
        "client-1",
        extra={"registration": {"enabled": False}, "resilience": {"defaults": policy}},
    )
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    wait_until(lambda: http(url)[0] == 200, 20, "the caller to see the backend")
    return caller, app


def test_a_retried_call_shows_one_client_span_per_attempt(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    caller, backend = caller_and_backend(mesh, NO_BREAKER, max_attempts=3, backoff_base="1ms")
    backend.faults(error_rate=1.0, error_status=503)
    trace_id = new_trace_id()
    status, headers, _ = http(
        f"http://127.0.0.1:{caller.outbound}/backend/backend/echo",
        {"traceparent": traceparent(trace_id)},
    )
    assert status == 503 and headers["x-mesh-attempts"] == "3"

    spans = receiver.wait_for_trace(trace_id, 1 + 3 * 4)
    [server] = [s for s in spans if s.service == "client-sidecar" and s.kind == "SERVER"]
    assert server.parent_id == "00f067aa0ba902b7"  # the caller's span
    assert server.error and server.attributes["http.response.status_code"] == 503
    attempts = sorted(
        (s for s in spans if s.parent_id == server.span_id),
        key=lambda s: s.attributes["meshgate.attempt"],
    )
    assert [(s.kind, s.attributes["meshgate.attempt"]) for s in attempts] == [
        ("CLIENT", 1),
        ("CLIENT", 2),
        ("CLIENT", 3),
    ]
    assert [s.attributes.get("http.request.resend_count") for s in attempts] == [None, 1, 2]
    for s in attempts:
        assert s.error and s.attributes["http.response.status_code"] == 503
        assert s.attributes["meshgate.instance"] == "backend-0"
    retries = events(server, EVENT_RETRY)
    assert [r["meshgate.attempt"] for r in retries] == [1, 2]
    assert {r["meshgate.retry.reason"] for r in retries} == {"503"}
    # Each attempt reached the backend's sidecar as its own child SERVER span.
    callee = [s for s in spans if s.service == "backend-sidecar" and s.kind == "SERVER"]
    assert sorted(s.parent_id for s in callee) == sorted(s.span_id for s in attempts)


def test_an_edge_routes_retries_show_one_client_span_per_attempt(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    app = mesh.app("users", "users-1")
    mesh.sidecar(app, "users-1")
    retries = {"max_attempts": 3, "backoff_base": "1ms", "backoff_max": "2ms"}
    route = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
    edge = mesh.edge([{**route, "retries": retries}], extra=SAMPLE_ALL_FAST_LOG)
    url = f"{edge.url}/api/users/echo"
    wait_until(lambda: http(url)[0] == 200, 20, "the edge to see users")
    app.faults(error_rate=1.0, error_status=503)

    trace_id = new_trace_id()
    status, headers, _ = http(url, {"traceparent": traceparent(trace_id)})
    assert status == 503 and headers["x-mesh-attempts"] == "3"

    # The edge's SERVER span (a child of the caller's) and its three CLIENT spans; the
    # sidecar's and the app's spans come in their own time, in any order.
    receiver.wait_for(lambda: len(first_hop(receiver, trace_id)) == 4, "the edge's four spans")
    spans = first_hop(receiver, trace_id)
    [server] = [s for s in spans if s.parent_id == "00f067aa0ba902b7"]
    attempts = sorted(
        (s for s in spans if s.parent_id == server.span_id),
        key=lambda s: s.attributes["meshgate.attempt"],
    )
    assert [(s.kind, s.attributes["meshgate.attempt"]) for s in attempts] == [
        ("CLIENT", 1),
        ("CLIENT", 2),
        ("CLIENT", 3),
    ]
    retried = events(server, EVENT_RETRY)
    assert [r["meshgate.attempt"] for r in retried] == [1, 2]
    assert {r["meshgate.retry.reason"] for r in retried} == {"503"}


def test_a_hedged_call_shows_the_hedge_and_the_losers_span_ends_hedge_lost(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    slow = mesh.app("backend", "backend-0")
    mesh.sidecar(slow, "backend-0")
    fast = mesh.app("backend", "backend-1")
    mesh.sidecar(fast, "backend-1")
    caller_app = mesh.app("client", "client-1")
    retries = {"per_try_timeout": "200ms", "hedge_on_per_try_timeout": True}
    caller = mesh.sidecar(
        caller_app,
        "client-1",
        extra={
            "registration": {"enabled": False},
            "resilience": {"defaults": {"retries": retries}},
        },
    )
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    wait_until(lambda: _both_seen(caller.admin), 20, "the caller to see both backends")
    slow.faults(latency_ms=1500)
    # Round robin: one of two calls goes to the slow instance first and is hedged.
    for _ in range(2):
        trace_id = new_trace_id()
        status, headers, body = http(url, {"traceparent": traceparent(trace_id)})
        assert status == 200 and json.loads(body)["instance"] == "backend-1"
        if headers["x-mesh-attempts"] == "2":
            break
    else:
        pytest.fail("no call was hedged")

    receiver.wait_for(lambda: len(first_hop(receiver, trace_id)) == 3, "the caller's spans")
    spans = first_hop(receiver, trace_id)
    [server] = [s for s in spans if s.parent_id == "00f067aa0ba902b7"]
    first, hedge = sorted(
        (s for s in spans if s.parent_id == server.span_id),
        key=lambda s: s.attributes["meshgate.attempt"],
    )
    assert (first.kind, first.attributes["meshgate.instance"]) == ("CLIENT", "backend-0")
    assert first.error and first.attributes["error.type"] == "hedge_lost"
    assert (hedge.kind, hedge.attributes["meshgate.instance"]) == ("CLIENT", "backend-1")
    assert not hedge.error and hedge.attributes["http.response.status_code"] == 200
    assert [h["meshgate.attempt"] for h in events(server, EVENT_HEDGE)] == [2]
    assert events(server, EVENT_RETRY) == []


def _both_seen(admin: int) -> bool:
    """Whether the sidecar at ``admin`` sees two healthy backend instances."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/routes", timeout=5) as resp:
        data = json.loads(resp.read())
    return len([i for i in data["upstreams"].get("backend", []) if i["healthy"]]) == 2


def test_breaker_opening_and_refusing_are_span_events(mesh: Mesh, receiver: OtlpReceiver) -> None:
    caller, backend = caller_and_backend(mesh, FAST_BREAKER)
    backend.faults(error_rate=1.0, error_status=500)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    # The catalog check above made one successful call: 4 more failures fill min_calls.
    traces = [new_trace_id() for _ in range(6)]
    replies = [http(url, {"traceparent": traceparent(t)}) for t in traces]
    statuses = [status for status, _, _ in replies]
    opened_at = statuses.index(503)
    assert set(statuses[:opened_at]) == {500} and opened_at >= 4, statuses
    problem = json.loads(replies[opened_at][2])
    assert problem["breaker"] == "open"
    assert problem["trace_id"] == traces[opened_at]

    refused = receiver.wait_for_trace(traces[opened_at], 1)
    receiver.wait_for(
        lambda: any(events(s, EVENT_BREAKER_OPENED) for s in receiver.trace(traces[opened_at - 1])),
        "the breaker-opened event",
    )
    [trip_server] = [
        s
        for s in receiver.trace(traces[opened_at - 1])
        if s.service == "client-sidecar" and s.kind == "SERVER"
    ]
    opened = events(trip_server, EVENT_BREAKER_OPENED)
    assert {"meshgate.service": "backend", "meshgate.breaker.reason": "failure_rate"} in opened
    [refusal] = [s for s in refused if s.kind == "SERVER"]
    assert events(refusal, EVENT_BREAKER_REJECTED) == [
        {"meshgate.service": "backend", "meshgate.breaker.state": "open"}
    ]
    assert refusal.error and not [s for s in refused if s.kind == "CLIENT"]

    # The breaker's state is a metric too.
    scraped = metrics(caller.admin)
    states = {
        labels["instance_id"]: value
        for labels, value in scraped["meshgate_breaker_state"]
        if labels["service"] == "backend"
    }
    assert states[""] == 2  # open


def test_a_rate_limit_refusal_is_a_span_event(mesh: Mesh, receiver: OtlpReceiver) -> None:
    redis = RedisServer().start()
    try:
        app = mesh.app("users", "users-1")
        mesh.sidecar(app, "users-1")
        edge = mesh.edge(
            [
                {
                    "prefix": "/api/users",
                    "service": "users",
                    "prefix_rewrite": "/users",
                    "rate_limits": ["tiny"],
                }
            ],
            extra={
                **SAMPLE_ALL_FAST_LOG,
                "rate_limits": {
                    "redis": {"url": redis.url},
                    "policies": {"tiny": {"count_by": "route", "limit": "1/m burst 1"}},
                },
            },
        )
        replies = [http(f"{edge.url}/api/users/echo") for _ in range(3)]
        assert replies[0][0] == 200
        status, headers, body = replies[-1]
        assert status == 429, replies
        trace_id = parse_traceresponse(headers["traceresponse"])[0]
        assert json.loads(body)["trace_id"] == trace_id
        receiver.wait_for(
            lambda: any(
                events(s, EVENT_RATE_LIMITED) for s in receiver.trace(trace_id) if not s.parent_id
            ),
            "the rate-limit event",
        )
        [server] = [s for s in receiver.trace(trace_id) if not s.parent_id]
        [event] = events(server, EVENT_RATE_LIMITED)
        assert event["meshgate.ratelimit.policy"] == "tiny"
        assert server.attributes["http.response.status_code"] == 429
        # The access log says so too.
        log = mesh.workdir / f"edge-{edge.port}.log"
        wait_until(
            lambda: any(
                line["request_id"] == headers["x-request-id"] for line in access_lines(log)
            ),
            5,
            "the access log line",
        )
        [line] = [x for x in access_lines(log) if x["request_id"] == headers["x-request-id"]]
        assert (line["status"], line["rate_limit"], line["trace_id"]) == (429, "refused", trace_id)
    finally:
        redis.stop()


# --- metrics ----------------------------------------------------------------------------


def test_metrics_count_every_request_by_status_class(mesh: Mesh, receiver: OtlpReceiver) -> None:
    m = orders_mesh(mesh)
    edge, orders_sidecar = m.edge, m.orders_sidecar
    before_edge = requests_by_class(metrics(edge.admin), "edge")
    before_out = requests_by_class(
        metrics(orders_sidecar.admin), "sidecar", route="outbound:inventory"
    )
    for _ in range(5):
        assert http(f"{edge.url}/api/orders/7")[0] == 200
    for _ in range(3):
        assert http(f"{edge.url}/api/nothing-here")[0] == 404
    m.inventory.faults(error_rate=1.0, error_status=500)
    for _ in range(2):
        assert http(f"{edge.url}/api/orders/7")[0] == 500

    def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
        return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}

    edge_metrics = metrics(edge.admin)
    assert delta(requests_by_class(edge_metrics, "edge"), before_edge) == {
        "2xx": 5,
        "4xx": 3,
        "5xx": 2,
    }
    sidecar_metrics = metrics(orders_sidecar.admin)
    outbound = requests_by_class(sidecar_metrics, "sidecar", route="outbound:inventory")
    assert delta(outbound, before_out) == {"2xx": 5, "5xx": 2}

    for scraped, role in ((edge_metrics, "edge"), (sidecar_metrics, "sidecar")):
        ages = [
            v for labels, v in scraped["meshgate_catalog_age_seconds"] if labels["role"] == role
        ]
        assert ages == [0.0]  # in sync with Consul
        assert any(labels["role"] == role for labels, _ in scraped["meshgate_instances"])
        upstream = [
            labels
            for labels, _ in scraped["meshgate_upstream_duration_seconds_count"]
            if labels["role"] == role
        ]
        assert upstream, f"no upstream histogram for {role}"
        buckets = {
            labels["le"] for labels, _ in scraped["meshgate_request_duration_seconds_bucket"]
        }
        assert "0.0001" in buckets or "0.00025" in buckets  # sub-millisecond
    breaker = {
        (labels["service"], labels["instance_id"]): v
        for labels, v in sidecar_metrics["meshgate_breaker_state"]
    }
    assert breaker[("inventory", "")] == 0  # closed
    assert ("inventory", "inventory-1") in breaker
    assert any(
        labels["service"] == "inventory" for labels, _ in sidecar_metrics["meshgate_retries_total"]
    )


def exemplars(admin: int, name: str) -> list[dict[str, str]]:
    """The exemplars on ``name``'s samples in ``/metrics`` as Prometheus scrapes it
    (OpenMetrics, asked for by ``Accept``), read by prometheus-client's own parser:
    each one's labels, with its sample's ``le`` added."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin}/metrics",
        headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    found = []
    for family in openmetrics_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if sample.name == name and sample.exemplar is not None:
                found.append({**sample.exemplar.labels, "le": sample.labels["le"]})
    return found


def test_exemplars_link_latency_buckets_to_sampled_traces(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    m = orders_mesh(mesh)  # sampling at its default (10 %): the caller decides below
    edge, orders_sidecar = m.edge, m.orders_sidecar
    unsampled = new_trace_id()
    for n in range(3):
        headers = {"traceparent": traceparent(unsampled, sampled=False)}
        assert http(f"{edge.url}/api/orders/{n}", headers)[0] == 200
    sampled = new_trace_id()
    status, headers, _ = http(f"{edge.url}/api/orders/7", {"traceparent": traceparent(sampled)})
    assert status == 200
    _, edge_span_id, _ = parse_traceresponse(headers["traceresponse"])
    spans = receiver.wait_for_trace(sampled, 11)
    client_spans = {(s.service, s.span_id) for s in spans if s.kind == "CLIENT"}

    # The edge's request duration: the sampled request's SERVER span on its bucket, and
    # no unsampled request's trace anywhere (Jaeger would not have it).
    request = exemplars(edge.admin, "meshgate_request_duration_seconds_bucket")
    assert {"trace_id": sampled, "span_id": edge_span_id} in [
        {k: v for k, v in e.items() if k != "le"} for e in request
    ], request
    # Each attempt's duration names its CLIENT span, at the edge and at the orders
    # sidecar (its outbound call to inventory).
    for admin, service in ((edge.admin, "meshgate-edge"), (orders_sidecar.admin, "orders-sidecar")):
        upstream = exemplars(admin, "meshgate_upstream_duration_seconds_bucket")
        ours = [e for e in upstream if e["trace_id"] == sampled]
        assert ours, upstream
        assert all((service, e["span_id"]) in client_spans for e in ours), (ours, client_spans)
    everything = [
        e["trace_id"]
        for admin in (edge.admin, orders_sidecar.admin)
        for name in (
            "meshgate_request_duration_seconds_bucket",
            "meshgate_upstream_duration_seconds_bucket",
        )
        for e in exemplars(admin, name)
    ]
    assert unsampled not in everything

    # The classic text format (what a client asking for nothing gets) carries none.
    status, response_headers, body = http(f"http://127.0.0.1:{edge.admin}/metrics")
    assert response_headers["content-type"].startswith("text/plain")
    assert sampled.encode() not in body


def test_a_selective_access_log_keeps_the_failures_and_a_sample_of_none_else(
    mesh: Mesh, tmp_path: Path
) -> None:
    app = mesh.app("users", "users-1")
    mesh.sidecar(app, "users-1")
    log = tmp_path / "access.jsonl"
    selective = {"path": str(log), "flush_interval": "100ms", "sample": 0.0}
    users = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
    read_only = {**users, "prefix": "/api/read", "methods": ["GET"]}
    edge = mesh.edge(
        [users, read_only],
        extra={"telemetry": {"access_log": {**selective, "keep_status_from": 400}}},
    )
    sent: dict[str, int] = {}
    for method, path in (
        ("GET", "/api/users/echo"),
        ("GET", "/nowhere"),
        ("GET", "/api/read/echo"),
        ("DELETE", "/api/read/echo"),
    ):
        status, headers, _ = http(f"{edge.url}{path}", method=method)
        sent[headers["x-request-id"]] = status
    failed = {rid for rid, status in sent.items() if status >= 400}
    assert sorted(sent.values()) == [200, 200, 404, 405]
    wait_until(
        lambda: log.exists() and len(access_lines(log)) >= len(failed), 5, "the access log lines"
    )
    time.sleep(0.3)  # a flush more: nothing else may come
    lines = access_lines(log)
    assert {line["request_id"] for line in lines} == failed
    assert sorted(line["status"] for line in lines) == [404, 405]


def test_two_edge_workers_add_up(mesh: Mesh, receiver: OtlpReceiver) -> None:
    app = mesh.app("users", "users-1")
    mesh.sidecar(app, "users-1")
    edge = mesh.edge(
        [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}],
        extra={"workers": 2},
    )
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    wait_until(lambda: http(f"{edge.url}/api/users/echo")[0] == 200, 20, "users to answer")

    def timed(scraped: dict[str, list[tuple[dict[str, str], float]]]) -> float:
        return sum(
            v
            for labels, v in scraped.get("meshgate_request_duration_seconds_count", [])
            if labels["role"] == "edge"
        )

    scraped = metrics(edge.admin)
    before = requests_by_class(scraped, "edge").get("2xx", 0)
    timed_before = timed(scraped)
    # urllib opens a connection per request: SO_REUSEPORT spreads them over both workers.
    for _ in range(40):
        assert http(f"{edge.url}/api/users/echo")[0] == 200
    # Whichever worker answers the scrape, it reports both workers' counts.
    for _ in range(6):
        scraped = metrics(edge.admin)
        assert requests_by_class(scraped, "edge").get("2xx", 0) - before == 40
        assert timed(scraped) - timed_before == 40  # the duration histogram's, too
        ages = [
            v for labels, v in scraped["meshgate_catalog_age_seconds"] if labels["role"] == "edge"
        ]
        assert ages == [0.0]


# --- secrets ----------------------------------------------------------------------------


def test_no_token_or_api_key_in_any_span_or_log_line(mesh: Mesh, receiver: OtlpReceiver) -> None:
    edge = orders_mesh(mesh, edge_extra=SAMPLE_ALL_FAST_LOG).edge
    token = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.U2lnbmF0dXJlU2VjcmV0"
    api_key = "mgk_live_Zq8sVt3XkP0wYb7RnL2cHd5F"
    query_key = "qk_9f8e7d6c5b4a3f2e1d0c"
    sent = []
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"X-Api-Key": api_key},
        {"Authorization": f"ApiKey {api_key}"},
        {},
    ):
        status, reply, _ = http(f"{edge.url}/api/orders/7?api_key={query_key}", headers)
        sent.append((status, parse_traceresponse(reply["traceresponse"])[0]))
    for _, trace_id in sent:

        def exported(t: str = trace_id) -> bool:
            return len(receiver.trace(t)) >= 1

        receiver.wait_for(exported, f"spans of {trace_id}")
    time.sleep(1.0)  # the later spans of each trace, and the access logs
    payloads = b"".join(receiver.bodies)
    logs = b"".join(p.read_bytes() for p in mesh.workdir.glob("*.log"))
    assert logs.count(b'{"ts"') >= len(sent)  # access logs were written
    for secret in (token, api_key, query_key, token.split(".")[1]):
        assert secret.encode() not in payloads, f"{secret} exported in a span"
        assert secret.encode() not in logs, f"{secret} written to a log"


# --- meshgate demo ------------------------------------------------------------------------


def test_demo_exports_every_process_spans_to_the_otlp_endpoint(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    port = free_port()
    out = tmp_path / "demo.out"
    with out.open("w") as log:
        proc = subprocess.Popen(
            meshgate_argv(
                "demo",
                "--edge-port",
                str(port),
                "--workdir",
                str(tmp_path / "demo"),
                "--otlp-endpoint",
                receiver.url,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "Press Ctrl-C" in out.read_text(), 90, "the demo mesh")
        assert f"Traces go to {receiver.url}" in out.read_text()
        login = urllib.parse.urlencode(
            {"grant_type": "password", "username": "alice", "password": "wonderland"}
        ).encode()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/auth/token", data=login, timeout=5
        ) as resp:
            token = json.loads(resp.read())["access_token"]
        url = f"http://127.0.0.1:{port}/api/orders/7"
        auth = {"Authorization": f"Bearer {token}"}
        # The demo is ready once users and orders answer; inventory may be a moment behind.
        # The request traced below is the first one that got through every hop: a
        # second request after the wait could still meet a hop that is not ready
        # (on a loaded machine a health check can flip once more).
        answered: list[dict[str, str]] = []

        def orders_answer() -> bool:
            status, headers, _ = http(url, auth)
            if status == 200:
                answered.append(headers)
            return status == 200

        wait_until(orders_answer, 30, "orders to find inventory")
        trace_id, _, sampled = parse_traceresponse(answered[0]["traceresponse"])
        assert sampled  # the demo samples every request
        expected = {"meshgate-edge", "orders-sidecar", "orders", "inventory-sidecar", "inventory"}

        # Each process exports on its own schedule, a span at a time as each ends (one
        # process's SERVER span may come a batch before its CLIENT span): wait for
        # spans from every one of them and for the count, not for a count that some
        # processes could reach alone.
        def complete() -> bool:
            spans = receiver.trace(trace_id)
            return expected <= {s.service for s in spans} and len(spans) >= 11

        receiver.wait_for(complete, f"11 spans of {trace_id} from {sorted(expected)}", 20)
        assert token.encode() not in b"".join(receiver.bodies)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
