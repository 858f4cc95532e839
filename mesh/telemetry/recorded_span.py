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
slots and a plain dict. It is itself an SDK ``ReadableSpan`` (what span
processors receive in ``on_end``), as the SDK's own ``Span`` is: its slots
carry the names ``ReadableSpan``'s public properties read, and
:meth:`RecordedSpan.end` settles them (parent context, limits, tuples) and
hands the span itself to the tracer provider's span processors through
:class:`SpanSink`, with no copy. With an SDK whose ``ReadableSpan`` keeps
other fields (checked once, at import), a separate ``ReadableSpan`` is built
from the span at its end, as before. When the only processor is a batch
processor exporting through meshgate's OTLP exporter (the usual set-up), no
one else reads the span before that exporter, which reads its slots: it is
queued as it ended, without its parent's and its own span contexts made.

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
Handing over the span itself rather than a ``ReadableSpan`` built from it
saves about 7,000 more per sampled request (two spans). Queueing it as it
ended, no span context made for it or its parent, saves what settling them
cost (12,000 instructions per sampled request); the export thread then
encodes the batch in one loop. Encoding each span as it ended, on the event
loop, was tried too: the same instructions, and in paired runs at 10 %
sampling (``bench.ab``) queueing spans unencoded gave +4.8, +3.0 and -2.8 %
req/s against it, so the simpler of the two stays.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import traceback
import weakref
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
_READABLE_FIELDS: Final = frozenset(
    {
        "_name",
        "_context",
        "_kind",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_parent",
        "_start_time",
        "_end_time",
        "_attributes",
        "_events",
        "_links",
        "_resource",
        "_status",
    }
)


def _reads_own_fields() -> bool:
    """Whether this SDK's ``ReadableSpan`` keeps exactly :data:`_READABLE_FIELDS` (SDK 1.x)
    and its public properties read them."""
    if set(vars(ReadableSpan("probe"))) != _READABLE_FIELDS:
        return False
    probe = ReadableSpan.__new__(ReadableSpan)
    marks = {name: object() for name in _READABLE_FIELDS}
    for name, mark in marks.items():
        setattr(probe, name, mark)
    read = {
        "_name": probe.name,
        "_context": probe.get_span_context(),
        "_kind": probe.kind,
        "_parent": probe.parent,
        "_start_time": probe.start_time,
        "_end_time": probe.end_time,
        "_status": probe.status,
        "_resource": probe.resource,
        "_instrumentation_scope": probe.instrumentation_scope,
    }
    return all(marks[name] is value for name, value in read.items())


_OWN_FIELDS: Final = _reads_own_fields()
"""A :class:`RecordedSpan`, which has these fields as slots, is handed to the processors
as it is; otherwise a ``ReadableSpan`` is built from it at its end."""
_MAX_TRACE_ID: Final = (1 << 128) - 1
_MAX_SPAN_ID: Final = (1 << 64) - 1


