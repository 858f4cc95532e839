"""meshgate's recorded spans: the OpenTelemetry Span API, and SDK ReadableSpans when they end."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Tracer
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from mesh.snapshot import Instance
from mesh.telemetry import recorded_span
from mesh.telemetry.config import TracingConfig
from mesh.telemetry.otlp_encoding import encode_span, encode_span_public
from mesh.telemetry.recorded_span import EMPTY_TRACE_STATE, RecordedSpan
from mesh.telemetry.tracing import Tracing, end_client
from mesh.telemetry.tracing_settings import resolve_tracing
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
    # The recorded spans themselves, ended: SDK ReadableSpans, not SDK Spans.
    assert [type(s) for s in r.spans] == [RecordedSpan, RecordedSpan]
    assert all(isinstance(s, ReadableSpan) and not s.is_recording() for s in r.spans)
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


def test_a_span_context_is_the_one_the_api_s_constructor_makes() -> None:
    r = Recorder(sampler_ratio=1.0)
    server = _server(r)
    made = server.get_span_context()
    expected = SpanContext(
        server.trace_id,
        server.span_id,
        is_remote=False,
        trace_flags=TraceFlags(server.flags),
        trace_state=server.trace_state,
    )
    assert type(made) is SpanContext
    assert tuple(made) == tuple(expected)
    assert made.is_valid
    invalid = server.child("x", SpanKind.INTERNAL, 0, {}).get_span_context()
    assert not invalid.is_valid  # span id 0, as SpanContext(...) would say


def test_the_ended_span_has_every_field_the_keyword_constructor_gives() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    span = trace.client_attempt(ex, INSTANCE, 1)
    end_client(span, 503, None)
    trace.end_server(ex, 200, None, "/api")
    client, server = r.spans
    assert span is not None
    assert client.name == "GET" and client.kind is SpanKind.CLIENT
    assert client.context == span.get_span_context()
    assert client.parent == server.context
    assert client.resource is r.tracing.provider.resource
    assert client.status.status_code is StatusCode.ERROR
    assert client.start_time == span.start_time and client.end_time == span.end_time
    assert client.attributes["error.type"] == "503"
    assert client.instrumentation_scope is r.tracing.sink.scope
    assert client.events == () and client.links == ()


class _Exporter(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _tracing_through(processor: BatchSpanProcessor, ratio: float = 1.0) -> Tracing:
    settings = resolve_tracing(
        TracingConfig.model_validate({"sampler_ratio": ratio}), {}, "test-service"
    )
    return Tracing(settings, processor=processor)


def _batched(ratio: float = 1.0) -> tuple[Tracing, _Exporter]:
    exporter = _Exporter()
    return _tracing_through(BatchSpanProcessor(exporter), ratio), exporter


def test_with_one_batch_processor_spans_go_to_its_queue_without_its_on_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing, exporter = _batched()
    calls: list[str] = []
    monkeypatch.setattr(BatchSpanProcessor, "on_end", lambda self, span: calls.append(span.name))
    ex = make_exchange()
    trace = tracing.start_request(ex)
    trace.end_server(ex, 200, None, "/api")
    tracing.shutdown()
    assert calls == []
    assert [s.name for s in exporter.spans] == ["GET /api"]


def test_a_processor_added_later_sees_every_span_after_it() -> None:
    tracing, exporter = _batched()
    ex = make_exchange()
    first = tracing.start_request(ex)
    first.end_server(ex, 200, None, "/first")
    later = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(later))
    second = tracing.start_request(ex)
    second.end_server(ex, 200, None, "/second")
    tracing.shutdown()
    assert [s.name for s in exporter.spans] == ["GET /first", "GET /second"]
    assert [s.name for s in later.get_finished_spans()] == ["GET /second"]


class _RawReader(_Exporter):
    """An exporter that reads recorded spans from their slots (as FastOTLPSpanExporter does)."""

    def reads_recorded_spans(self) -> bool:
        return True


def test_a_lone_batch_processor_s_exporter_may_take_spans_as_they_ended() -> None:
    exporter = _RawReader()
    tracing = _tracing_through(BatchSpanProcessor(exporter))
    ex = make_exchange()
    first = tracing.start_request(ex)
    first.end_server(ex, 200, None, "/first")
    # Another processor: spans are ReadableSpans again, for both, with settled fields.
    later = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(later))
    second = tracing.start_request(ex)
    end_client(second.client_attempt(ex, INSTANCE, 1), 200, None)
    second.end_server(ex, 200, None, "/second")
    tracing.shutdown()
    unsettled = exporter.spans[0]
    assert isinstance(unsettled, RecordedSpan) and unsettled.name == "GET /first"
    assert unsettled._context is None  # queued as it ended: no span context made for it
    assert [type(s) for s in exporter.spans[1:]] == [RecordedSpan, RecordedSpan]
    assert all(s._context is not None for s in exporter.spans[1:])
    client, server = later.get_finished_spans()
    assert client._parent == server.get_span_context() == server._context


class _Blocking(_Exporter):
    """Exports once ``release`` is set; ``calls`` counts the batches begun."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.release.wait(10)
        return super().export(spans)


