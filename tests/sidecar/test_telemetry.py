"""The sidecar's telemetry: filters for both listeners, health checks untraced."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mesh.exchange import Exchange
from mesh.filters.access_log import AccessLogFilter
from mesh.filters.tracing import TracingFilter
from sidecar.config import SidecarConfig
from sidecar.telemetry import SidecarTelemetry
from tests.mesh.telemetry.support import make_exchange


def config(tmp_path: Path) -> SidecarConfig:
    return SidecarConfig.model_validate(
        {
            "service": {"name": "orders"},
            "app": {"health_path": "/healthz"},
            "telemetry": {
                "tracing": {"sampler_ratio": 1.0},
                "access_log": {"path": str(tmp_path / "a.log"), "buffer_bytes": 0},
            },
        }
    )


async def test_both_listeners_get_tracing_then_access_log(tmp_path: Path) -> None:
    t = SidecarTelemetry(config(tmp_path), env={}, install_global=False)
    assert t.tracing is not None and t.tracing.settings.service_name == "orders-sidecar"
    for filters in (t.inbound_filters(), t.outbound_filters()):
        assert [type(f) for f in filters] == [TracingFilter, AccessLogFilter]

    async def app(ex: Exchange) -> web.StreamResponse:
        return web.Response()

    health = make_exchange(path="/healthz")
    await t.inbound_filters()[0](health, app)
    assert health.trace is None  # Consul's checks make no traces
    other = make_exchange(path="/orders/7")
    await t.outbound_filters()[0](other, app)
    assert other.trace is not None and other.trace.sampled
    t.close()
    t.close()  # idempotent
