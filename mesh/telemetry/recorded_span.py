"""meshgate's own recording span: a few fields while it runs, an SDK ``ReadableSpan`` when it ends.

The SDK's ``Span`` costs a sampled request most of its tracing time on the
event loop: ``Tracer.start_span`` (context look-ups, the sampler, the
tracer's metrics hooks, processors' ``on_start``), a lock and a
``BoundedAttributes`` per span, the value cleaning of every attribute, and
``end`` copying it all into a ``ReadableSpan``. meshgate's SERVER and CLIENT
spans, and the child spans of :func:`mesh.telemetry.tracing.child_span`,
need none of that: their ids and sampling decision are made by
:mod:`mesh.telemetry.tracing` before the span exists, and their attributes
are strings and integers made there. :class:`RecordedSpan` keeps them in
slots and a plain dict; :meth:`RecordedSpan.end` builds the SDK's public
``ReadableSpan`` (what span processors receive in ``on_end``) and hands it
to the tracer provider's span processors through :class:`SpanSink`.

What the SDK still does: the provider, its resource, the batch span
processor and its export thread, the exporter, the propagators, and every
span someone else starts through the provider's tracers. What a recorded
span does not do: call processors' ``on_start`` (it has no SDK ``Span`` to
give them; the batch and simple processors do nothing there), feed the SDK's
own tracer metrics, or consult a tracer configurator.

Limits (``OTEL_SPAN_*_LIMIT``, ``OTEL_ATTRIBUTE_*``, read once as the SDK
reads them) apply when the span ends: with a value-length limit, or more
attributes than the count limit, the attributes go through
``BoundedAttributes`` as the SDK's would (the newest kept). Values given
through the public ``Span`` methods are cleaned as the SDK cleans them,
unless they are already plain ``str``/``bool``/``int``/``float``.

Measured in-process (callgrind, SDK 1.45, a sampled request with one
attempt, the batch processor's queue included): its SERVER and CLIENT spans
cost about 300,000 instructions through SDK spans, about 100,000 as
recorded spans, about 70,000 since the ``ReadableSpan`` is built with
positional arguments, the span context as a plain tuple, and a lone batch
processor is handed spans without its ``on_end`` (see ``SpanSink._deliver``).
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from typing import Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace import SpanProcessor as SdkSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

log = logging.getLogger(__name__)

UNSET: Final = Status(StatusCode.UNSET)
ERROR: Final = Status(StatusCode.ERROR)
EMPTY_TRACE_STATE: Final = DEFAULT_TRACE_STATE
"""The API's shared empty trace state: the OTLP encoder skips it by identity."""
TRACE_FLAGS: Final = tuple(TraceFlags(flags) for flags in range(256))
"""``TraceFlags(n)`` for every flags byte, made once (the SDK makes one per span)."""
_PLAIN = frozenset({str, bool, int, float})
_new_tuple = tuple.__new__
_READABLE_PARAMETERS: Final = (
    "self",
    "name",
    "context",
    "parent",
    "resource",
    "attributes",
    "events",
    "links",
    "kind",
    "instrumentation_info",
    "status",
    "start_time",
    "end_time",
    "instrumentation_scope",
)
_POSITIONAL: Final = (
    tuple(inspect.signature(ReadableSpan.__init__).parameters) == _READABLE_PARAMETERS
)
"""``ReadableSpan.__init__`` takes its arguments in this SDK's order (1.2x-1.4x): they are
passed by position, which halves the call's cost (keyword matching of 12 names); any
other order gets keywords."""
_MAX_TRACE_ID: Final = (1 << 128) - 1
_MAX_SPAN_ID: Final = (1 << 64) - 1