class SpanSink:
    """Where recorded spans go when they end: the provider's span processors.

    ``resource`` and the instrumentation scope are the provider's and the
    tracer's (for ``instrumentation_name``), as the SDK's spans would carry,
    so an exporter groups recorded and SDK spans together.
    """

    __slots__ = (
        "__weakref__",
        "_direct",
        "_limits",
        "_multi",
        "_on_end",
        "_raw",
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
        self._raw = False
        """The lone batch processor's exporter reads recorded spans from their slots."""
        if hasattr(os, "register_at_fork"):
            # A forked child's batch processor has a new wake-up event (the SDK's own
            # at-fork hook, registered before this one, makes it): look it up again.
            forget = weakref.WeakMethod(self._forget)
            os.register_at_fork(after_in_child=lambda: _call_if_alive(forget))

    def _forget(self) -> None:
        """Look the span processors up again at the next span's end."""
        self._seen = None
        self._direct = None

    def _deliver(self) -> Callable[[ReadableSpan], None]:
        """What takes an ended span: the provider's processors, or its one batch processor's queue.

        The usual set-up is one SDK ``BatchSpanProcessor``. Its ``on_end``
        goes through the multi-processor's loop, then reads the span's
        context and flags (two Python properties) to drop unsampled spans,
        then calls its batcher's ``emit``; a recorded span is sampled by
        construction, so it is queued directly, as ``emit`` would
        (:func:`_enqueue`; SDK 1.3x-1.4x names, looked up with ``getattr``;
        any other shape, or another processor, gets the provider's
        ``on_end``). Looked up again whenever
        the provider's processor tuple changes (the SDK replaces it when one
        is added), so a processor added later still sees every span.

        When that batch processor's exporter says it ``reads_recorded_spans``
        (:class:`mesh.telemetry.otlp_exporter.FastOTLPSpanExporter` does), the
        span is queued as it ended: nothing else reads it, and that exporter
        reads the parent's and the span's ids from their slots, so no span
        context is made for either.
        """
        processors = getattr(self._multi, "_span_processors", None)
        if processors is self._seen and self._direct is not None:
            return self._direct
        self._seen = processors
        direct: Callable[[ReadableSpan], None] = self._on_end
        raw = False
        if type(processors) is tuple and len(processors) == 1:
            only = processors[0]
            batcher = getattr(only, "_batch_processor", None)
            emit: Callable[[ReadableSpan], None] | None = getattr(batcher, "emit", None)
            if type(only) is BatchSpanProcessor and emit is not None:
                direct = _enqueue(batcher, emit) or emit
                reads = getattr(getattr(batcher, "_exporter", None), "reads_recorded_spans", None)
                raw = callable(reads) and reads() is True
        self._direct = direct
        self._raw = raw
        return direct

    def finish(self, span: RecordedSpan) -> None:
        """Hand the ended ``span`` to the span processors, its fields settled first:
        attributes within the limits, events and links as tuples (or ``BoundedList``)."""
        limits = self._limits
        maxlen = limits.max_span_attributes
        attributes = span._attributes
        assert type(attributes) is dict  # the span's own until here (RecordedSpan.put)
        if self.limited or (maxlen is not None and len(attributes) > maxlen):
            span._attributes = BoundedAttributes(
                maxlen,
                attributes,
                immutable=True,
                max_value_len=limits.max_span_attribute_length,
            )
        if span._events:
            events: Sequence[Event] = tuple(span._events)
            if limits.max_events is not None and len(events) > limits.max_events:
                events = BoundedList.from_seq(limits.max_events, events)
            span._events = events
        if span._links:
            links: Sequence[Link] = tuple(span._links)
            if limits.max_links is not None and len(links) > limits.max_links:
                links = BoundedList.from_seq(limits.max_links, links)
            span._links = links
        direct = self._direct
        if direct is None or getattr(self._multi, "_span_processors", None) is not self._seen:
            direct = self._deliver()
        if span.flags & 0x01:
            if self._raw:  # queued as it ended, for an exporter that reads it so (_deliver)
                direct(span)
                return
        else:  # not sampled: the processors' on_end decide (the BSP drops it)
            direct = self._on_end
        # A ReadableSpan's fields, settled: the parent's context, and its own.
        parent = span._parent_span
        if parent is not None:
            span._parent = parent.get_span_context()
        if span._context is None:
            span.get_span_context()
        direct(span if _OWN_FIELDS else _copy(span))

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


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


def _enqueue(
    batcher: object, emit: Callable[[ReadableSpan], None]
) -> Callable[[ReadableSpan], None] | None:
    """What the SDK batcher's ``emit`` does with a span, without its ``os.getpid()``.

    ``emit`` checks the process id on every span, to notice a fork its
    at-fork hook missed: a system call per span, two per sampled request.
    On this project's machines (AMD EPYC, the kernel mitigating return-stack
    attacks on every return from it) a system call is not cheap: timed in
    place under load, ending a CLIENT span took 2.30 µs with it and 1.98
    without, a SERVER span 2.68 and 2.47 (medians of 27,000). The at-fork
    hook covers every ``os.fork``, and :class:`SpanSink` looks the batcher
    up again after one. A full queue or a shut-down batcher still goes through
    ``emit``, which logs and counts the dropped span. None when the batcher
    does not have the SDK 1.3x-1.4x fields this relies on (``emit`` is used).
    """
    queue = getattr(batcher, "_queue", None)
    awaken = getattr(batcher, "_worker_awaken", None)
    batch = getattr(batcher, "_max_export_batch_size", None)
    if (
        type(queue) is not collections.deque
        or queue.maxlen is None
        or not isinstance(awaken, threading.Event)
        or type(batch) is not int
        or not isinstance(getattr(batcher, "_shutdown", None), bool)
    ):
        return None
    full = queue.maxlen
    append = queue.appendleft  # the oldest span is on the right, where the worker pops
    is_set = awaken.is_set

    def enqueue(span: ReadableSpan) -> None:
        if len(queue) == full or batcher._shutdown:  # type: ignore[attr-defined]
            emit(span)
            return
        append(span)
        # The worker wakes early for a full batch (else every schedule delay).
        if len(queue) >= batch and not is_set():
            awaken.set()

    return enqueue


def _copy(span: RecordedSpan) -> ReadableSpan:
    """A separate ``ReadableSpan`` of the ended ``span`` (an SDK whose fields differ)."""
    return ReadableSpan(
        name=span._name,
        context=span._context,
        parent=span._parent,
        resource=span._resource,
        attributes=span._attributes,
        events=span._events,
        links=span._links,
        kind=span._kind,
        status=span._status,
        start_time=span._start_time,
        end_time=span._end_time,
        instrumentation_scope=span._instrumentation_scope,
    )


class RecordedSpan(Span, ReadableSpan):
    """A sampled span of meshgate's own, recorded in plain fields.

    Implements the OpenTelemetry API ``Span``, so code given one (a
    :func:`mesh.telemetry.tracing.child_span` block, a propagator) uses it as
    any span, and is the SDK's ``ReadableSpan`` the processors get once it
    has ended (its public properties read the slots below; see the module
    docstring). ``parent`` is the parent's span context, or the parent
    :class:`RecordedSpan` (its context is made only if needed, once).
    ``attributes`` is owned by the span from then on, and holds meshgate's
    own values, each exactly a ``str`` or an ``int`` (others' values go
    through :meth:`set_attributes`, which cleans them). Calls after
    :meth:`end` are ignored, as the SDK ignores them, so the batch
    processor's thread reads fields nobody changes any more. Unlike the
    SDK's span it takes no lock: a request's spans are used by the event
    loop that serves the request, only.
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_parent_span",
        "_resource",
        "_sink",
        "_start_time",
        "_status",
        "_str_and_int",
        "flags",
        "span_id",
        "trace_id",
        "trace_state",
    )
    _instrumentation_info = None
    """``ReadableSpan``'s deprecated field: never set for meshgate's spans."""

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
        self._name = name
        self._kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        """W3C trace flags: sampled, and the parent's (or a root's) random-trace-id flag."""
        self.trace_state = trace_state
        # A SpanContext or None first: isinstance() with this ABC is a slow call for those.
        if parent is None or type(parent) is SpanContext or not isinstance(parent, RecordedSpan):
            self._parent_span: RecordedSpan | None = None
            """The parent, when it is a recorded span (its context is made when needed)."""
            self._parent: SpanContext | None = parent
            """The parent's span context (a recorded parent's is set when this span ends,
            unless it is handed over encoded)."""
        else:
            self._parent_span = parent
            self._parent = None
        self._attributes: types.Attributes = attributes
        self._str_and_int = True
        """Every attribute value is exactly a str or an int: meshgate's own, given at the
        start and through put(); set_attributes() (others' values) clears it."""
        self._events: Sequence[Event] = ()
        """A list while recording (once there is one), a tuple or BoundedList once ended."""
        self._links: Sequence[Link] = ()
        self._status = UNSET
        self._start_time = time_ns()
        self._end_time: int | None = None
        self._context: SpanContext | None = None
        self._resource = sink.resource
        self._instrumentation_scope = sink.scope

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
        """Add meshgate's own attributes, without cleaning: values exactly ``str`` or ``int``
        (as at the start; the encoder relies on it, see ``_str_and_int``)."""
        attributes_ = self._attributes
        if self._end_time is None:
            # While recording, the plain dict given at the start (BoundedAttributes only
            # once ended); asserted inline, not in a method: two calls per sampled request.
            assert type(attributes_) is dict
            attributes_.update(attributes)

    def fail(self) -> None:
        """Status ERROR (unless OK was set, which the SDK treats as final)."""
        if self._end_time is None and self._status.status_code is not StatusCode.OK:
            self._status = ERROR

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
    def context(self) -> SpanContext:
        return self.get_span_context()

    @property
    def parent(self) -> SpanContext | None:
        parent = self._parent_span
        return parent.get_span_context() if parent is not None else self._parent

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._sink.finish(self)

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        attributes_ = self._attributes
        if self._end_time is None:
            assert type(attributes_) is dict  # see put
            attributes_.update(self._sink.clean(attributes))
            self._str_and_int = False

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self.set_attributes({key: value})

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None:
            return
        event = Event(name, self._sink.event_attributes(attributes), timestamp)
        events = self._events
        if isinstance(events, list):
            events.append(event)
        else:
            self._events = [event]

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None or context is None or not context.is_valid:
            return
        link = Link(context, self._sink.link_attributes(attributes))
        links = self._links
        if isinstance(links, list):
            links.append(link)
        else:
            self._links = [link]

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: OK is final, UNSET is ignored, a description only with a code."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

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