def _ended_server(tracing: Tracing) -> None:
    ex = make_exchange()
    tracing.start_request(ex).end_server(ex, 200, None, "/api")


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5.0
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_spans_are_queued_as_emit_would_but_without_a_system_call_per_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = _Exporter()
    # A long schedule delay: only a full batch (2) wakes the worker in time.
    processor = BatchSpanProcessor(exporter, max_export_batch_size=2, schedule_delay_millis=60_000)
    tracing = _tracing_through(processor)
    emitted: list[object] = []
    monkeypatch.setattr(processor._batch_processor, "emit", emitted.append)
    pids: list[int] = []
    real_getpid = os.getpid
    monkeypatch.setattr(os, "getpid", lambda: pids.append(1) or real_getpid())
    _ended_server(tracing)
    assert len(processor._batch_processor._queue) == 1 and exporter.spans == []
    _ended_server(tracing)  # a full batch: the worker is woken at once
    assert _wait_for(lambda: len(exporter.spans) == 2)
    assert emitted == [] and pids == []
    monkeypatch.undo()
    tracing.shutdown()


def test_a_full_queue_and_a_shut_down_processor_still_go_through_emit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = _Blocking()
    processor = BatchSpanProcessor(
        exporter, max_queue_size=2, max_export_batch_size=2, schedule_delay_millis=60_000
    )
    tracing = _tracing_through(processor)
    batcher = processor._batch_processor
    emit = batcher.emit
    emitted: list[object] = []
    monkeypatch.setattr(batcher, "emit", lambda span: emitted.append(span) or emit(span))
    _ended_server(tracing)
    _ended_server(tracing)  # a batch: the worker takes both and blocks in export
    assert _wait_for(lambda: exporter.calls == 1)
    _ended_server(tracing)
    _ended_server(tracing)  # the queue is full again
    assert emitted == []
    _ended_server(tracing)  # no room: emit drops it (with the SDK's warning and count)
    assert len(emitted) == 1 and len(batcher._queue) == 2
    exporter.release.set()
    tracing.shutdown()
    assert len(exporter.spans) == 4
    _ended_server(tracing)  # after shutdown: emit ignores it
    assert len(emitted) == 2 and len(exporter.spans) == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_a_fork_the_child_s_spans_wake_its_own_worker() -> None:
    exporter = _Exporter()
    processor = BatchSpanProcessor(exporter, max_export_batch_size=2, schedule_delay_millis=60_000)
    tracing = _tracing_through(processor)
    _ended_server(tracing)  # the sink has looked the batcher up before the fork
    pid = os.fork()
    if pid == 0:  # the child: its batcher has a new worker and a new wake-up event
        code = 1
        try:
            _ended_server(tracing)
            _ended_server(tracing)
            code = 0 if _wait_for(lambda: len(exporter.spans) == 2) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tracing.shutdown()


def test_an_unsampled_recorded_span_is_dropped_by_the_batch_processor() -> None:
    tracing, exporter = _batched()
    unsampled = RecordedSpan(
        tracing.sink, "x", SpanKind.INTERNAL, 1, 2, 0x00, EMPTY_TRACE_STATE, None, {}
    )
    unsampled.end()
    tracing.shutdown()
    assert exporter.spans == []


def test_this_sdk_s_readable_span_reads_the_fields_recorded_spans_have() -> None:
    assert recorded_span._OWN_FIELDS  # so the tests above run the no-copy path
    assert recorded_span._reads_own_fields()


def test_another_field_layout_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        recorded_span, "_READABLE_FIELDS", recorded_span._READABLE_FIELDS | {"_renamed"}
    )
    assert not recorded_span._reads_own_fields()


def test_without_the_known_field_layout_a_separate_readable_span_is_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def exported(own_fields: bool) -> list[ReadableSpan]:
        monkeypatch.setattr(recorded_span, "_OWN_FIELDS", own_fields)
        r = Recorder(sampler_ratio=1.0)
        ex = make_exchange()
        trace = r.tracing.start_request(ex)
        assert trace.span is not None
        trace.span.add_event("e", {"n": 1}, timestamp=7)
        end_client(trace.client_attempt(ex, INSTANCE, 1), 503, None)
        trace.end_server(ex, 503, None, "/api")
        return list(r.spans)

    ours, copies = exported(True), exported(False)
    assert [type(s) for s in copies] == [ReadableSpan, ReadableSpan]
    for mine, copy in zip(ours, copies, strict=True):
        assert copy.name == mine.name and copy.kind is mine.kind
        assert (copy.parent is None) == (mine.parent is None)
        assert dict(copy.attributes or {}) == dict(mine.attributes or {})
        assert [(e.name, e.timestamp) for e in copy.events] == [
            (e.name, e.timestamp) for e in mine.events
        ]
        assert copy.status.status_code is mine.status.status_code is StatusCode.ERROR
        assert copy.resource.attributes == mine.resource.attributes
        assert copy.instrumentation_scope == mine.instrumentation_scope


def test_an_ended_recorded_span_encodes_as_through_its_public_properties() -> None:
    r = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    trace = r.tracing.start_request(ex)
    assert trace.span is not None
    trace.span.add_event("retry", {"attempt": 1})
    end_client(trace.client_attempt(ex, INSTANCE, 1), 200, None)
    trace.end_server(ex, 200, None, "/api")
    for span in r.spans:
        assert type(span) is RecordedSpan
        assert encode_span(span) == encode_span_public(span)
    client, server = r.spans
    assert client.parent == server.get_span_context() == server.context
    assert client._parent == client.parent  # settled at the end, read by the encoder
