"""The sidecar's tracing and access log, and the filters that put them in both chains.

Both listeners get, right after the metrics filter, a tracing filter (a
SERVER span per request when sampled; the context of every request carried
to the app or the upstream) and an access-log filter; one tracer and one
access log serve both. The inbound listener does not trace the app's health
path, which Consul requests every few seconds. The default service name is
``<service>-sidecar``; see :mod:`mesh.telemetry.tracing_settings` for the
OTEL_* variables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from mesh.chain import Filter
from mesh.filters.access_log import AccessLogFilter
from mesh.filters.tracing import TracingFilter
from mesh.telemetry.access_log import AccessLog
from mesh.telemetry.tracing import Tracing
from mesh.telemetry.tracing_settings import resolve_tracing
from sidecar.config import SidecarConfig

log = logging.getLogger(__name__)


class SidecarTelemetry:
    def __init__(
        self,
        config: SidecarConfig,
        env: Mapping[str, str] = os.environ,
        *,
        install_global: bool = True,
    ) -> None:
        """Raises ConfigError when the access log file cannot be opened."""
        t = config.telemetry
        settings = resolve_tracing(t.tracing, env, f"{config.service.name}-sidecar")
        self.tracing = (
            Tracing(settings, install_global=install_global) if settings.enabled else None
        )
        self.access_log = AccessLog.open(t.access_log, "sidecar")
        self._log_selection = t.access_log.selection()
        self._health_path = config.app.health_path

    def _filters(self, untraced: tuple[str, ...]) -> list[Filter]:
        filters: list[Filter] = []
        if self.tracing is not None:
            filters.append(TracingFilter(self.tracing, untraced_paths=untraced))
        if self.access_log is not None:
            filters.append(AccessLogFilter(self.access_log, self._log_selection))
        return filters

    def inbound_filters(self) -> list[Filter]:
        return self._filters((self._health_path,))

    def outbound_filters(self) -> list[Filter]:
        return self._filters(())

    def describe(self) -> str:
        return self.tracing.describe() if self.tracing is not None else "tracing is off"

    def close(self) -> None:
        """Write pending access-log lines and export pending spans; call after draining."""
        if self.access_log is not None:
            self.access_log.close()
        if self.tracing is not None:
            self.tracing.shutdown()
