"""The hand-written OTLP encoder decodes to exactly what the SDK's encoder builds."""

from __future__ import annotations

import math

import pytest
from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from mesh.snapshot import Instance
from mesh.telemetry.config import TracingConfig
from mesh.telemetry.otlp_encoding import (
    encode_attributes,
    encode_request,
    encode_span,
    encode_span_public,
    encode_value,
)
from mesh.telemetry.otlp_exporter import FastOTLPSpanExporter
from mesh.telemetry.recorded_span import RecordedSpan
from mesh.telemetry.tracing import Tracing, add_event, end_client
from mesh.telemetry.tracing_settings import resolve_tracing
from tests.mesh.telemetry.support import Recorder, make_exchange


def sdk_spans() -> tuple[ReadableSpan, ...]:
    """Spans with every feature the encoder handles."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "edge", "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("meshgate", "1.2.3", schema_url="https://example/schema")
    other = provider.get_tracer("other")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "abc"), ("k", "v")]),
    )
    parent = tracer.start_span(
        "GET /api/orders",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={
            "str": "ünïcode ✓",
            "int": 42,
            "negative": -7,
            "big": 2**62,
            "float": 1.5,
            "nan": math.inf,
            "bool": True,
            "false": False,
            "strs": ["a", "b"],
            "ints": [1, 2, 3],
            "empty": [],
        },
        links=[Link(remote, {"why": "follows"})],
    )
    parent.add_event("meshgate.retry", {"meshgate.attempt": 1})
    parent.add_event("bare")
    child = tracer.start_span("GET", context=set_span_in_context(parent), kind=SpanKind.CLIENT)
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    internal = other.start_span("internal")
    internal.set_status(Status(StatusCode.OK))
    internal.end()
    parent.end()
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
        tracer.start_span(kind.name, kind=kind).end()
    return tuple(exporter.get_finished_spans())


def decoded(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def test_same_message_as_the_sdk_encoder() -> None:
    spans = sdk_spans()
    ours = decoded(encode_request(spans))
    assert ours == encode_spans(spans)
    assert len(ours.resource_spans[0].scope_spans) == 2
    assert len(ours.resource_spans[0].scope_spans[0].spans) == 5


def test_same_message_for_meshgate_s_own_spans() -> None:
    r = Recorder(sampler_ratio=1.0)
    instance = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)
    for status in (200, 503):
        ex = make_exchange({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        ex.trace = r.tracing.start_request(ex)
        for attempt in (1, 2):
            end_client(ex.trace.client_attempt(ex, instance, attempt), status, None)
        add_event(ex, "meshgate.retry", {"meshgate.attempt": 1, "meshgate.retry.reason": "503"})
        ex.trace.end_server(ex, status, None, "/api/orders")
    assert decoded(encode_request(r.spans)) == encode_spans(r.spans)


@pytest.mark.parametrize("traceparent", [None, f"00-{'ab' * 16}-{'cd' * 8}-01"])
def test_the_usual_recorded_span_s_one_join_gives_the_general_bytes(
    traceparent: str | None,
) -> None:
    r = Recorder(sampler_ratio=1.0)
    instance = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)
    ex = make_exchange({"traceparent": traceparent} if traceparent else None)
    ex.trace = r.tracing.start_request(ex)
    end_client(ex.trace.client_attempt(ex, instance, 1), 200, None)
    ex.trace.end_server(ex, 503, None, "/api/orders")  # status ERROR
    for span in r.spans:
        assert type(span) is RecordedSpan and not span.events  # the one-join shape
        assert encode_span(span) == encode_span_public(span)
    assert decoded(encode_request(r.spans)) == encode_spans(r.spans)


def test_empty_batch() -> None:
    assert encode_request(()) == b""
    assert decoded(b"") == encode_spans(())


@pytest.mark.parametrize("value", [None, 0, 1, 127, 128, 300, -1, -(2**63), 2**63 - 1, 0.0, ""])
def test_scalar_values(value: object) -> None:
    ours = AnyValue()
    ours.ParseFromString(encode_value(value))
    assert ours == _encode_value(value)


def test_the_exporter_sends_what_the_encoder_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    sent: list[bytes] = []

    class Result:
        success = True

    monkeypatch.setattr(exporter._client, "export", lambda data: sent.append(data) or Result())
    spans = sdk_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert decoded(sent[0]) == encode_spans(spans)
    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE


def test_spans_queued_as_they_ended_make_the_request_the_sdk_encoder_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lone batch processor over the fast exporter queues recorded spans as they ended,
    no span context made for them; what it sends decodes to the SDK encoder's message for
    the same spans, their contexts made."""
    exporter = FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    sent: list[bytes] = []

    class Result:
        success = True

    monkeypatch.setattr(exporter._client, "export", lambda data: sent.append(data) or Result())
    processor = BatchSpanProcessor(exporter)
    settings = resolve_tracing(TracingConfig.model_validate({"sampler_ratio": 1.0}), {}, "edge")
    tracing = Tracing(settings, processor=processor)
    instance = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)
    ended: list[RecordedSpan] = []
    for status, headers in ((200, None), (503, {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})):
        ex = make_exchange(headers)
        ex.trace = tracing.start_request(ex)
        for attempt in (1, 2):
            span = ex.trace.client_attempt(ex, instance, attempt)
            assert span is not None
            end_client(span, status, None)
            ended.append(span)
        add_event(ex, "meshgate.retry", {"meshgate.attempt": 1})
        ex.trace.end_server(ex, status, None, "/api/orders")
        assert ex.trace.span is not None
        ended.append(ex.trace.span)
    queued = list(processor._batch_processor._queue)  # exported in 5 s, or at shutdown
    assert [type(item) for item in queued] == [RecordedSpan] * 6
    # Queued as they ended: neither a CLIENT span's parent context nor any span's own made.
    assert all(s._context is None for s in ended)
    assert all(s._parent is None for s in ended if s.kind is SpanKind.CLIENT)
    tracing.shutdown()
    assert len(sent) == 1
    assert decoded(sent[0]) == encode_spans(ended)  # encode_spans reads (makes) the contexts
    assert decoded(encode_request(ended)) == encode_spans(ended)  # the spans, as they are


