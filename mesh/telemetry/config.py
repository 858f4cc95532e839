"""Telemetry settings shared by the edge and the sidecar: tracing and access logs.

Tracing keys left null fall back to the standard OpenTelemetry variables
(``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...), then to
meshgate's defaults; a key set in the file wins over the variable. The
resolution itself is :func:`mesh.telemetry.tracing_settings.resolve_tracing`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mesh.config.types import Duration, Frozen
from mesh.telemetry.log_selection import LogSelection, log_selection

SamplerName = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
"""The samplers of ``OTEL_TRACES_SAMPLER`` that meshgate implements."""

PropagatorName = Literal["tracecontext", "baggage", "b3", "b3multi"]
"""The propagators of ``OTEL_PROPAGATORS`` that meshgate implements."""


class TracingConfig(Frozen):
    enabled: bool = True
    """False: no spans, no context handling; trace headers pass through untouched."""
    service_name: str | None = None
    """``service.name`` of the spans; null: ``OTEL_SERVICE_NAME``, else ``meshgate-edge``
    or ``<service>-sidecar``."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP base URL (``/v1/traces`` is appended); null: the OTEL_EXPORTER_OTLP_*
    variables; none at all: spans are not exported (context still travels)."""
    sampler: SamplerName | None = None
    """null: ``OTEL_TRACES_SAMPLER``, else ``parentbased_traceidratio``."""
    sampler_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of new traces sampled; null: ``OTEL_TRACES_SAMPLER_ARG``, else 0.1."""
    propagators: tuple[PropagatorName, ...] | None = None
    """Header formats read and written; null: ``OTEL_PROPAGATORS``, else tracecontext
    and baggage. ``b3`` / ``b3multi`` add Zipkin's single / multi-header B3."""
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    """Added to (and overriding) ``OTEL_RESOURCE_ATTRIBUTES``."""

    @field_validator("propagators")
    @classmethod
    def _not_empty(
        cls, value: tuple[PropagatorName, ...] | None
    ) -> tuple[PropagatorName, ...] | None:
        if value is not None and not value:
            raise ValueError("list at least one propagator, or null for the default")
        return value


class AccessLogConfig(Frozen):
    enabled: bool = True
    path: str = "-"
    """``-`` for standard output, ``stderr``, or a file (appended to)."""
    buffer_bytes: int = Field(default=65536, ge=0, le=16 * 1024 * 1024)
    """Lines are written once this much is pending (0: every line at once)."""
    flush_interval: Duration = 1.0
    """Pending lines are written at least this often."""
    sample: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of requests logged, of those ``keep_status_from`` and ``keep_slower_than``
    do not keep (1: every request; 0: only those they keep)."""
    keep_status_from: int | None = Field(default=None, ge=100, le=599)
    """Every answer with this status or above is logged, whatever ``sample`` says (e.g.
    400: every refusal and failure). null: no such rule."""
    keep_slower_than: Duration | None = None
    """Every request that took this long or longer is logged, whatever ``sample`` says.
    null: no such rule."""

    def selection(self) -> LogSelection | None:
        """Which requests get a line; None: every one."""
        return log_selection(self.sample, self.keep_status_from, self.keep_slower_than)


class TelemetryConfig(Frozen):
    tracing: TracingConfig = TracingConfig()
    access_log: AccessLogConfig = AccessLogConfig()