class SpanSink:
    """Where recorded spans go when they end: the provider's span processors.

    ``resource`` and the instrumentation scope are the provider's and the
    tracer's (for ``instrumentation_name``), as the SDK's spans would carry,
    so an exporter groups recorded and SDK spans together.
    """

    __slots__ = (
        "_direct",
        "_limits",
        "_multi",
        "_on_end",
        "_seen",
        "limited",
        "resource",
        "scope",
    )

    def __init__(self, provider: TracerProvider, instrumentation_name: str) -> None:
        self.resource = provider.resource
        # What TracerProvider.get_tracer(name) gives its tracer: version "", no schema URL.
        self.scope = InstrumentationScope(instrumentation_name, "", None)
        self._limits = SpanLimits()
        self.limited = self._limits.max_span_attribute_length is not None
        """A value-length limit is set: every span's attributes go through BoundedAttributes."""
        # The provider's own multi-processor, so that processors added to the
        # provider later see recorded spans too; the SDK has no public getter.
        processor: SdkSpanProcessor | None = getattr(provider, "_active_span_processor", None)
        if processor is None:
            raise TypeError("this OpenTelemetry SDK's TracerProvider has no _active_span_processor")
        self._on_end = processor.on_end
        self._multi = processor
        self._seen: object = None
        self._direct: Callable[[ReadableSpan], None] | None = None

    def _deliver(self) -> Callable[[ReadableSpan], None]:
        """What takes an ended span: the provider's processors, or its one batch processor's queue.

        The usual set-up is one SDK ``BatchSpanProcessor``. Its ``on_end``
        goes through the multi-processor's loop, then reads the span's
        context and flags (two Python properties) to drop unsampled spans,
        then calls its batcher's ``emit``; a recorded span is sampled by
        construction, so it is handed to ``emit`` directly (SDK 1.3x-1.4x
        names, looked up with ``getattr``; any other shape, or another
        processor, gets the provider's ``on_end``). Looked up again whenever
        the provider's processor tuple changes (the SDK replaces it when one
        is added), so a processor added later still sees every span.
        """
        processors = getattr(self._multi, "_span_processors", None)
        if processors is self._seen and self._direct is not None:
            return self._direct
        self._seen = processors
        direct = self._on_end
        if type(processors) is tuple and len(processors) == 1:
            only = processors[0]
            emit = getattr(getattr(only, "_batch_processor", None), "emit", None)
            if type(only) is BatchSpanProcessor and callable(emit):
                direct = emit
        self._direct = direct
        return direct

    def finish(self, span: RecordedSpan, parent: SpanContext | None) -> None:
        """Hand the ended ``span`` (child of ``parent``) to the span processors."""
        attributes: types.Attributes = span.attributes
        limits = self._limits
        maxlen = limits.max_span_attributes
        if self.limited or (maxlen is not None and len(span.attributes) > maxlen):
            attributes = BoundedAttributes(
                maxlen,
                span.attributes,
                immutable=True,
                max_value_len=limits.max_span_attribute_length,
            )
        events: Sequence[Event] = ()
        if span.events:
            events = tuple(span.events)
            if limits.max_events is not None and len(events) > limits.max_events:
                events = BoundedList.from_seq(limits.max_events, events)
        links: Sequence[Link] = ()
        if span.links:
            links = tuple(span.links)
            if limits.max_links is not None and len(links) > limits.max_links:
                links = BoundedList.from_seq(limits.max_links, links)
        direct = self._direct
        if direct is None or getattr(self._multi, "_span_processors", None) is not self._seen:
            direct = self._deliver()
        if not span.flags & 0x01:  # not sampled: the processors' on_end decide (the BSP drops it)
            direct = self._on_end
        if _POSITIONAL:
            readable = ReadableSpan(
                span.name,
                span.get_span_context(),
                parent,
                self.resource,
                attributes,
                events,
                links,
                span.kind,
                None,
                span.status,
                span.start_time,
                span.end_time,
                self.scope,
            )
        else:
            readable = ReadableSpan(
                name=span.name,
                context=span.get_span_context(),
                parent=parent,
                resource=self.resource,
                attributes=attributes,
                events=events,
                links=links,
                kind=span.kind,
                status=span.status,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=self.scope,
            )
        direct(readable)

    def clean(self, attributes: types.Attributes) -> dict[str, types.AttributeValue]:
        """Attributes from elsewhere, as the SDK would store them (invalid ones dropped)."""
        if not attributes:
            return {}
        if all(type(v) in _PLAIN for v in attributes.values()) and all(
            type(k) is str and k for k in attributes
        ):
            return dict(attributes)
        return dict(BoundedAttributes(None, attributes, immutable=False))

    def event_attributes(self, attributes: types.Attributes) -> BoundedAttributes:
        """An event's attributes, as the SDK's ``Span.add_event`` stores them."""
        return self._bounded(self._limits.max_event_attributes, attributes)

    def link_attributes(self, attributes: types.Attributes) -> BoundedAttributes:
        """A link's attributes, as the SDK's ``Span.add_link`` stores them."""
        return self._bounded(self._limits.max_link_attributes, attributes)

    def _bounded(self, most: int | None, attributes: types.Attributes) -> BoundedAttributes:
        return BoundedAttributes(
            most, attributes, max_value_len=self._limits.max_attribute_length, immutable=True
        )


