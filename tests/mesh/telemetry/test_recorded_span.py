"""meshgate's recorded spans: the OpenTelemetry Span API, and SDK ReadableSpans when they end."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Tracer
from opentelemetry.trace import SpanKind, Status, StatusCode

from mesh.snapshot import Instance
from mesh.telemetry.recorded_span import RecordedSpan
from mesh.telemetry.tracing import end_client
from tests.mesh.telemetry.support import Recorder, make_exchange

INSTANCE = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)


def _server(r: Recorder) -> RecordedSpan:
    trace = r.tracing.start_request(make_exchange())
    assert trace.span is not None
    return trace.span


def test_a_request_s_spans_never_go_through_the_sdk_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an SDK span was started")

    monkeypatch.setattr(Tracer, "start_span", refuse)
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    end_client(trace.client_attempt(ex, INSTANCE, 1), 200, None)
    trace.end_server(ex, 200, None, "/api")
    assert [type(s) for s in r.spans] == [ReadableSpan, ReadableSpan]
    client, server = r.spans
    assert server.resource is r.tracing.provider.resource
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name == "meshgate"
    assert client.instrumentation_scope is server.instrumentation_scope


def test_an_sdk_span_started_from_the_request_s_context_is_a_child_of_the_server_span() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    other = trace.tracer.start_span("other", context=trace.context)
    other.end()
    trace.end_server(ex, 200, None, None)
    child, server = r.named("other"), r.named("GET")
    assert child.parent is not None and child.parent.span_id == server.context.span_id
    assert child.context.trace_id == server.context.trace_id


def test_calls_after_end_change_nothing_and_a_second_end_exports_nothing() -> None:
    r = Recorder(sampler_ratio=1.0)
    span = _server(r)
    span.end()
    assert not span.is_recording()
    span.set_attribute("late", 1)
    span.add_event("late")
    span.set_status(Status(StatusCode.ERROR))
    span.update_name("late")
    span.end()
    [exported] = r.spans
    assert "late" not in dict(exported.attributes or {})
    assert exported.events == () and exported.name == "GET"
    assert exported.status.status_code is StatusCode.UNSET


def test_status_ok_is_final_and_unset_is_ignored_as_in_the_sdk() -> None:
    r = Recorder(sampler_ratio=1.0)
    span = _server(r)
    span.set_status(StatusCode.ERROR, "broken")
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "broken")
    span.set_status(Status(StatusCode.UNSET))
    assert span.status.status_code is StatusCode.ERROR
    span.set_status(Status(StatusCode.OK))
    span.set_status(Status(StatusCode.ERROR))
    span.fail()
    assert span.status.status_code is StatusCode.OK


def test_attributes_from_elsewhere_are_cleaned_as_the_sdk_cleans_them() -> None:
    given = {"list": [1, 2], "object": object(), "": "no key", "ok": "yes", "n": 3}
    r = Recorder(sampler_ratio=1.0)
    span = _server(r)
    span.set_attributes(given)  # type: ignore[arg-type]
    span.end()
    twin = r.tracing.tracer.start_span("twin")
    twin.set_attributes(given)  # type: ignore[arg-type]
    twin.end()
    ours = dict(r.named("GET").attributes or {})
    sdk = dict(r.named("twin").attributes or {})
    assert {k: ours[k] for k in sdk} == sdk
    assert ours["list"] == (1, 2)
    assert "" not in ours and set(ours) >= set(sdk)


def test_events_and_exceptions_are_recorded_with_the_sdk_s_attributes() -> None:
    r = Recorder(sampler_ratio=1.0)
    span = _server(r)
    span.add_event("retry", {"n": 2}, timestamp=1234)
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        span.record_exception(exc, escaped=True)
    span.end()
    retry, exception = r.spans[0].events
    assert (retry.name, dict(retry.attributes or {}), retry.timestamp) == ("retry", {"n": 2}, 1234)
    attributes = dict(exception.attributes or {})
    assert exception.name == "exception"
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "bad value"
    assert attributes["exception.escaped"] == "True"
    assert "raise ValueError" in str(attributes["exception.stacktrace"])


def test_a_child_is_in_the_same_trace_with_the_parent_s_flags() -> None:
    r = Recorder(sampler_ratio=1.0)
    server = _server(r)
    child = server.child("redis", SpanKind.CLIENT, 0xABC, {})
    assert child.parent == server.get_span_context()
    assert child.get_span_context().trace_id == server.trace_id
    assert child.get_span_context().span_id == 0xABC
    assert child.get_span_context().trace_flags == server.get_span_context().trace_flags == 0x03
    child.end()
    assert r.named("redis").kind is SpanKind.CLIENT


def test_event_count_limit_from_the_environment_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "2")
    r = Recorder(sampler_ratio=1.0)
    span = _server(r)
    for n in range(4):
        span.add_event(f"e{n}")
    span.end()
    [exported] = r.spans
    assert [e.name for e in exported.events] == ["e2", "e3"]  # the newest, as the SDK keeps
    assert exported.dropped_events == 2
