"""Faults in the app's calls, per destination: the filter's choice of policy, the sidecar's
``outbound.faults`` keys, and the reload that swaps the filter and rebuilds the chain."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from mesh.exchange import Exchange
from mesh.faults.injection import FaultInjection
from mesh.faults.metrics import FaultMetrics
from sidecar.config import SidecarConfig
from sidecar.filters.faults import OutboundFaultFilter, OutboundFaults
from sidecar.reloading import OutboundFaultsReload
from tests.mesh.telemetry.support import make_exchange


def sidecar_config(faults: dict[str, Any]) -> SidecarConfig:
    return SidecarConfig.model_validate(
        {"service": {"name": "orders"}, "outbound": {"faults": faults}}
    )


async def passed(ex: Exchange) -> web.StreamResponse:
    return web.Response(text="passed")


def to(service: str) -> Exchange:
    ex = make_exchange(path="/stock/7")
    ex.service, ex.route = service, f"outbound:{service}"
    return ex


def faults(config: SidecarConfig, registry: CollectorRegistry | None = None) -> OutboundFaults:
    injection = FaultInjection(FaultMetrics(registry or CollectorRegistry()))
    return OutboundFaults(config.outbound.faults, injection, roll=lambda: 0.0)


async def status_to(outbound: OutboundFaults, service: str) -> int:
    [flt] = outbound.filters()
    assert isinstance(flt, OutboundFaultFilter)
    return (await flt(to(service), passed)).status


async def test_each_service_gets_its_own_faults_and_others_none() -> None:
    registry = CollectorRegistry()
    outbound = faults(
        sidecar_config(
            {"inventory": {"abort": {"status": 503}}, "payments": {"abort": {"status": 502}}}
        ),
        registry,
    )
    assert await status_to(outbound, "inventory") == 503
    assert await status_to(outbound, "payments") == 502
    assert await status_to(outbound, "users") == 200
    labels = {"kind": "abort", "service": "inventory", "route": "outbound:inventory"}
    assert registry.get_sample_value("meshgate_faults_injected_total", labels) == 1


async def test_star_covers_every_service_without_an_entry_of_its_own() -> None:
    outbound = faults(
        sidecar_config({"*": {"abort": {"status": 500}}, "inventory": {"delay": {"fixed": "1ms"}}})
    )
    assert await status_to(outbound, "users") == 500
    assert await status_to(outbound, "inventory") == 200  # its own entry, not merged with "*"


def test_no_faults_no_filter() -> None:
    assert faults(sidecar_config({})).filters() == []


@pytest.mark.parametrize("name", ["", "-x", "a b", "inventory/v2", "**"])
def test_a_key_that_names_no_service_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        sidecar_config({name: {"abort": {"status": 503}}})
    assert "outbound.faults" in str(info.value).replace("\n", ".")


def test_a_bad_block_is_refused_at_its_service() -> None:
    with pytest.raises(ValidationError) as info:
        sidecar_config({"inventory": {"delay": {"fixed": "1s", "percent": 200}}})
    assert info.value.errors()[0]["loc"] == ("outbound", "faults", "inventory", "delay", "percent")


async def test_a_reload_swaps_the_filter_and_rebuilds_the_chain() -> None:
    outbound = faults(sidecar_config({}))
    rebuilt: list[int] = []
    outbound.on_change = lambda: rebuilt.append(len(outbound.filters()))
    reload = OutboundFaultsReload(outbound).prepare_reload(
        sidecar_config({"inventory": {"abort": {"status": 504}}})
    )
    assert reload.keys == ("outbound.faults",)
    assert outbound.filters() == [] and rebuilt == []  # nothing before the commit
    reload.commit()
    assert rebuilt == [1] and await status_to(outbound, "inventory") == 504
    OutboundFaultsReload(outbound).prepare_reload(sidecar_config({})).commit()
    assert rebuilt == [1, 0] and outbound.filters() == []