class RecordedSpan(Span):
    """A sampled span of meshgate's own, recorded in plain fields.

    Implements the OpenTelemetry API ``Span``, so code given one (a
    :func:`mesh.telemetry.tracing.child_span` block, a propagator) uses it as
    any span. ``parent`` is the parent's span context, or the parent
    :class:`RecordedSpan` (its context is made only if needed, once).
    ``attributes`` is owned by the span from then on. Calls after
    :meth:`end` are ignored, as the SDK ignores them. Unlike the SDK's span
    it takes no lock: a request's spans are used by the event loop that
    serves the request, only (the batch processor's thread sees only the
    ``ReadableSpan`` made at :meth:`end`).
    """

    __slots__ = (
        "_context",
        "_parent",
        "_sink",
        "attributes",
        "end_time",
        "events",
        "flags",
        "kind",
        "links",
        "name",
        "span_id",
        "start_time",
        "status",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        sink: SpanSink,
        name: str,
        kind: SpanKind,
        trace_id: int,
        span_id: int,
        flags: int,
        trace_state: TraceState,
        parent: SpanContext | RecordedSpan | None,
        attributes: dict[str, types.AttributeValue],
    ) -> None:
        self._sink = sink
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        """W3C trace flags: sampled, and the parent's (or a root's) random-trace-id flag."""
        self.trace_state = trace_state
        self._parent = parent
        self.attributes = attributes
        self.events: list[Event] | None = None
        self.links: list[Link] | None = None
        self.status = UNSET
        self.start_time = time_ns()
        self.end_time: int | None = None
        self._context: SpanContext | None = None

    # -- meshgate's own calls ------------------------------------------------

    def child(
        self, name: str, kind: SpanKind, span_id: int, attributes: dict[str, types.AttributeValue]
    ) -> RecordedSpan:
        """A new span, child of this one, in the same trace (and so sampled too)."""
        return RecordedSpan(
            self._sink,
            name,
            kind,
            self.trace_id,
            span_id,
            self.flags,
            self.trace_state,
            self,
            attributes,
        )

    def put(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """Add meshgate's own attributes (plain strings and numbers), without cleaning."""
        if self.end_time is None:
            self.attributes.update(attributes)

    def fail(self) -> None:
        """Status ERROR (unless OK was set, which the SDK treats as final)."""
        if self.end_time is None and self.status.status_code is not StatusCode.OK:
            self.status = ERROR

    # -- the OpenTelemetry API -----------------------------------------------

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            # SpanContext(...) is a tuple made by a Python __new__ (defaults, validity);
            # the same tuple, made directly: about half the instructions, twice per request.
            trace_id = self.trace_id
            span_id = self.span_id
            context = self._context = _new_tuple(
                SpanContext,
                (
                    trace_id,
                    span_id,
                    False,
                    TRACE_FLAGS[self.flags],
                    self.trace_state,
                    0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID,
                ),
            )
        return context

    @property
    def parent(self) -> SpanContext | None:
        parent = self._parent
        return parent.get_span_context() if isinstance(parent, RecordedSpan) else parent

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self.end_time = end_time if end_time is not None else time_ns()
        parent = self._parent  # the parent property, inline
        self._sink.finish(
            self, parent.get_span_context() if isinstance(parent, RecordedSpan) else parent
        )

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self.end_time is None:
            self.attributes.update(self._sink.clean(attributes))

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self.set_attributes({key: value})

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is not None:
            return
        event = Event(name, self._sink.event_attributes(attributes), timestamp)
        if self.events is None:
            self.events = [event]
        else:
            self.events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is not None or context is None or not context.is_valid:
            return
        link = Link(context, self._sink.link_attributes(attributes))
        if self.links is None:
            self.links = [link]
        else:
            self.links.append(link)

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: OK is final, UNSET is ignored, a description only with a code."""
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self.status = status
        elif status is not StatusCode.UNSET:
            self.status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event with the SDK's attributes (type, message, stack trace)."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        values: dict[str, types.AttributeValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            values.update(attributes)
        self.add_event("exception", values, timestamp)