def test_an_exporter_that_cannot_send_bytes_does_not_read_recorded_spans_raw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    assert exporter.reads_recorded_spans()
    monkeypatch.setattr(exporter, "_client", None)  # an SDK without the HTTP client
    assert not exporter.reads_recorded_spans()


def test_the_attribute_cache_tells_true_from_1() -> None:
    key = b"\x4a"  # field 9, length-delimited
    assert encode_attributes(key, {"x": True}) != encode_attributes(key, {"x": 1})
    assert encode_attributes(key, {"x": 1}) != encode_attributes(key, {"x": 1.0})
    assert encode_attributes(key, {"x": object()}) == b""  # no OTLP type: left out
    assert encode_attributes(key, {"x": 0.0}) != encode_attributes(key, {"x": -0.0})
    # An unhashable value skips the cache and is encoded as its tuple twin is.
    assert encode_attributes(key, {"x": [1, 2]}) == encode_attributes(key, {"x": (1, 2)})
    first = encode_attributes(key, {"y": "a", "z": 7})
    assert encode_attributes(key, {"y": "a", "z": 7}) == first  # from the cache: the same bytes
    assert encode_attributes(key, {"y": "a", "z": 7}, str_and_int=True) == first
    # The other order of entries is another order of fields, from the same cached pairs.
    assert encode_attributes(key, {"z": 7, "y": "a"}, str_and_int=True) != first


def test_a_recorded_span_given_others_values_is_not_read_as_str_and_int() -> None:
    r = Recorder(sampler_ratio=1.0)
    own = RecordedSpan(
        r.tracing.sink, "own", SpanKind.INTERNAL, 1, 2, 0x01, TraceState(), None, {"x": 1}
    )
    own.end()
    other = RecordedSpan(
        r.tracing.sink, "other", SpanKind.INTERNAL, 1, 3, 0x01, TraceState(), None, {}
    )
    other.set_attribute("x", True)  # equal to 1 for a dict: must not take 1's cached field
    other.end()
    assert own._str_and_int and not other._str_and_int
    message = decoded(encode_request(r.spans))
    values = [s.attributes[0].value for s in message.resource_spans[0].scope_spans[0].spans]
    assert [v.WhichOneof("value") for v in values] == ["int_value", "bool_value"]
    assert message == encode_spans(r.spans)


def test_the_sdk_span_s_fields_give_the_bytes_its_properties_give() -> None:
    spans = sdk_spans()
    assert {type(s) for s in spans} == {ReadableSpan}  # what encode_span reads by field
    for span in spans:
        assert encode_span(span) == encode_span_public(span)


def test_an_sdk_whose_fields_differ_is_read_through_the_properties(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    span = sdk_spans()[0]
    expected = encode_span(span)
    # As if a later SDK kept the kind under another name, behind the same property.
    span.__dict__["_renamed_kind"] = span.__dict__.pop("_kind")
    monkeypatch.setattr(ReadableSpan, "kind", property(lambda self: self._renamed_kind))
    assert encode_span(span) == expected


def test_a_readable_span_subclass_is_read_through_its_properties() -> None:
    class Renamed(ReadableSpan):
        @property
        def name(self) -> str:
            return "renamed"

    span = sdk_spans()[0]
    copy = Renamed(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
    [message] = decoded(encode_request([copy])).resource_spans[0].scope_spans[0].spans
    assert message.name == "renamed"
