"""The telemetry feature of the edge: tracing and access logs, first in the pipeline.

- before routing, first of all features (so right after the metrics filter):
  :class:`mesh.filters.tracing.TracingFilter` (a SERVER span per request,
  ``traceresponse`` header, ``http.route`` = the matched route's prefix),
  then :class:`mesh.filters.access_log.AccessLogFilter`;
- ``start`` logs where spans go; ``stop`` (the last feature stopped, after the
  listener has drained) writes pending access-log lines and flushes the
  pending spans to the OTLP endpoint.

Settings come from ``telemetry`` in the config and the OTEL_* variables (see
:mod:`mesh.telemetry.tracing_settings`); ``meshgate-edge`` is the default
service name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from edge.feature import BaseFeature
from mesh.chain import Filter
from mesh.exchange import Exchange
from mesh.filters.access_log import AccessLogFilter
from mesh.filters.tracing import TracingFilter
from mesh.telemetry.access_log import AccessLog
from mesh.telemetry.config import TelemetryConfig
from mesh.telemetry.tracing import Tracing
from mesh.telemetry.tracing_settings import resolve_tracing

log = logging.getLogger(__name__)

SERVICE_NAME = "meshgate-edge"


def route_prefix(ex: Exchange) -> str | None:
    """``http.route`` at the edge: the prefix of the matched route, if any."""
    route = ex.attrs.get("route")
    prefix = getattr(route, "prefix", None)
    return prefix if isinstance(prefix, str) else None


class TelemetryFeature(BaseFeature):
    name = "telemetry"

    def __init__(
        self,
        config: TelemetryConfig,
        env: Mapping[str, str] = os.environ,
        *,
        install_global: bool = True,
    ) -> None:
        """Raises ConfigError when the access log file cannot be opened."""
        settings = resolve_tracing(config.tracing, env, SERVICE_NAME)
        self.tracing = (
            Tracing(settings, install_global=install_global) if settings.enabled else None
        )
        self.access_log = AccessLog.open(config.access_log, "edge")
        self._log_selection = config.access_log.selection()

    def before_routing(self) -> list[Filter]:
        filters: list[Filter] = []
        if self.tracing is not None:
            filters.append(TracingFilter(self.tracing, traceresponse=True, http_route=route_prefix))
        if self.access_log is not None:
            filters.append(AccessLogFilter(self.access_log, self._log_selection))
        return filters

    async def start(self) -> None:
        log.info("%s", self.tracing.describe() if self.tracing is not None else "tracing is off")

    async def stop(self) -> None:
        if self.access_log is not None:
            self.access_log.close()
        if self.tracing is not None:
            self.tracing.shutdown()
