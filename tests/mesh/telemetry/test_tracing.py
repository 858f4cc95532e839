"""Tracing per request: sampled requests get real spans, unsampled ones only context.

The Tracing under test records into memory (tests.mesh.telemetry.support);
exchanges are built as the ingress builds them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable

import pytest
from aiohttp import web
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanKind, StatusCode

from mesh.chain import Filter, Handler, build_chain, fuse_adjacent
from mesh.exchange import Exchange
from mesh.filters.tracing import TracingFilter
from mesh.snapshot import Instance
from mesh.telemetry import root_contexts
from mesh.telemetry.config import TracingConfig
from mesh.telemetry.propagation import ZERO_SPAN_ID as ZERO_ID
from mesh.telemetry.propagation import parse_traceparent
from mesh.telemetry.root_contexts import BATCH
from mesh.telemetry.tracing import (
    EVENT_RETRY,
    Tracing,
    add_event,
    child_span,
    end_client,
    side_call,
)
from mesh.telemetry.tracing_settings import resolve_tracing
from tests.mesh.telemetry.support import Recorder, headers_sent, make_exchange

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
INSTANCE = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)


def ok(status: int = 200) -> web.Response:
    return web.Response(status=status)


def test_sampled_root_gets_a_server_span_and_client_spans_are_its_children() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    assert trace.sampled and trace.span is not None
    span = trace.client_attempt(ex, INSTANCE, 1)
    sent = parse_traceparent(headers_sent(ex)["traceparent"])
    assert span is not None and sent is not None
    assert sent.trace_id == trace.trace_id and sent.sampled
    assert sent.span_id == span.get_span_context().span_id  # the callee's parent: this attempt
    end_client(span, 200, None)
    trace.end_server(ex, 200, None, "/api/orders")

    server, client = r.named("GET /api/orders"), r.named("GET")
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert client.kind is SpanKind.CLIENT and client.parent is not None
    assert client.parent.span_id == server.context.span_id
    assert server.context.trace_id == client.context.trace_id == trace.trace_id
    assert trace.traceresponse() == f"00-{trace.trace_id_hex}-{server.context.span_id:016x}-03"
    a = dict(server.attributes or {})
    assert a["http.request.method"] == "GET"
    assert a["url.path"] == "/api/orders/7"
    assert a["http.route"] == "/api/orders"
    assert a["http.response.status_code"] == 200
    assert (a["server.address"], a["server.port"]) == ("gw.example", 8080)
    assert a["url.scheme"] == "http"
    assert set(a) == {
        "http.request.method",
        "url.path",
        "url.scheme",
        "http.route",
        "http.response.status_code",
        "server.address",
        "server.port",
        "network.peer.address",
    }
    assert server.status.status_code is StatusCode.UNSET
    c = dict(client.attributes or {})
    assert (c["server.address"], c["server.port"]) == ("10.0.0.5", 15000)
    assert (c["meshgate.instance"], c["meshgate.attempt"]) == ("orders-1", 1)
    assert c["url.full"] == "http://10.0.0.5:15000/api/orders/7"
    assert c["http.response.status_code"] == 200


def test_every_attempt_gets_its_own_context_and_number() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    sent = []
    for n in (1, 2, 3):
        span = trace.client_attempt(ex, INSTANCE, n)
        sent.append(headers_sent(ex)["traceparent"])
        end_client(span, None, "connect_error")
    trace.end_server(ex, 502, None, None)
    assert len(set(sent)) == 3
    clients = [s for s in r.spans if s.kind is SpanKind.CLIENT]
    assert [(s.attributes or {})["meshgate.attempt"] for s in clients] == [1, 2, 3]
    assert [(s.attributes or {}).get("http.request.resend_count") for s in clients] == [
        None,
        1,
        2,
    ]
    assert all(s.status.status_code is StatusCode.ERROR for s in clients)
    server = next(s for s in r.spans if s.kind is SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})["error.type"] == "502"


def test_unsampled_request_creates_no_span_but_carries_the_context() -> None:
    r = Recorder(sampler_ratio=0.0)
    ex = make_exchange({"tracestate": "orphan=1"})
    trace = r.tracing.start_request(ex, traceresponse=True)
    assert not trace.sampled and trace.span is None and trace.context is None
    assert ex.trace is trace and ex.trace_id is not None
    assert "tracestate" not in headers_sent(ex)  # it belonged to no valid parent
    seen = set()
    for n in (1, 2):
        assert trace.client_attempt(ex, INSTANCE, n) is None
        sent = parse_traceparent(headers_sent(ex)["traceparent"])
        assert sent is not None and sent.trace_id == int(ex.trace_id, 16) and not sent.sampled
        assert sent.flags == 0x02  # random trace id, as the SDK would say
        seen.add(sent.span_id)
    assert len(seen) == 2  # a new parent span id per attempt
    trace.end_server(ex, 200, None, None)
    add_event(ex, EVENT_RETRY)  # no span: nothing happens
    with child_span(ex, "redis") as span:
        assert span is None
    assert r.spans == ()
    [(name, value)] = ex.response_headers
    _, trace_id, span_id, flags = value.split("-")
    assert (name, trace_id, flags) == ("traceresponse", ex.trace_id, "02")
    assert int(span_id, 16) not in seen  # this hop's, not an attempt's


def test_unsampled_requests_share_one_trace_object_and_keep_their_own_ids() -> None:
    r = Recorder(sampler_ratio=0.0)
    first, second = make_exchange(), make_exchange()
    assert r.tracing.start_request(first) is r.tracing.start_request(second)
    assert first.trace_id != second.trace_id
    assert first.attempt_header_block != second.attempt_header_block
    before = second.attempt_header_block
    assert first.trace is not None
    first.trace.client_attempt(first, INSTANCE, 2)  # a retry of the first touches its own
    assert second.attempt_header_block == before
    assert first.attempt_header_block.startswith(f"traceparent: 00-{first.trace_id}-")


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_draw_with_an_all_zero_id_is_drawn_again(
    ratio: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # W3C: an all-zero trace or span id is invalid. The context taken first (the
    # draw's last 64 digits) has a trace id with an all-zero half; the request must
    # get the one before it.
    good = "1" * 16 + "2" * 16 + "3" * 32
    bad = "1" * 16 + "2" * 16 + "abc".zfill(16) + ZERO_ID
    draws = iter([int(good * (BATCH - 1) + bad, 16)])  # then random bits
    monkeypatch.setattr(
        root_contexts, "_getrandbits", lambda bits: next(draws, 0) or random.getrandbits(bits)
    )
    r = Recorder(sampler_ratio=ratio)
    ex = make_exchange()
    trace = r.tracing.start_request(ex, traceresponse=True)
    assert ex.trace_id == "3" * 32
    assert ex.response_headers[0][1].split("-")[2] == "1" * 16  # this hop's span id
    trace.client_attempt(ex, INSTANCE, 1)
    sent = parse_traceparent(headers_sent(ex)["traceparent"])
    assert sent is not None and sent.trace_id == int("3" * 32, 16)


def test_a_caller_decides_under_parent_based_sampling() -> None:
    r = Recorder(sampler_ratio=0.0)
    ex = make_exchange(
        {
            "traceparent": f"00-{TRACE}-{PARENT}-01",
            "tracestate": "vendor=abc",
            "baggage": "tenant=acme",
        }
    )
    trace = r.tracing.start_request(ex)
    assert trace.sampled and trace.trace_id_hex == TRACE
    span = trace.client_attempt(ex, INSTANCE, 1)
    assert headers_sent(ex)["tracestate"] == "vendor=abc"
    assert headers_sent(ex)["baggage"] == "tenant=acme"
    assert len(headers_sent(ex).getall("traceparent")) == 1
    end_client(span, 200, None)
    trace.end_server(ex, 200, None, None)
    server = next(s for s in r.spans if s.kind is SpanKind.SERVER)
    assert server.parent is not None and server.parent.span_id == int(PARENT, 16)
    assert server.parent.is_remote

    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange({"traceparent": f"00-{TRACE}-{PARENT}-00", "tracestate": "vendor=abc"})
    trace = r.tracing.start_request(ex)
    assert not trace.sampled and ex.trace_id == TRACE
    trace.client_attempt(ex, INSTANCE, 1)
    sent = parse_traceparent(headers_sent(ex)["traceparent"])
    assert sent is not None and sent.trace_id == int(TRACE, 16) and sent.flags == 0
    assert sent.span_id != int(PARENT, 16)
    assert headers_sent(ex)["tracestate"] == "vendor=abc"  # the caller's, untouched
    assert r.spans == ()


def test_always_on_ignores_an_unsampled_parent() -> None:
    r = Recorder(sampler="always_on")
    ex = make_exchange({"traceparent": f"00-{TRACE}-{PARENT}-00"})
    trace = r.tracing.start_request(ex)
    assert trace.sampled and trace.trace_id_hex == TRACE


def test_ratio_decides_on_the_trace_id_the_spans_carry() -> None:
    r = Recorder(sampler_ratio=0.5)
    for _ in range(200):
        ex = make_exchange()
        trace = r.tracing.start_request(ex)
        assert ex.trace_id is not None
        assert trace.sampled is r.tracing.rule.sampled(int(ex.trace_id, 16), None)
        trace.end_server(ex, 200, None, None)
    exported = {s.context.trace_id for s in r.spans}
    assert 50 <= len(exported) <= 150
    assert all(r.tracing.rule.sampled(t, None) for t in exported)


def test_b3_is_read_only_when_configured() -> None:
    b3 = f"{TRACE}-{PARENT}-1"
    r = Recorder(sampler_ratio=0.0, propagators=["tracecontext", "b3"])
    ex = make_exchange({"b3": b3})
    trace = r.tracing.start_request(ex)
    assert trace.sampled and trace.trace_id_hex == TRACE
    span = trace.client_attempt(ex, INSTANCE, 1)
    assert span is not None
    own = f"{span.get_span_context().span_id:016x}"
    assert headers_sent(ex)["b3"] == f"{TRACE}-{own}-1"
    assert headers_sent(ex)["traceparent"].split("-")[2] == own

    plain = Recorder(sampler_ratio=0.0)
    ex = make_exchange({"b3": b3})
    trace = plain.tracing.start_request(ex)
    assert not trace.sampled and ex.trace_id != TRACE
    assert headers_sent(ex)["b3"] == b3  # not ours to touch


def test_events_and_child_spans_on_sampled_requests() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    ex.trace = trace
    add_event(ex, EVENT_RETRY, {"meshgate.attempt": 1})
    with child_span(ex, "redis check", kind=SpanKind.CLIENT) as span:
        assert span is not None
    with pytest.raises(RuntimeError), child_span(ex, "jwks fetch"):
        raise RuntimeError("boom")
    trace.end_server(ex, 200, None, None)
    server = next(s for s in r.spans if s.kind is SpanKind.SERVER)
    assert [(e.name, dict(e.attributes or {})) for e in server.events] == [
        (EVENT_RETRY, {"meshgate.attempt": 1})
    ]
    redis, jwks = r.named("redis check"), r.named("jwks fetch")
    assert redis.parent is not None and redis.parent.span_id == server.context.span_id
    assert jwks.status.status_code is StatusCode.ERROR
    assert (jwks.attributes or {})["error.type"] == "RuntimeError"


def test_problem_bodies_carry_the_trace_id() -> None:
    r = Recorder(sampler_ratio=0.0)
    ex = make_exchange()
    r.tracing.start_request(ex)
    body = ex.problem(502, "Bad gateway", "no").body
    assert isinstance(body, bytes) and ex.trace_id is not None
    assert f'"trace_id": "{ex.trace_id}"'.encode() in body
    untraced = make_exchange()
    assert b'"trace_id": null' in (untraced.problem(404, "No route", "no").body or b"")


async def test_filter_sets_the_trace_returns_traceresponse_and_ends_the_span() -> None:
    r = Recorder(sampler_ratio=1.0)
    flt = TracingFilter(r.tracing, traceresponse=True, http_route=lambda ex: "/api/orders")
    ex = make_exchange()

    async def handler(seen: Exchange) -> web.StreamResponse:
        assert seen.trace is not None
        return ok(503)

    response = await flt(ex, handler)
    assert response.status == 503
    assert ex.trace is not None
    assert ex.response_headers == [("traceresponse", ex.trace.traceresponse())]
    [server] = r.spans
    assert server.name == "GET /api/orders"
    assert server.status.status_code is StatusCode.ERROR


async def test_filter_records_an_exception_and_skips_untraced_paths() -> None:
    r = Recorder(sampler_ratio=1.0)
    flt = TracingFilter(r.tracing, untraced_paths=["/health"])

    async def boom(_: Exchange) -> web.StreamResponse:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        await flt(make_exchange(), boom)
    [server] = r.spans
    assert (server.attributes or {})["error.type"] == "ValueError"

    health = make_exchange({"traceparent": f"00-{TRACE}-{PARENT}-01"}, path="/health")

    async def fine(seen: Exchange) -> web.StreamResponse:
        assert seen.trace is None
        return ok()

    await flt(health, fine)
    assert len(r.spans) == 1
    assert headers_sent(health)["traceparent"] == f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(("ratio", "path"), [(1.0, "/api"), (0.0, "/api"), (1.0, "/health")])
async def test_fused_with_the_next_filter_it_is_both_in_one_level(ratio: float, path: str) -> None:
    r = Recorder(sampler_ratio=ratio)
    seen: list[str] = []

    class Next:
        def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
            seen.append(f"next filter, traced: {ex.trace is not None}")
            ex.route = "orders"
            return next_handler(ex)

    async def handler(ex: Exchange) -> web.StreamResponse:
        seen.append("handler")
        return ok(201)

    flt = TracingFilter(r.tracing, traceresponse=True, untraced_paths=["/health"])
    chain = fuse_adjacent([flt, Next(), Next()])
    assert len(chain) == 2 and isinstance(chain[0], TracingFilter)
    assert chain[0].fuse_next(Next()) is None  # fused once only
    ex = make_exchange(path=path)
    response = await build_chain(chain, handler)(ex)
    traced = path != "/health"
    assert response.status == 201
    assert seen == [f"next filter, traced: {traced}"] * 2 + ["handler"]
    assert (ex.trace is not None) is traced
    assert [name for name, _ in ex.response_headers] == (["traceresponse"] if traced else [])
    assert [s.name for s in r.spans] == (["GET orders"] if traced and ratio else [])


def test_it_leaves_a_filter_that_fuses_with_its_own_next_one_alone() -> None:
    class Fusing:
        def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
            return next_handler(ex)

        def fuse_next(self, following: Filter) -> Filter | None:
            return None

    flt = TracingFilter(Recorder().tracing)
    assert flt.fuse_next(Fusing()) is None


def test_without_an_endpoint_nothing_is_exported_and_shutdown_is_idempotent() -> None:
    settings = resolve_tracing(TracingConfig(), {}, "meshgate-edge")
    tracing = Tracing(settings)
    assert not tracing.exporting
    assert "nowhere" in tracing.describe()
    tracing.shutdown()
    tracing.shutdown()


def test_with_an_endpoint_spans_go_to_a_batch_processor() -> None:
    settings = resolve_tracing(
        TracingConfig(otlp_endpoint="http://127.0.0.1:9/"), {}, "meshgate-edge"
    )
    tracing = Tracing(settings)
    assert tracing.exporting
    assert "http://127.0.0.1:9/v1/traces" in tracing.describe()
    assert tracing.provider.resource.attributes["service.name"] == "meshgate-edge"
    tracing.shutdown(timeout_s=0.1)


def test_traceparent_is_ignored_when_only_b3_is_configured() -> None:
    r = Recorder(sampler_ratio=0.0, propagators=["b3"])
    ex = make_exchange({"traceparent": f"00-{TRACE}-{PARENT}-01"})
    trace = r.tracing.start_request(ex)
    assert not trace.sampled and trace.trace_id_hex != TRACE
    trace.client_attempt(ex, INSTANCE, 1)
    assert headers_sent(ex)["b3"].startswith(f"{trace.trace_id_hex}-")


def test_a_sampled_callers_tracestate_reaches_the_spans_and_the_next_hop() -> None:
    r = Recorder()
    ex = make_exchange({"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "k1=v1,k2=v2"})
    trace = r.tracing.start_request(ex)
    span = trace.client_attempt(ex, INSTANCE, 1)
    assert span is not None
    assert dict(span.get_span_context().trace_state) == {"k1": "v1", "k2": "v2"}
    assert headers_sent(ex).getall("tracestate") == ["k1=v1,k2=v2"]
    end_client(span, 200, None)
    trace.end_server(ex, 200, None, None)
    server = next(s for s in r.spans if s.kind is SpanKind.SERVER)
    assert dict(server.context.trace_state) == {"k1": "v1", "k2": "v2"}


def _one_sampled_request(r: Recorder) -> None:
    ex = make_exchange()
    ex.trace = r.tracing.start_request(ex)
    end_client(ex.trace.client_attempt(ex, INSTANCE, 2), 503, None)
    ex.trace.end_server(ex, 503, None, "/api/orders")


def test_own_attributes_are_the_sdk_s_whichever_way_they_are_set() -> None:
    r = Recorder(sampler_ratio=1.0)
    _one_sampled_request(r)
    for span in r.spans:  # set straight into the span's dict (no limit applies)
        assert span.dropped_attributes == 0
        attributes = dict(span.attributes or {})
        twin = Recorder(sampler_ratio=1.0).tracing.tracer.start_span("twin")
        twin.set_attributes(attributes)  # the public way: the SDK cleans every value
        assert dict(twin.attributes) == attributes  # type: ignore[attr-defined]
        assert [type(v) for v in twin.attributes.values()] == [  # type: ignore[attr-defined]
            type(v) for v in attributes.values()
        ]
    client = r.named("GET")
    assert dict(client.attributes or {})["error.type"] == "503"
    assert client.status.status_code is StatusCode.ERROR


def test_own_attributes_skip_the_sdk_s_cleaning_when_no_limit_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = Recorder(sampler_ratio=1.0)  # (its resource's attributes are cleaned: before counting)
    cleaned: list[object] = []
    clean = BoundedAttributes._set_items

    def counting(self: BoundedAttributes, attributes: dict[str, object]) -> None:
        cleaned.append(attributes)
        clean(self, attributes)  # type: ignore[arg-type]

    monkeypatch.setattr(BoundedAttributes, "_set_items", counting)
    _one_sampled_request(r)
    assert len(r.spans) == 2 and cleaned == []


def test_attribute_limits_from_the_environment_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "6")
    r = Recorder(sampler_ratio=1.0)
    _one_sampled_request(r)
    server = dict(r.named("GET /api/orders").attributes or {})
    assert server["url.path"] == "/api/o"
    assert server["http.route"] == "/api/o"

    monkeypatch.delenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    r = Recorder(sampler_ratio=1.0)
    _one_sampled_request(r)
    for span in r.spans:
        assert len(span.attributes or {}) == 3 and span.dropped_attributes > 0


# --- a call besides the upstream attempts (side_call) ----------------------------------


def test_a_side_call_of_a_sampled_request_is_a_client_span_under_the_server_span() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    span, headers = side_call(ex, "ext_authz", {"server.address": "10.0.0.9"})
    assert span is not None
    [(name, value)] = headers
    sent = parse_traceparent(value)
    assert name == "traceparent" and sent is not None and sent.sampled
    assert (sent.trace_id, sent.span_id) == (trace.trace_id, span.get_span_context().span_id)
    end_client(span, 403, None)
    trace.end_server(ex, 403, None, None)
    server, check = r.named("GET"), r.named("ext_authz")
    assert check.kind is SpanKind.CLIENT and check.parent is not None
    assert check.parent.span_id == server.context.span_id
    assert dict(check.attributes or {}) == {
        "server.address": "10.0.0.9",
        "http.response.status_code": 403,
    }
    # The request's own first attempt is untouched by it.
    assert "traceparent" not in ex.upstream_headers


def test_a_side_call_of_an_unsampled_request_carries_a_fresh_span_id_unsampled() -> None:
    r = Recorder(sampler_ratio=0.0)
    ex = make_exchange()
    r.tracing.start_request(ex)
    first = ex.attempt_header_block
    span, [(name, value)] = side_call(ex, "ext_authz", {})
    sent = parse_traceparent(value)
    attempt = parse_traceparent(first.split(": ", 1)[1])
    assert span is None and name == "traceparent"
    assert sent is not None and attempt is not None
    assert sent.trace_id == attempt.trace_id == int(ex.trace_id or "0", 16)
    assert not sent.sampled and sent.flags == attempt.flags
    assert sent.span_id != attempt.span_id
    assert ex.attempt_header_block == first  # the request's first attempt keeps its own
    assert r.spans == ()


def test_a_side_call_with_b3_writes_every_configured_format() -> None:
    r = Recorder(sampler_ratio=1.0, propagators=["tracecontext", "b3"])
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    span, headers = side_call(ex, "ext_authz", {})
    assert span is not None
    own = f"{span.get_span_context().span_id:016x}"
    sent = dict(headers)
    assert sent["b3"] == f"{trace.trace_id_hex}-{own}-1"
    assert sent["traceparent"].split("-")[2] == own

    unsampled = Recorder(sampler_ratio=0.0, propagators=["tracecontext", "b3"])
    ex = make_exchange()
    trace = unsampled.tracing.start_request(ex)
    span, headers = side_call(ex, "ext_authz", {})
    sent = dict(headers)
    assert span is None and sent["b3"].startswith(f"{trace.trace_id_hex}-")
    assert sent["b3"].endswith("-0") and sent["traceparent"].endswith("-02")


def test_a_side_call_of_an_untraced_request_carries_nothing() -> None:
    assert side_call(make_exchange(), "ext_authz", {}) == (None, [])
