"""Tracing with the OpenTelemetry SDK: one SERVER span per request, one CLIENT span per attempt.

:class:`Tracing` owns one process's tracer provider: resource, sampler, an
OTLP/HTTP protobuf exporter (:mod:`mesh.telemetry.otlp_exporter`) behind the
SDK's batch span processor, and the propagators. :meth:`Tracing.shutdown`
flushes what is pending; call it once, after the listeners have stopped.

Per request (:meth:`Tracing.start_request`, called by
:class:`mesh.filters.tracing.TracingFilter`), the sampling decision comes
first, from the incoming context alone:

* **unsampled**: no OpenTelemetry object is created, and with W3C headers
  only no object of the request's own either (:class:`UnsampledTrace`): the
  exchange keeps the trace id, and every upstream attempt gets a new
  ``traceparent`` with the sampled flag 0 (``tracestate`` and ``baggage``
  travel as received), so the context still reaches every hop;
* **sampled**: a SERVER span, and CLIENT spans that are its children,
  each attempt's ``traceparent`` naming its CLIENT span, so each callee's
  SERVER span is the child of the CLIENT span of the attempt that reached it.
  These are :class:`mesh.telemetry.recorded_span.RecordedSpan` objects, not
  SDK spans: ids, times and attributes in slots, themselves the SDK's
  ``ReadableSpan`` that the provider's span processors get when they end
  (see that module for what the SDK still does).

Headers are read and written by :mod:`mesh.telemetry.propagation`: by hand
with W3C formats only (the default), through the SDK's propagators with B3.

Helpers for other parts of the proxy (auth, rate limiting, resilience):

* :func:`add_event` puts an event on the request's SERVER span;
* :func:`child_span` opens a child span (e.g. a Redis round trip, a JWKS fetch);
* :func:`side_call` starts the CLIENT span of a call made for the request besides
  its upstream attempts (the edge's external authorization check) and gives the
  headers that carry its context to the callee.

Both are no-ops, and nearly free, when the request is not sampled or not
traced. Never pass a secret (token, API key, password) as an attribute.
Spans started through :attr:`Tracing.tracer` (the SDK's) with
:attr:`RequestTrace.context` as their context are children of the SERVER
span too, at the SDK's price.

Cost per request, counted with callgrind in-process (SDK 1.45, CPython
3.11): an unsampled request about 13,400 instructions in the filter (its
ids, ``traceresponse``, its first attempt's ``traceparent``) and 1,400 for
that attempt, whose header line is written already; a sampled one about
74,000 on the event loop for its SERVER and CLIENT spans (300,000 with SDK
spans), and the OTLP encoding of its two spans, about 48,000
(:mod:`mesh.telemetry.otlp_encoding`), on the batch processor's thread.
What is left on the unsampled path is mostly the interpreter's own work:
drawing 256 random bits and writing them as hex (about 2,400), three string
slices (about 1,200), two header values (about 1,100) and three Python
frames. For a request without a parent (nearly every one at the edge) the
ids, the decision and the header values are made 128 requests at a time
(:mod:`mesh.telemetry.root_contexts`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Final

from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceState
from opentelemetry.util.types import AttributeValue

from mesh.telemetry.otlp_exporter import FastOTLPSpanExporter
from mesh.telemetry.propagation import (
    BAGGAGE,
    RANDOM_TRACE_ID,
    SAMPLED,
    TRACEPARENT,
    TRACERESPONSE,
    TRACESTATE,
    ZERO_SPAN_ID,
    Propagation,
    RemoteParent,
    format_traceparent,
    parse_traceparent,
    unsampled_headers,
)
from mesh.telemetry.recorded_span import (
    EMPTY_TRACE_STATE,
    TRACE_FLAGS,
    RecordedSpan,
    SpanSink,
)
from mesh.telemetry.root_contexts import RootContexts
from mesh.telemetry.sampling import RuleSampler, SamplingRule
from mesh.telemetry.tracing_settings import TracingSettings

if TYPE_CHECKING:
    from mesh.exchange import Exchange
    from mesh.snapshot import Instance

log = logging.getLogger(__name__)

INSTRUMENTATION = "meshgate"

# Span events other parts of the proxy add (see add_event).
EVENT_RETRY: Final = "meshgate.retry"
"""An attempt failed and the request is tried again."""
EVENT_HEDGE: Final = "meshgate.hedge"
"""An attempt had no answer within its per-try timeout and another one (a hedge, attempt
``meshgate.attempt``) started beside it (the sidecar's ``hedge_on_per_try_timeout``)."""
EVENT_BREAKER_OPENED: Final = "meshgate.breaker.opened"
"""This request's outcome opened a circuit breaker."""
EVENT_BREAKER_REJECTED: Final = "meshgate.breaker.rejected"
"""The request was refused at once: the service's breaker is open."""
EVENT_UPSTREAM_OVERFLOW: Final = "meshgate.upstream.overflow"
"""The request was refused at once: its service had its limit of requests in flight
(:mod:`mesh.resilience.concurrency`)."""
EVENT_RATE_LIMITED: Final = "meshgate.ratelimit.refused"
"""A rate limit refused the request (429)."""
EVENT_AUTH_FAILED: Final = "meshgate.auth.failed"
"""Authentication failed (401/403); attributes name the reason, never the credential."""
EVENT_FAULT_INJECTED: Final = "meshgate.fault.injected"
"""Fault injection delayed or aborted the request (:mod:`mesh.faults`)."""
EVENT_EXT_AUTHZ_REFUSED: Final = "meshgate.ext_authz.refused"
"""The edge's external authorization refused the request: the service denied it, or could
not be asked and ``failure_mode`` is ``deny`` (:mod:`edge.ext_authz`)."""
EVENT_EXT_AUTHZ_FAILED_OPEN: Final = "meshgate.ext_authz.failed_open"
"""The external authorization service could not be asked and ``failure_mode: allow`` let
the request through."""

KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""The methods the HTTP semantic conventions name; spans say ``_OTHER`` for any other."""
_getrandbits = random.getrandbits
_SERVER: Final = SpanKind.SERVER
_CLIENT: Final = SpanKind.CLIENT
"""SpanKind's members, looked up once: an Enum class's attribute goes through its
metaclass's ``__getattr__`` hook in Python 3.11 (about 850 instructions)."""


def _new_span_id() -> int:
    return _getrandbits(64) or 1


def _draw_ids(bits: int) -> tuple[int, str]:
    """``bits`` random bits (a multiple of 64) and their hex digits, none of whose 16-digit
    ids is all zeros (W3C: invalid); drawn again in the rare case (one in 2**60 or fewer)."""
    while True:
        value = _getrandbits(bits)
        digits = value.to_bytes(bits // 8, "big").hex()
        if ZERO_SPAN_ID not in digits:
            return value, digits


class Tracing:
    """One process's tracing: provider, exporter, sampling and propagation.

    ``processor`` replaces the OTLP exporter (tests pass an in-memory one).
    With ``install_global`` the provider also becomes OpenTelemetry's global
    one, for libraries that trace through the global API.
    """

    def __init__(
        self,
        settings: TracingSettings,
        *,
        processor: SpanProcessor | None = None,
        install_global: bool = False,
    ) -> None:
        self.settings = settings
        self.rule = SamplingRule.for_sampler(settings.sampler, settings.ratio)
        self._root_bound = self.rule.root_bound
        """A root is sampled when its trace id's low 64 bits are below this."""
        self.propagation = Propagation.build(settings.propagators)
        self.provider = TracerProvider(
            sampler=RuleSampler(self.rule),
            resource=Resource.create(dict(settings.resource_attributes)),
        )
        if processor is None and settings.endpoint:
            exporter: SpanExporter = FastOTLPSpanExporter(endpoint=settings.endpoint)
            processor = BatchSpanProcessor(exporter)
        self.exporting = processor is not None
        if processor is not None:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer(INSTRUMENTATION)
        """The SDK's tracer, for spans others start; meshgate's own are recorded spans."""
        self.sink = SpanSink(self.provider, INSTRUMENTATION)
        self._b3 = self.propagation.b3
        self._w3c = "tracecontext" in settings.propagators
        self.w3c_only = self.propagation.w3c_only
        """Headers are written by hand, never through the SDK's propagators."""
        self._roots = RootContexts(self._root_bound)
        """Contexts for traces started here, made a batch at a time."""
        self.unsampled = UnsampledTrace()
        """The trace of every unsampled request when ``w3c_only`` (see UnsampledTrace)."""
        self._closed = False
        if install_global:
            trace.set_tracer_provider(self.provider)
        for warning in settings.warnings:
            log.warning("tracing: %s", warning)

    def describe(self) -> str:
        """One line for the start-up log."""
        s = self.settings
        if not self.exporting:
            where = "nowhere (no OTLP endpoint configured)"
        else:
            where = s.endpoint or "the span processor given"
        sampler = s.sampler + (f" {s.ratio:g}" if s.sampler.endswith("ratio") else "")
        return (
            f"tracing as {s.service_name!r}, sampler {sampler}, "
            f"propagators {','.join(s.propagators)}, spans exported to {where}"
        )

    # -- per request ---------------------------------------------------------

    def _parent(self, ex: Exchange) -> tuple[RemoteParent | None, Context | None]:
        headers = ex.request.headers
        raw = headers.get(TRACEPARENT) if self._w3c else None
        parent = parse_traceparent(raw) if raw is not None else None
        if parent is not None or not self._b3 or not self.propagation.has_b3(headers):
            return parent, None
        context = self.propagation.extract(headers)
        sc = trace.get_current_span(context).get_span_context()
        if not sc.is_valid:
            return None, None
        return RemoteParent(sc.trace_id, sc.span_id, int(sc.trace_flags)), context

    def start_request(self, ex: Exchange, traceresponse: bool = False) -> HopTrace:
        """Decide sampling, start the SERVER span if sampled (the caller ends it), and
        set ``ex.trace`` (returned) and ``ex.trace_id``.

        With ``traceresponse``, adds the W3C ``traceresponse`` header naming this
        hop's span to ``ex.response_headers``. Removes the incoming context from
        ``ex.upstream_headers`` where it would be stale (every attempt writes its own).
        """
        headers = ex.upstream_headers
        if self._b3:
            parent, context = self._parent(ex)
            self.propagation.strip_b3(headers)
        else:  # _parent without B3, inline: every request pays it
            # Taken out of the headers sent on (each attempt writes its own, see
            # client_attempt): one look-up for both, and the upstream headers are the
            # request's own but for hop-by-hop ones, without aiohttp's cached property.
            raw = headers.popall(TRACEPARENT, None) if self._w3c else None
            parent = parse_traceparent(raw[0]) if raw is not None else None
            context = None
        # ``ids``: this hop's span id (digits 0-15, for traceresponse) and its first
        # attempt's (16-31), as hex; ints are made only when sampled. ``line`` (and
        # ``value``) are set when not sampled: the first attempt's rendered traceparent
        # line and the traceresponse value.
        if parent is None:
            # Made a batch at a time with the trace id, sampling decided and, unsampled,
            # the header values written (RootContexts): every request at the edge takes one.
            ready = self._roots.ready
            trace_hex, ids, value, line = ready.pop() if ready else self._roots.refill()
            random_flag = RANDOM_TRACE_ID  # ours is random, as the SDK's would be
            if line is not None:
                headers.popall(TRACESTATE, None)  # belongs to no valid parent
        else:
            ids = _draw_ids(128)[1]
            trace_id = parent.trace_id
            trace_hex = trace_id.to_bytes(16, "big").hex()
            random_flag = parent.flags & RANDOM_TRACE_ID
            if self.rule.sampled(trace_id, parent.sampled):
                value = line = None
            else:
                value, line = unsampled_headers(trace_hex, ids, random_flag)
        if line is not None and value is not None:
            # Not sampled: nearly every request. Written out here rather than in a
            # method of its own, a call fewer on each of them.
            ex.trace_id = trace_hex
            if traceresponse:
                ex.response_headers.append((TRACERESPONSE, value))
            if self.w3c_only:
                # The first attempt's context, written now: the shared trace keeps none.
                ex.attempt_header_block = line
                hop: HopTrace = self.unsampled
            else:
                hop = RequestTrace(self, trace_hex, ids[:16], ids[16:32], random_flag)
            ex.trace = hop
            return hop
        if parent is None:
            trace_id = int(trace_hex, 16)
        state = EMPTY_TRACE_STATE
        if self.w3c_only:
            # tracestate and baggage stay as received; attempts write traceparent.
            if parent is None:
                headers.popall(TRACESTATE, None)
            else:
                values = ex.request.headers.getall(TRACESTATE, None)
                if values:
                    state = TraceState.from_header(values)
        else:
            incoming = ex.request.headers
            if context is None:
                if parent is not None or BAGGAGE in incoming:
                    context = self.propagation.extract(incoming)
                else:
                    context = Context()
            if parent is not None:
                state = trace.get_current_span(context).get_span_context().trace_state
            for name in self.propagation.fields:
                headers.popall(name, None)
        remote = None
        if parent is not None:
            remote = SpanContext(
                trace_id,
                parent.span_id,
                is_remote=True,
                trace_flags=TRACE_FLAGS[parent.flags],
                trace_state=state,
            )
        flags = SAMPLED | random_flag
        span_hex = ids[:16]
        span = RecordedSpan(
            self.sink,
            ex.method,
            _SERVER,
            trace_id,
            int(span_hex, 16),
            flags,
            state,
            remote,
            _server_attributes(ex),
        )
        hop = RequestTrace(self, trace_hex, span_hex, None, flags, span, context)
        ex.trace = hop
        ex.trace_id = trace_hex
        if traceresponse:
            ex.response_headers.append((TRACERESPONSE, hop.traceresponse()))
        return hop

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Export what is pending (up to ``timeout_s``) and stop; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.exporting:
            self.provider.force_flush(int(timeout_s * 1000))
        self.provider.shutdown()


class RequestTrace:
    """The trace of one request at one hop: its ids, and its SERVER span when sampled.

    ``span`` is None for an unsampled request when headers are not W3C only
    (with W3C only, such a request has the shared :class:`UnsampledTrace`):
    nothing is recorded, but :meth:`client_attempt` still writes a fresh
    context for each attempt.
    """

    __slots__ = (
        "_first_attempt_id",
        "_incoming",
        "_tracing",
        "flags",
        "span",
        "span_id_hex",
        "trace_id_hex",
    )

    def __init__(
        self,
        tracing: Tracing,
        trace_id_hex: str,
        span_id_hex: str,
        first_attempt_id: str | None,
        flags: int,
        span: RecordedSpan | None = None,
        incoming: Context | None = None,
    ) -> None:
        self._tracing = tracing
        # Hex, not ints: every request writes them (traceresponse, each attempt's
        # traceparent, access log, problem bodies), and an unsampled one needs no int.
        self.trace_id_hex = trace_id_hex
        """The trace id as 32 hex digits (what Jaeger's search box takes)."""
        self.span_id_hex = span_id_hex
        """This hop's span id as 16 hex digits (the SERVER span's, when sampled)."""
        self._first_attempt_id = first_attempt_id
        """The span id (hex) of an unsampled request's first attempt, drawn with the others."""
        self.flags = flags
        """W3C trace flags of this hop's span: sampled (0x01), random trace id (0x02)."""
        self.span = span
        self._incoming = incoming
        """The context the SDK's propagators extracted (baggage), when they were used."""

    @property
    def trace_id(self) -> int:
        return int(self.trace_id_hex, 16)

    @property
    def span_id(self) -> int:
        """This hop's span id (the SERVER span's, when sampled)."""
        return int(self.span_id_hex, 16)

    @property
    def sampled(self) -> bool:
        return self.span is not None

    @property
    def context(self) -> Context | None:
        """An OpenTelemetry context holding the SERVER span (None when not sampled).

        Made on demand: meshgate's own spans do not need it.
        """
        if self.span is None:
            return None
        return trace.set_span_in_context(self.span, self._incoming or Context())

    def traceresponse(self) -> str:
        """The W3C ``traceresponse`` header value naming this hop's span."""
        return format_traceparent(self.trace_id_hex, self.span_id_hex, self.flags)

    @property
    def tracer(self) -> trace.Tracer:
        return self._tracing.tracer

    def client_attempt(self, ex: Exchange, instance: Instance, attempt: int) -> RecordedSpan | None:
        """Start the CLIENT span of attempt number ``attempt`` (from 1) to ``instance``
        and write its context for the attempt: ``traceparent`` as
        ``ex.attempt_header_block`` (replacing the previous attempt's) with
        W3C headers only, through the propagators into ``ex.upstream_headers``
        otherwise.

        Returns the span, for :func:`end_client`; None when the request is not
        sampled (the context is written all the same). Attributes:
        ``http.request.method``, ``server.address``, ``server.port``,
        ``url.full`` (without the query), ``meshgate.instance``,
        ``meshgate.attempt`` and, from the second attempt,
        ``http.request.resend_count``.
        """
        out = ex.upstream_headers
        tracing = self._tracing
        server = self.span
        if server is None:
            span_id = self._first_attempt_id
            if span_id is None:  # a retry: a fresh span id
                span_id = _draw_ids(64)[1]
            else:
                self._first_attempt_id = None
            # Not W3C only (with W3C only an unsampled request has an UnsampledTrace).
            tracing.propagation.write_unsampled(out, self.trace_id_hex, span_id, self.flags)
            return None
        method = ex.upstream_method or ex.method  # the attempt's: what the service gets
        known = method in KNOWN_METHODS
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method if known else "_OTHER",
            "server.address": instance.address,
            "server.port": instance.port,
            "url.full": f"http://{instance.authority}{ex.upstream_path or ex.path}",
            "meshgate.instance": instance.id,
            "meshgate.attempt": attempt,
        }
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        span = server.child(method if known else "HTTP", _CLIENT, _new_span_id(), attributes)
        if tracing.w3c_only:
            ex.attempt_header_block = f"{TRACEPARENT}: {self._traceparent(span)}"
        else:
            context = trace.set_span_in_context(span, self._incoming or Context())
            tracing.propagation.inject(out, context)
        return span

    def side_call(
        self, ex: Exchange, name: str, attributes: dict[str, AttributeValue]
    ) -> tuple[RecordedSpan | None, list[tuple[str, str]]]:
        """See :func:`side_call`."""
        tracing = self._tracing
        server = self.span
        headers: CIMultiDict[str] = CIMultiDict()
        if server is None:
            # Not sampled, and not W3C only: a fresh span id, sampled flag 0.
            span_id = _draw_ids(64)[1]
            tracing.propagation.write_unsampled(headers, self.trace_id_hex, span_id, self.flags)
            return None, list(headers.items())
        span = server.child(name, _CLIENT, _new_span_id(), attributes)
        if tracing.w3c_only:
            return span, [(TRACEPARENT, self._traceparent(span))]
        context = trace.set_span_in_context(span, self._incoming or Context())
        tracing.propagation.inject(headers, context)
        return span, list(headers.items())

    def _traceparent(self, span: RecordedSpan) -> str:
        """The ``traceparent`` value naming ``span``, a CLIENT span of this trace."""
        span_hex = span.span_id.to_bytes(8, "big").hex()
        return format_traceparent(self.trace_id_hex, span_hex, self.flags)

    def end_server(
        self, ex: Exchange, status: int, error: str | None, http_route: str | None
    ) -> None:
        """Finish the SERVER span with what is known once the response is done.

        Adds ``http.response.status_code``, ``http.route`` (when given),
        ``meshgate.route``, and ``error.type`` with status ERROR for a 5xx or an
        exception, to the attributes given at the start (see
        :func:`_server_attributes`), and names the span after the route.
        """
        span = self.span
        if span is None:
            return
        attributes: dict[str, AttributeValue] = {"http.response.status_code": status}
        if http_route is not None:
            attributes["http.route"] = http_route
        if ex.route is not None:
            attributes["meshgate.route"] = ex.route
        if error is None and status >= 500:
            error = str(status)
        if error is not None:
            attributes["error.type"] = error
            span.fail()
        span.put(attributes)
        method = ex.method
        name = method if method in KNOWN_METHODS else "HTTP"
        target = http_route or ex.route
        span.update_name(f"{name} {target}" if target else name)
        span.end()


class UnsampledTrace:
    """The trace of an unsampled request at one hop, when headers are W3C only.

    One per :class:`Tracing`, shared by all such requests: nothing is recorded
    for them, and their context lives on the exchange, written by
    :meth:`Tracing.start_request`: ``ex.trace_id``, and the first attempt's
    ``traceparent`` (with a span id drawn with the others) in
    ``ex.attempt_header_block``. So such a request makes no object of its own,
    which in CPython 3.11 costs about 2,400 instructions (a Python class's
    call and deallocation) on each of them.
    """

    __slots__ = ()
    span: Final = None
    sampled: Final = False
    context: Final = None

    def client_attempt(self, ex: Exchange, instance: Instance, attempt: int) -> None:
        """Attempt number ``attempt``'s context: the first one's is written already; a
        retry sends it again with a fresh span id."""
        if attempt > 1:
            ex.attempt_header_block = _with_new_span_id(ex.attempt_header_block)

    def side_call(
        self, ex: Exchange, name: str, attributes: dict[str, AttributeValue]
    ) -> tuple[None, list[tuple[str, str]]]:
        """A ``traceparent`` in the request's trace with a fresh span id (sampled flag
        0), from the first attempt's line written at the start; nothing recorded."""
        line = ex.attempt_header_block
        prefix = f"{TRACEPARENT}: "
        if not line.startswith(prefix):  # not written (not reached: start_request does)
            return None, []
        return None, [(TRACEPARENT, _with_new_span_id(line)[len(prefix) :])]

    def end_server(
        self, ex: Exchange, status: int, error: str | None, http_route: str | None
    ) -> None:
        """Nothing to end: there is no span."""


def _with_new_span_id(traceparent: str) -> str:
    """A ``traceparent`` value (or its header line) naming a fresh span id: in
    "00-<trace id>-<span id>-<flags>" the span id is [-19:-3], whatever comes before."""
    return f"{traceparent[:-19]}{_draw_ids(64)[1]}{traceparent[-3:]}"


HopTrace = RequestTrace | UnsampledTrace
"""What ``ex.trace`` holds for a traced request."""


def _server_attributes(ex: Exchange) -> dict[str, AttributeValue]:
    """The SERVER span's attributes known when the request arrives.

    ``http.request.method`` (``_OTHER`` plus ``http.request.method_original``
    for a method outside the standard set), ``url.path``, ``url.scheme``,
    ``network.peer.address``, and ``server.address``/``server.port`` from
    ``Host``. Set as the span starts (the semantic conventions ask for them
    at creation so that a sampler may use them; meshgate's sampler decides on
    the trace id alone). Few on purpose: each costs the exporter time.
    """
    method = ex.method
    known = method in KNOWN_METHODS
    request = ex.request
    address, port = _host_and_port(request.headers.get("Host", ""))
    attributes: dict[str, AttributeValue] = {
        "http.request.method": method if known else "_OTHER",
        "url.path": ex.path,
        "url.scheme": "https" if request.secure else "http",
        "network.peer.address": request.remote or "",
    }
    if not known:
        attributes["http.request.method_original"] = method
    if address:
        attributes["server.address"] = address
        attributes["server.port"] = port
    return attributes


def _host_and_port(host: str) -> tuple[str, int]:
    """``Host`` header → (address, port); port 80 when absent (plain HTTP)."""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name.strip("[]"), int(port)
    return host.strip("[]"), 80


def end_client(span: Span | None, status: int | None, error: str | None) -> None:
    """Finish a CLIENT span from :meth:`RequestTrace.client_attempt` (None: nothing to do).

    ``status`` is the upstream's response status, if one came; ``error`` the
    kind of failure (``connect_error``, ``timeout``, ...), if any.
    """
    if span is None:
        return
    attributes: dict[str, AttributeValue] = {}
    if status is not None:
        attributes["http.response.status_code"] = status
        if status >= 500 and error is None:
            error = str(status)
    if error is not None:
        attributes["error.type"] = error
    if isinstance(span, RecordedSpan):
        if error is not None:
            span.fail()
        span.put(attributes)
    else:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)
    span.end()


