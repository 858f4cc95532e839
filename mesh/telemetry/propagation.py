"""Trace context on the wire: W3C ``traceparent`` (parsed by hand, fast), B3, baggage.

With W3C formats only (``tracecontext``, ``baggage``: the default), the
OpenTelemetry propagators are never used on the request path: the incoming
``traceparent`` is parsed here with one regular expression, each attempt's
``traceparent`` is formatted here, and ``tracestate`` and ``baggage`` travel
as received (what the SDK would write, since a child span keeps its parent's
trace state; meshgate adds no baggage). That saves microseconds per hop, and
matters because every request, sampled or not, pays it.

With B3 configured, sampled requests (and B3-only callers) go through the
SDK's composite propagator, built here, which reads and writes every format.

The hand parser accepts exactly what the SDK's TraceContext propagator accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from multidict import CIMultiDict
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mesh.telemetry.config import PropagatorName

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACERESPONSE = "traceresponse"
BAGGAGE = "baggage"
B3_SINGLE = "b3"
B3_MULTI = ("X-B3-TraceId", "X-B3-SpanId", "X-B3-Sampled", "X-B3-ParentSpanId", "X-B3-Flags")

_TRACEPARENT_RE = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*$"
)
_ZERO_TRACE = "0" * 32
ZERO_SPAN_ID = "0" * 16
"""An all-zero span id (W3C: invalid); a run of sixteen zero digits is in every
all-zero id, which is how drawn ids are checked."""


SAMPLED = 0x01
RANDOM_TRACE_ID = 0x02
"""W3C Trace Context level 2: the trace id's right 7 bytes are random."""


class RemoteParent(NamedTuple):
    """A parent span received from the caller; ``flags`` are its W3C trace flags."""

    trace_id: int
    span_id: int
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def parse_traceparent(value: str | None) -> RemoteParent | None:
    """The parent in a W3C ``traceparent`` value; None when absent or invalid."""
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == _ZERO_TRACE or span_id == ZERO_SPAN_ID or version == "ff":
        return None
    if version == "00" and rest:
        return None
    return RemoteParent(int(trace_id, 16), int(span_id, 16), int(flags, 16))


def trace_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """The trace id of a valid incoming ``traceparent`` (for replies made before tracing)."""
    parent = parse_traceparent(headers.get(TRACEPARENT))
    return f"{parent.trace_id:032x}" if parent is not None else None


FLAGS_SUFFIX: tuple[str, ...] = tuple(f"-{flags:02x}" for flags in range(256))
"""``-<flags>``, the end of a ``traceparent``, for each value of the flags byte."""


def format_traceparent(trace_id: str, span_id: str, flags: int) -> str:
    """``00-<trace id>-<span id>-<flags>``; the ids are already hex (32 and 16 digits)."""
    return f"00-{trace_id}-{span_id}{FLAGS_SUFFIX[flags]}"


def unsampled_headers(trace_id: str, ids: str, flags: int) -> tuple[str, str]:
    """An unsampled hop's ``traceresponse`` value (span id ``ids[:16]``) and its first
    attempt's rendered ``traceparent`` line (span id ``ids[16:32]``).

    :func:`format_traceparent`'s format, written out: every request that is not
    sampled pays for it, and a call each would be two calls more."""
    suffix = FLAGS_SUFFIX[flags]
    return (
        f"00-{trace_id}-{ids[:16]}{suffix}",
        f"{TRACEPARENT}: 00-{trace_id}-{ids[16:32]}{suffix}",
    )


@dataclass(frozen=True, slots=True)
class Propagation:
    """The configured header formats, and how to write them without the SDK."""

    names: tuple[PropagatorName, ...]
    propagator: TextMapPropagator
    """The SDK composite propagator (used for sampled requests and B3 extraction)."""
    fields: tuple[str, ...]
    """Every header the configured formats read or write."""

    @classmethod
    def build(cls, names: Iterable[PropagatorName]) -> Propagation:
        chosen = tuple(dict.fromkeys(names))
        parts: list[TextMapPropagator] = []
        # B3 first: a later propagator's span context wins, and W3C should.
        if "b3multi" in chosen:
            parts.append(B3MultiFormat())
        if "b3" in chosen:
            parts.append(B3SingleFormat())
        if "tracecontext" in chosen:
            parts.append(TraceContextTextMapPropagator())
        if "baggage" in chosen:
            parts.append(W3CBaggagePropagator())
        composite = CompositePropagator(parts)
        fields = set(composite.fields)
        if "b3multi" in chosen:
            fields.update(B3_MULTI)
        return cls(chosen, composite, tuple(sorted(fields)))

    @property
    def b3(self) -> bool:
        return "b3" in self.names or "b3multi" in self.names

    @property
    def w3c_only(self) -> bool:
        """Only W3C formats, with traceparent: headers can be written by hand."""
        return "tracecontext" in self.names and not self.b3

    def has_b3(self, headers: Mapping[str, str]) -> bool:
        """Whether ``headers`` carry B3 context this configuration accepts."""
        if "b3" in self.names and B3_SINGLE in headers:
            return True
        return "b3multi" in self.names and B3_MULTI[0] in headers

    def strip_b3(self, headers: CIMultiDict[str]) -> None:
        """Remove incoming B3 headers before ours are written (formats may differ)."""
        headers.popall(B3_SINGLE, None)
        for name in B3_MULTI:
            headers.popall(name, None)

    def write_unsampled(
        self, headers: CIMultiDict[str], trace_id: str, span_id: str, flags: int
    ) -> None:
        """Write the context of an unsampled span (``flags`` without the sampled bit),
        without OpenTelemetry objects; the ids are hex (32 and 16 digits)."""
        if "tracecontext" in self.names:
            headers[TRACEPARENT] = format_traceparent(trace_id, span_id, flags)
        if "b3" in self.names:
            headers[B3_SINGLE] = f"{trace_id}-{span_id}-0"
        if "b3multi" in self.names:
            headers["X-B3-TraceId"] = trace_id
            headers["X-B3-SpanId"] = span_id
            headers["X-B3-Sampled"] = "0"

    def extract(self, headers: Mapping[str, str]) -> Context:
        return self.propagator.extract(headers)

    def inject(self, headers: CIMultiDict[str], context: Context) -> None:
        self.propagator.inject(headers, context=context)
