"""Telemetry settings shared by the edge and the sidecar: tracing, access logs."""

from __future__ import annotations

from mesh.config.types import Frozen


class TelemetryConfig(Frozen):
    """Tracing and access-log settings (filled in by the telemetry work)."""
