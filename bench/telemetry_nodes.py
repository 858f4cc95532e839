"""Edge configs for the telemetry scenarios: tracing at a given sampling ratio, access logs.

Spans are exported for real, over OTLP/HTTP, to the upstream nginx (which
answers ``POST /v1/traces`` with a 200 like any other request): the
measurement includes the batch processor and the exporter's thread, not
only the spans' creation. Access logs are off unless the scenario is about
them, so each scenario measures one thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.context import BenchContext

NO_ACCESS_LOG: dict[str, Any] = {"enabled": False}


def tracing_edge_config(
    ratio: float, *, export: bool = True
) -> Callable[[BenchContext], dict[str, Any]]:
    """Tracing on, sampling ``ratio`` of the requests, exported to the upstream nginx.

    Without ``export``, no OTLP endpoint: sampled requests' spans are
    recorded and ended, then dropped (no batch processor, no exporter
    thread), which separates what recording costs from what exporting does;
    unless ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set where the bench runs (the
    edge would read it).
    """

    def config(ctx: BenchContext) -> dict[str, Any]:
        tracing: dict[str, Any] = {"sampler_ratio": ratio}
        if export:
            tracing["otlp_endpoint"] = f"http://127.0.0.1:{ctx.upstream_port}"
        return {"telemetry": {"tracing": tracing, "access_log": NO_ACCESS_LOG}}

    return config


NO_TELEMETRY: dict[str, Any] = {
    "telemetry": {"tracing": {"enabled": False}, "access_log": NO_ACCESS_LOG}
}
"""Neither tracing nor access logs: the reference the telemetry scenarios compare with."""


def access_log_edge_config(ctx: BenchContext) -> dict[str, Any]:
    """Tracing off, access log on, to a file in the work directory."""
    return {
        "telemetry": {
            "tracing": {"enabled": False},
            "access_log": {"path": str(ctx.path("edge-access.log"))},
        }
    }
