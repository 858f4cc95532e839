"""Telemetry of one upstream attempt: its CLIENT span and the upstream duration histogram.

The proxies (:class:`mesh.proxy.Proxy`, the sidecar's resilient proxy) open
one :class:`UpstreamAttempt` per attempt, *before* they build the request,
because opening it writes the attempt's trace context, which the request
carries (:meth:`mesh.exchange.Exchange.header_block`). They then report exactly one of
:meth:`~UpstreamAttempt.responded` or :meth:`~UpstreamAttempt.failed`, and
call :meth:`~UpstreamAttempt.end` once the response has been streamed (or
dropped). ``end`` is idempotent, so a ``finally`` may call it too. An attempt dropped
unused (a hedged call's loser) is marked :meth:`~UpstreamAttempt.abandoned` before it ends.
"""

from __future__ import annotations

import time

from opentelemetry.trace import Span

from mesh.exchange import Exchange
from mesh.snapshot import Instance
from mesh.telemetry.metrics import ProxyMetrics, status_class, trace_exemplar
from mesh.telemetry.tracing import end_client
from mesh.tunnel import TunnelObserver

_UNREPORTED = "aborted"
"""``error.type`` of an attempt that ended with neither a response nor a failure (cancelled)."""


class UpstreamTelemetry:
    """Creates :class:`UpstreamAttempt` objects; ``metrics`` None records no histogram."""

    def __init__(self, metrics: ProxyMetrics | None = None) -> None:
        self._metrics = metrics
        self._role = metrics.role if metrics is not None else ""

    def attempt(self, ex: Exchange, instance: Instance, number: int) -> UpstreamAttempt:
        """Open attempt ``number`` (from 1) of ``ex`` to ``instance``."""
        trace = ex.trace
        span = trace.client_attempt(ex, instance, number) if trace is not None else None
        return UpstreamAttempt(self, ex.service or instance.service, span)

    def tunnel(self, ex: Exchange) -> TunnelObserver:
        """What records a tunnel of ``ex`` once its upstream switched protocols."""
        if self._metrics is None:
            return _UNCOUNTED
        return self._metrics.tunnel_observer(ex.service or "none")

    def _observe(self, service: str, outcome: str, seconds: float, span: Span | None) -> None:
        """The attempt's duration; a sampled one's CLIENT span as its exemplar."""
        metrics = self._metrics
        if metrics is None:
            return
        if span is None:
            metrics.observe_upstream_duration(self._role, service, outcome)(seconds)
        else:
            context = span.get_span_context()
            exemplar = trace_exemplar(context.trace_id, context.span_id)
            metrics.observe_upstream_duration_traced(self._role, service, outcome)(
                seconds, exemplar
            )


class _Uncounted:
    """A tunnel observer that records nothing (no metrics configured)."""

    def opened(self) -> None:
        pass

    def closed(self, reason: str, to_upstream: int, to_client: int) -> None:
        pass


_UNCOUNTED = _Uncounted()


class UpstreamAttempt:
    """One attempt in flight; see the module docstring for the calling contract."""

    __slots__ = ("_error", "_owner", "_service", "_span", "_started", "_status")

    def __init__(self, owner: UpstreamTelemetry, service: str, span: Span | None) -> None:
        self._owner = owner
        self._service = service
        self._span = span
        self._status: int | None = None
        self._error: str | None = None
        self._started = time.monotonic()

    def responded(self, status: int) -> None:
        """The response headers arrived with ``status``."""
        self._status = status
        elapsed = time.monotonic() - self._started
        self._owner._observe(self._service, status_class(status), elapsed, self._span)

    def failed(self, error_type: str) -> None:
        """No usable response: ``error_type`` is e.g. ``connect_error``, ``timeout``, ``reset``."""
        self._error = error_type
        elapsed = time.monotonic() - self._started
        self._owner._observe(self._service, error_type, elapsed, self._span)

    def abandoned(self, error_type: str) -> None:
        """Dropped before its answer was used, for ``error_type`` (e.g. ``hedge_lost``:
        another attempt of the call answered first): the CLIENT span's error type when
        it ends, in place of any other. Records no duration: the attempt did not finish
        (or, having answered, was already recorded)."""
        self._error = error_type

    def end(self) -> None:
        """Close the CLIENT span (once); an attempt never reported counts as aborted."""
        span, self._span = self._span, None
        if span is None:
            return
        error = self._error
        if error is None and self._status is None:
            error = _UNREPORTED
        end_client(span, self._status, error)
