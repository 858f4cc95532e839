"""Faults at edge routes: the feature's filter, only where a route has a ``fault``, right
before the proxy; reloads; the control headers the ingress strips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from edge.config import EdgeConfig
from edge.faults.feature import FaultsFeature
from edge.filters.routing import RoutingFilter
from edge.gateway import config_routes
from edge.routes import RouteTable
from mesh.chain import Handler, build_chain
from mesh.exchange import Exchange
from mesh.faults.injection import FAULT_HEADER, FaultInjection
from mesh.faults.metrics import FaultMetrics
from mesh.faults.policy import ABORT_HEADER, DELAY_HEADER
from tests.mesh.faults.support import Clock
from tests.mesh.telemetry.support import make_exchange

ORDERS = {"prefix": "/api/orders", "service": "orders"}
USERS = {"prefix": "/api/users", "service": "users"}


def config(*routes: dict[str, Any]) -> EdgeConfig:
    return EdgeConfig.model_validate({"routes": list(routes)})


class Passed:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, ex: Exchange) -> web.StreamResponse:
        self.calls += 1
        return web.Response(text="passed")


def chain(edge: EdgeConfig, feature: FaultsFeature, terminal: Handler) -> Handler:
    routing = RoutingFilter(RouteTable(config_routes(edge)), 5.0)
    return build_chain([routing, *feature.before_proxy()], terminal)


async def call(handler: Handler, path: str, headers: dict[str, str] | None = None) -> Any:
    ex = make_exchange(headers, path=path)
    response = await handler(ex)
    return response, ex


def test_no_fault_on_any_route_adds_no_filter() -> None:
    feature = FaultsFeature(config(ORDERS, USERS), CollectorRegistry())
    assert feature.before_proxy() == []
    assert feature.before_routing() == [] and feature.after_routing() == []


async def test_a_routes_abort_answers_for_it_and_other_routes_are_untouched() -> None:
    registry = CollectorRegistry()
    edge = config({**ORDERS, "fault": {"abort": {"status": 503, "percent": 50}}}, USERS)
    feature = FaultsFeature(edge, registry, roll=lambda: 0.25)
    passed = Passed()
    handler = chain(edge, feature, passed)
    response, ex = await call(handler, "/api/orders/7")
    assert response.status == 503
    body = json.loads(bytes(response.body))
    assert body["type"].endswith("/fault-injected") and body["service"] == "orders"
    assert (FAULT_HEADER, "abort") in ex.response_headers
    response, ex = await call(handler, "/api/users/7")
    assert response.status == 200 and passed.calls == 1
    assert not any(name == FAULT_HEADER for name, _ in ex.response_headers)
    labels = {"kind": "abort", "service": "orders", "route": "orders:/api/orders"}
    assert registry.get_sample_value("meshgate_faults_injected_total", labels) == 1


async def test_a_delay_longer_than_the_routes_timeout_ends_at_it() -> None:
    clock = Clock()
    injection = FaultInjection(FaultMetrics(CollectorRegistry()), clock=clock, sleep=clock.sleep)
    edge = config({**ORDERS, "timeout": "1s", "fault": {"delay": {"fixed": "5s"}}})
    feature = FaultsFeature(edge, CollectorRegistry(), injection=injection)
    passed = Passed()
    ex = make_exchange(path="/api/orders")
    ex.started = clock()
    response = await chain(edge, feature, passed)(ex)
    assert response.status == 504 and clock.slept == [1.0] and passed.calls == 0


async def test_client_headers_count_only_on_a_route_that_allows_them() -> None:
    edge = config(
        {**ORDERS, "fault": {"headers": True}},
        {**USERS, "fault": {"delay": {"fixed": "1ms"}}},
    )
    handler = chain(edge, FaultsFeature(edge, CollectorRegistry()), Passed())
    response, _ = await call(handler, "/api/orders", {ABORT_HEADER: "418"})
    assert response.status == 418
    response, _ = await call(handler, "/api/users", {ABORT_HEADER: "418"})
    assert response.status == 200


def test_the_ingress_strips_the_control_headers_from_every_client_request() -> None:
    feature = FaultsFeature(config(), CollectorRegistry())
    assert feature.strip_headers() == {DELAY_HEADER.lower(), ABORT_HEADER.lower()}


async def test_a_reload_adds_and_removes_a_routes_fault() -> None:
    feature = FaultsFeature(config(ORDERS), CollectorRegistry())
    assert feature.before_proxy() == []
    with_fault = config({**ORDERS, "fault": {"abort": {"status": 500}}})
    reload = feature.prepare_reload(with_fault)
    assert feature.before_proxy() == []  # nothing until the commit
    reload.commit()
    response, _ = await call(chain(with_fault, feature, Passed()), "/api/orders")
    assert response.status == 500
    feature.prepare_reload(config(ORDERS)).commit()
    assert feature.before_proxy() == []


def test_a_bad_fault_is_refused_at_its_route() -> None:
    with pytest.raises(ValidationError) as info:
        config({**ORDERS, "fault": {"abort": {"status": 200}}})
    assert info.value.errors()[0]["loc"][:4] == ("routes", 0, "fault", "abort")