def add_event(
    ex: Exchange, name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> None:
    """Add event ``name`` to the request's SERVER span, if the request is sampled.

    For breaker refusals, retries, rate-limit refusals, auth failures, injected faults:
    use the ``EVENT_*`` names of this module. Attributes must never hold a secret.
    """
    trace_ = ex.trace
    if trace_ is not None and trace_.span is not None:
        trace_.span.add_event(name, attributes)


def set_server_attribute(ex: Exchange, name: str, value: AttributeValue) -> None:
    """Set attribute ``name`` on the request's SERVER span, if the request is sampled
    (e.g. the edge cache's ``meshgate.cache.result``). Never a secret."""
    trace_ = ex.trace
    if trace_ is not None and trace_.span is not None:
        trace_.span.set_attribute(name, value)


def side_call(
    ex: Exchange, name: str, attributes: dict[str, AttributeValue]
) -> tuple[RecordedSpan | None, list[tuple[str, str]]]:
    """Start the CLIENT span of a call made for the request besides its upstream attempts
    (the edge's external authorization check), a child of the request's SERVER span, and
    return it with the headers that carry its context to the callee, so the callee's
    SERVER span is its child.

    ``attributes`` (values exactly ``str`` or ``int``, as :meth:`RecordedSpan.put` wants)
    start the span; finish it with :func:`end_client`. Not sampled: no span (None), and
    the headers name a fresh span id in the request's trace with the sampled flag 0, so
    the callee follows the request's decision. Not traced: (None, []). The headers are
    the configured formats' (``traceparent`` with W3C only; B3 too when configured);
    ``tracestate`` and ``baggage`` are not among them with W3C only: they travel as
    received, in the request's own headers, for the caller to copy."""
    trace_ = ex.trace
    if trace_ is None:
        return None, []
    return trace_.side_call(ex, name, attributes)


@contextlib.contextmanager
def child_span(
    ex: Exchange,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span | None]:
    """A child span of the request's SERVER span around the ``with`` block.

    Yields None (and costs nothing) when the request is not sampled. An
    exception leaving the block is recorded on the span and re-raised. Use
    ``SpanKind.CLIENT`` for network calls (Redis, JWKS, introspection).
    """
    trace_ = ex.trace
    if trace_ is None or trace_.span is None:
        yield None
        return
    span = trace_.span.child(name, kind, _new_span_id(), {})
    if attributes:
        span.set_attributes(attributes)
    try:
        yield span
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__qualname__)
        span.fail()
        raise
    finally:
        span.end()
