"""Trace context on the wire: the hand parser accepts what the SDK's does, and writes the same."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mesh.telemetry.propagation import (
    Propagation,
    RemoteParent,
    format_traceparent,
    parse_traceparent,
    trace_id_from_headers,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"

CASES = [
    f"00-{TRACE}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-00",
    f"00-{TRACE}-{SPAN}-03",
    f"  00-{TRACE}-{SPAN}-01\t",
    f"01-{TRACE}-{SPAN}-01-future-stuff",
    f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
    f"ff-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01",
    f"00-{TRACE}-{'0' * 16}-01",
    f"00-{TRACE.upper()}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}",
    f"00-{TRACE[:-1]}-{SPAN}-01",
    "",
    "garbage",
]


@pytest.mark.parametrize("value", CASES)
def test_parser_agrees_with_the_sdk(value: str) -> None:
    context = TraceContextTextMapPropagator().extract({"traceparent": value})
    sc = trace.get_current_span(context).get_span_context()
    expected = RemoteParent(sc.trace_id, sc.span_id, int(sc.trace_flags)) if sc.is_valid else None
    assert parse_traceparent(value) == expected


def test_parsed_flags() -> None:
    parent = parse_traceparent(f"00-{TRACE}-{SPAN}-03")
    assert parent is not None and parent.sampled and parent.flags == 3
    assert parse_traceparent(None) is None


def test_format_round_trips() -> None:
    value = format_traceparent(TRACE, SPAN, 1)
    assert value == f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(value) == RemoteParent(int(TRACE, 16), int(SPAN, 16), 1)


def test_trace_id_from_headers() -> None:
    assert trace_id_from_headers({"traceparent": f"00-{TRACE}-{SPAN}-00"}) == TRACE
    assert trace_id_from_headers({"traceparent": "nope"}) is None
    assert trace_id_from_headers({}) is None


def test_unsampled_context_in_every_configured_format() -> None:
    headers: CIMultiDict[str] = CIMultiDict({"tracestate": "v=1", "baggage": "k=v"})
    Propagation.build(["tracecontext", "baggage", "b3", "b3multi"]).write_unsampled(
        headers, TRACE, "00000000000000ab", 2
    )
    assert headers["traceparent"] == f"00-{TRACE}-00000000000000ab-02"
    assert headers["b3"] == f"{TRACE}-00000000000000ab-0"
    assert (headers["X-B3-TraceId"], headers["X-B3-SpanId"], headers["X-B3-Sampled"]) == (
        TRACE,
        "00000000000000ab",
        "0",
    )
    # The caller's tracestate and baggage travel untouched.
    assert (headers["tracestate"], headers["baggage"]) == ("v=1", "k=v")


def test_only_configured_formats_are_written_and_read() -> None:
    w3c = Propagation.build(["tracecontext", "baggage"])
    headers: CIMultiDict[str] = CIMultiDict()
    w3c.write_unsampled(headers, TRACE, "0000000000000001", 0)
    assert set(headers) == {"traceparent"}
    assert not w3c.b3
    assert not w3c.has_b3({"b3": f"{TRACE}-{SPAN}-1"})
    assert set(w3c.fields) == {"traceparent", "tracestate", "baggage"}
    b3 = Propagation.build(["b3"])
    assert b3.b3 and b3.has_b3(CIMultiDict({"B3": f"{TRACE}-{SPAN}-1"}))
    assert not b3.has_b3(CIMultiDict({"X-B3-TraceId": TRACE}))
    multi = Propagation.build(["b3multi"])
    assert multi.has_b3(CIMultiDict({"x-b3-traceid": TRACE}))
    assert "X-B3-ParentSpanId" in multi.fields


def test_strip_b3() -> None:
    headers: CIMultiDict[str] = CIMultiDict(
        {"b3": "x", "X-B3-TraceId": "t", "X-B3-ParentSpanId": "p", "X-B3-Flags": "1", "keep": "1"}
    )
    Propagation.build(["b3"]).strip_b3(headers)
    assert list(headers) == ["keep"]
