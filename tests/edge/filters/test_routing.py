"""The routing filter's answers of its own: 404, 405, and 413 for a declared body too large;
and what it gives the route table to choose with."""

from __future__ import annotations

import json

from aiohttp import web

from edge.filters.routing import RoutingFilter
from edge.route_match import Conditions, header_condition, query_condition
from edge.routes import RouteTable, make_route
from mesh.canary import CANARY, STABLE, Canary
from mesh.exchange import Exchange
from mesh.hash_policy import HashPolicy, HashSource
from tests.mesh.telemetry.support import make_exchange

TABLE = RouteTable(
    [
        make_route(prefix="/small", service="s", source="config", max_body_size=100),
        make_route(prefix="/any", service="a", source="config"),
    ]
)


async def _passed(ex: Exchange) -> web.StreamResponse:
    return web.Response(text="passed")


async def _route(filter_: RoutingFilter, path: str, headers: dict[str, str]) -> web.Response:
    ex = make_exchange(headers, path=path, method="POST")
    response = await filter_(ex, _passed)
    assert isinstance(response, web.Response)
    return response


async def test_a_declared_body_over_the_routes_limit_gets_413_and_a_closed_connection() -> None:
    routing = RoutingFilter(TABLE, 5.0, default_max_body_size=None)
    response = await _route(routing, "/small/x", {"Content-Length": "101"})
    assert response.status == 413
    assert response.keep_alive is False
    assert response.body is not None
    problem = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert problem["type"].endswith("request-body-too-large")
    assert "101 bytes is longer than the 100 allowed" in problem["detail"]


async def test_a_405_is_the_routes_answer_and_a_404_nobodys() -> None:
    table = RouteTable([make_route(prefix="/read", service="r", source="config", methods=["GET"])])
    routing = RoutingFilter(table, 5.0)
    ex = make_exchange({}, path="/read/x", method="POST")
    response = await routing(ex, _passed)
    assert (response.status, response.headers["Allow"]) == (405, "GET")
    assert ex.route == "r:/read"  # counted and logged under its route
    missing = make_exchange({}, path="/elsewhere", method="GET")
    assert (await routing(missing, _passed)).status == 404
    assert missing.route is None


async def test_a_body_within_the_limit_and_a_route_without_one_pass() -> None:
    routing = RoutingFilter(TABLE, 5.0, default_max_body_size=None)
    assert (await _route(routing, "/small/x", {"Content-Length": "100"})).text == "passed"
    assert (await _route(routing, "/any/x", {"Content-Length": "10000000"})).text == "passed"


async def test_the_default_applies_where_the_route_has_no_limit_of_its_own() -> None:
    routing = RoutingFilter(TABLE, 5.0, default_max_body_size=1000)
    assert (await _route(routing, "/any/x", {"Content-Length": "1001"})).status == 413
    assert (await _route(routing, "/any/x", {"Content-Length": "1000"})).text == "passed"
    # The route's own limit wins, lower or higher than the default.
    assert (await _route(routing, "/small/x", {"Content-Length": "101"})).status == 413


async def test_the_limit_travels_on_the_exchange_for_a_chunked_body() -> None:
    routing = RoutingFilter(TABLE, 5.0, default_max_body_size=None)
    ex = make_exchange({"Transfer-Encoding": "chunked"}, path="/small/x", method="POST")
    seen: list[int | None] = []

    async def record(ex: Exchange) -> web.StreamResponse:
        seen.append(ex.max_body_size)
        return web.Response()

    await routing(ex, record)
    assert seen == [100]  # no length to check now: the proxy bounds it as it streams


CANARY_TABLE = RouteTable(
    [
        make_route(prefix="/c", service="c", source="config", canary=Canary("v2", 20, "X-Canary")),
        make_route(prefix="/plain", service="p", source="config"),
    ]
)


async def test_a_canary_route_marks_each_request_with_its_side() -> None:
    told: list[tuple[str, str]] = []
    rolls = iter([0.1, 0.5, 0.99, 0.0])
    routing = RoutingFilter(
        CANARY_TABLE, 5.0, on_canary=lambda r, s: told.append((r, s)), roll=lambda: next(rolls)
    )
    sides = []
    for headers in ({}, {}, {"X-Canary": "always"}, {"X-Canary": "never"}):
        ex = make_exchange(headers, path="/c/x", method="GET")
        await routing(ex, _passed)
        assert ex.canary is not None
        sides.append(ex.canary.side)
    # 0.1 < 20 %: canary; 0.5: stable; the header wins over the roll either way.
    assert sides == [CANARY, STABLE, CANARY, STABLE]
    assert told == [("c:/c", side) for side in sides]

    ex = make_exchange({}, path="/plain/x", method="GET")
    await routing(ex, _passed)
    assert ex.canary is None  # a route without one: every healthy instance
    assert len(told) == 4


CONDITIONS_TABLE = RouteTable(
    [
        make_route(prefix="/o", service="orders", source="config"),
        make_route(
            prefix="/o",
            service="orders-v2",
            source="config",
            conditions=Conditions((header_condition("X-Api-Version", "exact", "2"),)),
        ),
        make_route(
            prefix="/o",
            service="orders-debug",
            source="config",
            conditions=Conditions(query=(query_condition("debug", "exact", "1"),)),
        ),
    ]
)


async def test_the_clients_headers_and_raw_query_choose_among_routes_with_conditions() -> None:
    routing = RoutingFilter(CONDITIONS_TABLE, 5.0)
    for headers, query, service in (
        ({"x-api-version": "2"}, "", "orders-v2"),
        ({}, "a=b&debug=%31", "orders-debug"),
        ({}, "debug=2", "orders"),
        ({"X-Api-Version": "1"}, "", "orders"),
    ):
        ex = make_exchange(headers, path="/o/7", method="GET")
        ex.query = query  # as the ingress leaves it: raw, after the "?"
        await routing(ex, _passed)
        assert ex.service == service, (headers, query)


async def test_the_header_changes_before_routing_do_not_choose_a_route() -> None:
    # Matching reads the request as the client sent it, not the headers to be sent on.
    routing = RoutingFilter(CONDITIONS_TABLE, 5.0)
    ex = make_exchange({}, path="/o/7", method="GET")
    ex.upstream_headers["X-Api-Version"] = "2"
    await routing(ex, _passed)
    assert ex.service == "orders"


async def test_the_routes_hash_policy_travels_on_the_exchange() -> None:
    policy = HashPolicy((HashSource("header", "X-User-Id"),))
    table = RouteTable(
        [
            make_route(prefix="/sticky", service="s", source="config", hash_policy=policy),
            make_route(prefix="/plain", service="s", source="config"),
        ]
    )
    routing = RoutingFilter(table, 5.0)
    ex = make_exchange({"X-User-Id": "u7"}, path="/sticky/x", method="GET")
    await routing(ex, _passed)
    assert ex.hash_policy is policy
    ex = make_exchange({"X-User-Id": "u7"}, path="/plain/x", method="GET")
    await routing(ex, _passed)
    assert ex.hash_policy is None
