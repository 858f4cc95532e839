"""The edge's telemetry feature: which filters it contributes, in which order."""

from __future__ import annotations

from pathlib import Path

from edge.routes import make_route
from edge.telemetry_feature import TelemetryFeature, route_prefix
from mesh.filters.access_log import AccessLogFilter
from mesh.filters.tracing import TracingFilter
from mesh.telemetry.config import TelemetryConfig
from tests.mesh.telemetry.support import make_exchange


def feature(tmp_path: Path, **config: object) -> TelemetryFeature:
    base: dict[str, object] = {"access_log": {"path": str(tmp_path / "access.log")}}
    return TelemetryFeature(
        TelemetryConfig.model_validate({**base, **config}), env={}, install_global=False
    )


async def test_tracing_then_access_log(tmp_path: Path) -> None:
    f = feature(tmp_path)
    assert [type(x) for x in f.before_routing()] == [TracingFilter, AccessLogFilter]
    assert f.tracing is not None and f.tracing.settings.service_name == "meshgate-edge"
    await f.start()
    await f.stop()


async def test_each_can_be_turned_off(tmp_path: Path) -> None:
    no_tracing = feature(tmp_path, tracing={"enabled": False})
    assert [type(x) for x in no_tracing.before_routing()] == [AccessLogFilter]
    f = feature(tmp_path, access_log={"enabled": False})
    assert [type(x) for x in f.before_routing()] == [TracingFilter]
    none = feature(tmp_path, tracing={"enabled": False}, access_log={"enabled": False})
    assert none.before_routing() == []
    await none.stop()


def test_http_route_is_the_matched_prefix() -> None:
    ex = make_exchange()
    assert route_prefix(ex) is None
    ex.attrs["route"] = make_route(prefix="/api/orders", service="orders", source="config")
    assert route_prefix(ex) == "/api/orders"
