"""The edge's route table: prefix matching, rewriting, conditions on headers and query,
precedence and conflicts (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

import edge.routes as routes_module
from edge.route_match import Condition, Conditions, header_condition, query_condition
from edge.routes import Match, Route, RouteTable, make_route
from mesh.canary import Canary
from mesh.hash_policy import HashPolicy, HashSource


def config_route(prefix: str, service: str, **kw: Any) -> Route:
    return make_route(prefix=prefix, service=service, source="config", **kw)


def consul_route(prefix: str, service: str, **kw: Any) -> Route:
    return make_route(prefix=prefix, service=service, source=f"consul:{service}", **kw)


# --- make_route -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"prefix": "/api/users", "service": "users", "source": "config"},
            Route(name="users:/api/users", prefix="/api/users", service="users", source="config"),
            id="defaults",
        ),
        pytest.param(
            {"prefix": "/api/users/", "service": "users", "source": "config"},
            Route(name="users:/api/users", prefix="/api/users", service="users", source="config"),
            id="trailing-slash-removed",
        ),
        pytest.param(
            {"prefix": "/api//", "service": "s", "source": "config"},
            Route(name="s:/api", prefix="/api", service="s", source="config"),
            id="several-trailing-slashes-removed",
        ),
        pytest.param(
            {"prefix": "/", "service": "web", "source": "config"},
            Route(name="web:/", prefix="/", service="web", source="config"),
            id="root-kept",
        ),
        pytest.param(
            {"prefix": "//", "service": "web", "source": "config"},
            Route(name="web:/", prefix="/", service="web", source="config"),
            id="slashes-only-is-root",
        ),
        pytest.param(
            {
                "prefix": "/a",
                "service": "s",
                "source": "consul:s",
                "name": "custom",
                "host": "Shop.Example.COM",
                "methods": ["get", "Post"],
                "timeout": 2.5,
            },
            Route(
                name="custom",
                prefix="/a",
                service="s",
                source="consul:s",
                host="shop.example.com",
                methods=frozenset({"GET", "POST"}),
                timeout=2.5,
            ),
            id="name-host-lowercased-methods-uppercased-timeout",
        ),
        pytest.param(
            {"prefix": "/a", "service": "s", "source": "config", "host": "", "methods": []},
            Route(name="s:/a", prefix="/a", service="s", source="config"),
            id="empty-host-and-methods-mean-any",
        ),
        pytest.param(
            {"prefix": "/a", "service": "s", "source": "config", "strip_prefix": True},
            Route(name="s:/a", prefix="/a", service="s", source="config", rewrite="/"),
            id="strip-prefix-is-rewrite-to-root",
        ),
        pytest.param(
            {"prefix": "/a", "service": "s", "source": "config", "prefix_rewrite": "/v2"},
            Route(name="s:/a", prefix="/a", service="s", source="config", rewrite="/v2"),
            id="prefix-rewrite",
        ),
    ],
)
def test_make_route(kwargs: dict[str, Any], expected: Route) -> None:
    assert make_route(**kwargs) == expected


# --- Route.matches --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "path", "matches"),
    [
        pytest.param("/api/users", "/api/users", True, id="exact"),
        pytest.param("/api/users", "/api/users/", True, id="trailing-slash"),
        pytest.param("/api/users", "/api/users/7", True, id="below"),
        pytest.param("/api/users", "/api/users/7/orders", True, id="deep-below"),
        pytest.param("/api/users", "/api/usersX", False, id="not-on-segment-boundary"),
        pytest.param("/api/users", "/api/users-v2/7", False, id="dash-not-boundary"),
        pytest.param("/api/users", "/api/user", False, id="shorter"),
        pytest.param("/api/users", "/api", False, id="parent"),
        pytest.param("/api/users", "/API/users", False, id="case-sensitive"),
        pytest.param("/api/users", "/other/api/users", False, id="not-anchored-elsewhere"),
        pytest.param("/api/users/", "/api/users", True, id="configured-with-trailing-slash"),
        pytest.param("/api/users/", "/api/usersX", False, id="trailing-slash-still-boundary"),
        pytest.param("/", "/", True, id="root-root"),
        pytest.param("/", "/anything/at/all", True, id="root-matches-all"),
    ],
)
def test_matches(prefix: str, path: str, matches: bool) -> None:
    assert config_route(prefix, "s").matches(path) is matches


# --- Route.upstream_path --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "options", "path", "expected"),
    [
        pytest.param("/api/users", {}, "/api/users/7", None, id="no-rewrite-is-none"),
        # strip_prefix
        pytest.param("/api/users", {"strip_prefix": True}, "/api/users/7", "/7", id="strip"),
        pytest.param("/api/users", {"strip_prefix": True}, "/api/users", "/", id="strip-exact"),
        pytest.param("/api/users", {"strip_prefix": True}, "/api/users/", "/", id="strip-slash"),
        pytest.param(
            "/api/users", {"strip_prefix": True}, "/api/users/7/x", "/7/x", id="strip-deep"
        ),
        pytest.param(
            "/api/users/",
            {"strip_prefix": True},
            "/api/users/7",
            "/7",
            id="strip-configured-with-slash",
        ),
        pytest.param("/", {"strip_prefix": True}, "/a/b", "/a/b", id="strip-root-unchanged"),
        # prefix_rewrite
        pytest.param(
            "/api/users", {"prefix_rewrite": "/users"}, "/api/users/7", "/users/7", id="rewrite"
        ),
        pytest.param(
            "/api/users",
            {"prefix_rewrite": "/users"},
            "/api/users",
            "/users",
            id="rewrite-exact",
        ),
        pytest.param(
            "/api/users",
            {"prefix_rewrite": "/users/"},
            "/api/users/7",
            "/users/7",
            id="rewrite-with-trailing-slash",
        ),
        pytest.param(
            "/api/users",
            {"prefix_rewrite": "/v2/people"},
            "/api/users/",
            "/v2/people/",
            id="rewrite-keeps-trailing-slash",
        ),
        pytest.param(
            "/api/users", {"prefix_rewrite": "/"}, "/api/users/7", "/7", id="rewrite-to-root"
        ),
        pytest.param("/", {"prefix_rewrite": "/v1"}, "/a/b", "/v1/a/b", id="rewrite-root"),
        pytest.param("/", {"prefix_rewrite": "/v1"}, "/", "/v1/", id="rewrite-root-root"),
    ],
)
def test_upstream_path(
    prefix: str, options: dict[str, Any], path: str, expected: str | None
) -> None:
    route = config_route(prefix, "s", **options)
    assert route.matches(path)
    assert route.upstream_path(path) == expected


def test_describe() -> None:
    route = consul_route(
        "/a",
        "s",
        host="h",
        methods=["POST", "GET"],
        strip_prefix=True,
        timeout=1.0,
        max_body_size=1024,
        canary=Canary("v2", 5.0, "X-Canary"),
    )
    assert route.describe() == {
        "name": "s:/a",
        "prefix": "/a",
        "exact": False,
        "service": "s",
        "source": "consul:s",
        "host": "h",
        "methods": ["GET", "POST"],
        "rewrite": "/",
        "timeout": 1.0,
        "max_body_size": 1024,
        "canary": {"tag": "v2", "weight": 5.0, "header": "X-Canary"},
        "match": None,
        "mirror": None,
        "hash_policy": None,
        "retries": None,
        "cache": None,
        "ext_authz": None,
    }


def test_describe_shows_the_hash_policy() -> None:
    policy = HashPolicy((HashSource("header", "X-User-Id"), HashSource("source_ip")))
    route = config_route("/a", "s", hash_policy=policy)
    assert route.describe()["hash_policy"] == [{"header": "X-User-Id"}, {"source_ip": True}]


def test_describe_shows_the_conditions() -> None:
    route = config_route(
        "/a",
        "s",
        conditions=Conditions(
            headers=(header_condition("X-Api-Version", "exact", "2"),),
            query=(query_condition("debug", "present"), query_condition("trace", "absent")),
        ),
    )
    assert route.describe()["match"] == {
        "headers": [{"name": "x-api-version", "exact": "2"}],
        "query": [{"name": "debug", "present": True}, {"name": "trace", "present": False}],
    }


def test_make_route_takes_no_conditions_as_none() -> None:
    assert config_route("/a", "s", conditions=Conditions()).conditions is None
    assert config_route("/a", "s", conditions=Conditions()) == config_route("/a", "s")


# --- RouteTable.match -----------------------------------------------------------------------

TABLE = RouteTable(
    [
        config_route("/", "web"),
        config_route("/api", "api"),
        config_route("/api/users", "users"),
        config_route("/api/users/admin", "admin", methods=["GET"]),
        config_route("/api/orders", "orders", methods=["GET", "POST"]),
        config_route("/api", "shop-api", host="shop.example.com"),
        config_route("/", "shop-web", host="Shop.Example.com"),
        config_route("/api/users", "v6-users", host="[::1]"),
    ]
)


@pytest.mark.parametrize(
    ("host", "path", "method", "service", "allowed"),
    [
        pytest.param(None, "/api/users/7", "GET", "users", True, id="longest-prefix"),
        pytest.param(None, "/api/users", "GET", "users", True, id="exact-prefix"),
        pytest.param(None, "/api/usersX", "GET", "api", True, id="boundary-falls-back"),
        pytest.param(None, "/api/users/admin/1", "GET", "admin", True, id="deepest"),
        pytest.param(None, "/api/users/admin/1", "DELETE", "admin", False, id="method-405"),
        pytest.param(None, "/api/orders", "POST", "orders", True, id="method-allowed"),
        pytest.param(None, "/api/orders", "PUT", "orders", False, id="method-not-listed"),
        pytest.param(None, "/api/orders", "get", "orders", False, id="method-is-case-sensitive"),
        pytest.param(None, "/api/other", "GET", "api", True, id="middle-prefix"),
        pytest.param(None, "/static/app.js", "GET", "web", True, id="root-fallback"),
        pytest.param("unknown.example.com", "/api/x", "GET", "api", True, id="unknown-host"),
        pytest.param("shop.example.com", "/api/users/7", "GET", "shop-api", True, id="host-first"),
        pytest.param("shop.example.com", "/api", "GET", "shop-api", True, id="host-exact"),
        pytest.param(
            "shop.example.com",
            "/static",
            "GET",
            "shop-web",
            True,
            id="host-root-beats-hostless-longer",
        ),
        pytest.param("SHOP.example.com", "/api/x", "GET", "shop-api", True, id="host-any-case"),
        pytest.param("shop.example.com:8443", "/api/x", "GET", "shop-api", True, id="host-port"),
        pytest.param("[::1]:8443", "/api/users/1", "GET", "v6-users", True, id="ipv6-host-port"),
        pytest.param("[::1]", "/api/users/1", "GET", "v6-users", True, id="ipv6-host"),
        pytest.param("[::1]:8443", "/api/x", "GET", "api", True, id="ipv6-host-falls-back"),
        pytest.param("", "/api/x", "GET", "api", True, id="empty-host"),
    ],
)
def test_match(host: str | None, path: str, method: str, service: str, allowed: bool) -> None:
    match = TABLE.match(host, path, method)
    assert match.route is not None
    assert match.route.service == service
    assert match.method_allowed is allowed


@pytest.mark.parametrize(
    ("routes", "host", "path"),
    [
        pytest.param([], None, "/", id="empty-table"),
        pytest.param([config_route("/api", "api")], None, "/apix", id="no-boundary-match"),
        pytest.param([config_route("/api", "api")], None, "/", id="root-unrouted"),
        pytest.param(
            [config_route("/api", "api", host="a.example")],
            "b.example",
            "/api",
            id="other-host-only",
        ),
        pytest.param(
            [config_route("/api", "api", host="a.example")], None, "/api", id="no-host-header"
        ),
    ],
)
def test_no_match(routes: list[Route], host: str | None, path: str) -> None:
    assert RouteTable(routes).match(host, path, "GET") == Match(None)


def test_no_match_is_method_allowed() -> None:
    # 404, not 405: there is no route to forbid the method.
    assert RouteTable([]).match(None, "/", "DELETE").method_allowed is True


def test_routes_order_host_first_then_longest() -> None:
    assert [(r.host, r.prefix) for r in TABLE.routes] == [
        ("[::1]", "/api/users"),
        ("shop.example.com", "/api"),
        ("shop.example.com", "/"),
        (None, "/api/users/admin"),
        (None, "/api/orders"),
        (None, "/api/users"),
        (None, "/api"),
        (None, "/"),
    ]


def test_services() -> None:
    assert TABLE.services() == {
        "web",
        "api",
        "users",
        "admin",
        "orders",
        "shop-api",
        "shop-web",
        "v6-users",
    }


# --- conflicts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routes", "winner", "ignored"),
    [
        pytest.param(
            [consul_route("/api/users", "users-meta"), config_route("/api/users", "zz-config")],
            "zz-config",
            ["users-meta"],
            id="config-beats-consul-regardless-of-name",
        ),
        pytest.param(
            [consul_route("/api/users", "b-users"), consul_route("/api/users", "a-users")],
            "a-users",
            ["b-users"],
            id="consul-service-name-order",
        ),
        pytest.param(
            [
                consul_route("/api/users/", "c"),
                consul_route("/api/users", "b"),
                config_route("/api/users", "z"),
            ],
            "z",
            ["b", "c"],
            id="three-way-trailing-slash-is-same-prefix",
        ),
        pytest.param(
            [config_route("/a", "b-svc"), config_route("/a", "a-svc")],
            "a-svc",
            ["b-svc"],
            id="two-config-routes-name-order",
        ),
        pytest.param(
            [
                consul_route("/a", "b", host="h.example"),
                consul_route("/a", "a", host="H.EXAMPLE"),
            ],
            "a",
            ["b"],
            id="same-host-any-case",
        ),
    ],
)
def test_conflicts(routes: list[Route], winner: str, ignored: list[str]) -> None:
    table = RouteTable(routes)
    assert len(table.routes) == 1
    assert table.routes[0].service == winner
    host = table.routes[0].host
    match = table.match(host, table.routes[0].prefix + "/x", "GET")
    assert match.route is not None and match.route.service == winner
    assert [c["ignored"]["service"] for c in table.conflicts] == ignored
    for conflict in table.conflicts:
        assert conflict["winner"]["service"] == winner
        assert conflict["prefix"] == table.routes[0].prefix
        assert conflict["host"] == host
        assert conflict["rule"] == "config beats consul meta; then service name order"


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param(
            [config_route("/a", "x"), config_route("/a", "y", host="h")], id="different-host"
        ),
        pytest.param([config_route("/a", "x"), config_route("/a/b", "y")], id="different-prefix"),
        pytest.param([consul_route("/a", "x"), consul_route("/ab", "y")], id="not-a-prefix-clash"),
    ],
)
def test_no_conflict(routes: list[Route]) -> None:
    table = RouteTable(routes)
    assert table.conflicts == ()
    assert len(table.routes) == 2


def test_describe_table() -> None:
    table = RouteTable([config_route("/a", "x"), consul_route("/a", "y")])
    view = table.describe({"x": [{"id": "x-1"}]})
    assert [r["service"] for r in view["routes"]] == ["x"]
    assert view["routes"][0]["instances"] == [{"id": "x-1"}]
    assert len(view["conflicts"]) == 1
    assert RouteTable([config_route("/b", "z")]).describe({})["routes"][0]["instances"] == []


# --- conditions on headers and query --------------------------------------------------------


def when(*headers: Condition, query: tuple[Condition, ...] = ()) -> Conditions:
    return Conditions(headers, query)


V2 = when(header_condition("X-Api-Version", "exact", "2"))
DEBUG = when(query=(query_condition("debug", "exact", "1"),))
BETA = header_condition("X-Beta", "present")

CONDITIONS_TABLE = RouteTable(
    [
        config_route("/", "web"),
        config_route("/api", "api"),
        config_route("/api/orders", "orders"),
        config_route("/api/orders", "orders-v2", conditions=V2),
        config_route("/api/orders", "orders-debug", conditions=DEBUG),
        config_route(
            "/api/orders",
            "orders-v2-beta",
            conditions=when(header_condition("X-Api-Version", "exact", "2"), BETA),
        ),
        config_route("/api/orders/admin", "admin", conditions=when(BETA), methods=["GET"]),
        config_route("/api/reports", "reports-v2", conditions=V2),
        config_route("/api", "shop-v2", host="shop.example.com", conditions=V2),
    ]
)


@pytest.mark.parametrize(
    ("host", "path", "method", "headers", "query", "service", "allowed"),
    [
        pytest.param(None, "/api/orders/7", "GET", [], "", "orders", True, id="plain"),
        pytest.param(
            None, "/api/orders/7", "GET", [("X-Api-Version", "2")], "", "orders-v2", True, id="v2"
        ),
        pytest.param(
            None,
            "/api/orders/7",
            "GET",
            [("x-api-version", "2")],
            "",
            "orders-v2",
            True,
            id="header-name-any-case",
        ),
        pytest.param(
            None,
            "/api/orders/7",
            "GET",
            [("X-Api-Version", "3")],
            "",
            "orders",
            True,
            id="other-value-falls-to-plain",
        ),
        pytest.param(
            None,
            "/api/orders/7",
            "GET",
            [("X-Api-Version", "1"), ("X-Api-Version", "2")],
            "",
            "orders-v2",
            True,
            id="header-sent-twice-any-value",
        ),
        pytest.param(
            None,
            "/api/orders/7",
            "GET",
            [("X-Api-Version", "2"), ("X-Beta", "")],
            "",
            "orders-v2-beta",
            True,
            id="more-conditions-first",
        ),
        pytest.param(
            None,
            "/api/orders/7",
            "GET",
            [("X-Beta", "yes")],
            "",
            "orders",
            True,
            id="and-one-condition-is-not-enough",
        ),
        pytest.param(None, "/api/orders", "GET", [], "debug=1", "orders-debug", True, id="query"),
        pytest.param(
            None,
            "/api/orders",
            "GET",
            [],
            "debug=0&debug=1",
            "orders-debug",
            True,
            id="query-repeated-any-value",
        ),
        pytest.param(None, "/api/orders", "GET", [], "debug", "orders", True, id="query-blank"),
        pytest.param(
            None, "/api/orders", "GET", [], "debug=%31", "orders-debug", True, id="query-decoded"
        ),
        pytest.param(
            None,
            "/api/orders",
            "GET",
            [("X-Api-Version", "2")],
            "debug=1",
            "orders-v2",
            True,
            id="same-count-config-order",
        ),
        pytest.param(
            None, "/api/orders/admin", "GET", [("X-Beta", "1")], "", "admin", True, id="deeper"
        ),
        pytest.param(
            None,
            "/api/orders/admin",
            "DELETE",
            [("X-Beta", "1")],
            "",
            "admin",
            False,
            id="conditions-hold-method-405",
        ),
        pytest.param(
            None,
            "/api/orders/admin",
            "DELETE",
            [],
            "",
            "orders",
            True,
            id="conditions-fail-fall-through-not-405",
        ),
        pytest.param(
            None,
            "/api/reports/1",
            "GET",
            [("X-Api-Version", "2")],
            "",
            "reports-v2",
            True,
            id="no-plain-route-of-its-own",
        ),
        pytest.param(
            None, "/api/reports/1", "GET", [], "", "api", True, id="fall-through-to-shorter-prefix"
        ),
        pytest.param(
            "shop.example.com",
            "/api/x",
            "GET",
            [("X-Api-Version", "2")],
            "",
            "shop-v2",
            True,
            id="host-route-with-conditions",
        ),
        pytest.param(
            "shop.example.com",
            "/api/orders",
            "GET",
            [],
            "",
            "orders",
            True,
            id="host-route-fails-falls-to-hostless",
        ),
    ],
)
def test_match_with_conditions(
    host: str | None,
    path: str,
    method: str,
    headers: list[tuple[str, str]],
    query: str,
    service: str,
    allowed: bool,
) -> None:
    match = CONDITIONS_TABLE.match(host, path, method, CIMultiDict(headers), query)
    assert match.route is not None
    assert match.route.service == service
    assert match.method_allowed is allowed


def test_conditions_that_never_hold_leave_a_404() -> None:
    table = RouteTable([config_route("/api", "api", conditions=V2)])
    assert table.match(None, "/api/x", "GET", CIMultiDict([("X-Api-Version", "1")])) == Match(None)
    assert table.match(None, "/api/x", "GET") == Match(None)  # no headers, no query


def test_routes_order_conditions_before_plain_more_first_then_config_order() -> None:
    assert [(r.host, r.prefix, r.service) for r in CONDITIONS_TABLE.routes] == [
        ("shop.example.com", "/api", "shop-v2"),
        (None, "/api/orders/admin", "admin"),
        (None, "/api/reports", "reports-v2"),
        (None, "/api/orders", "orders-v2-beta"),
        (None, "/api/orders", "orders-v2"),
        (None, "/api/orders", "orders-debug"),
        (None, "/api/orders", "orders"),
        (None, "/api", "api"),
        (None, "/", "web"),
    ]


def test_equal_conditions_count_config_order_then_consul_by_service() -> None:
    beta = when(BETA)
    routes = [
        consul_route("/a", "b-meta", conditions=V2),
        consul_route("/a", "a-meta", conditions=beta),
        config_route("/a", "z-second", conditions=DEBUG),
        config_route("/a", "y-first", conditions=when(header_condition("X-C", "present"))),
        config_route("/a", "plain"),
    ]
    # Config order is the order given: z-second was given before y-first.
    assert [r.service for r in RouteTable(routes).routes] == [
        "z-second",
        "y-first",
        "a-meta",
        "b-meta",
        "plain",
    ]
    routes[2], routes[3] = routes[3], routes[2]
    assert [r.service for r in RouteTable(routes).routes][:2] == ["y-first", "z-second"]


def test_a_consul_route_with_conditions_goes_before_a_plain_config_route() -> None:
    table = RouteTable([config_route("/a", "config"), consul_route("/a", "meta", conditions=V2)])
    assert table.conflicts == ()
    v2 = table.match(None, "/a", "GET", CIMultiDict([("X-Api-Version", "2")]))
    assert v2.route is not None and v2.route.service == "meta"
    plain = table.match(None, "/a", "GET", CIMultiDict())
    assert plain.route is not None and plain.route.service == "config"


def test_query_is_parsed_only_for_a_route_with_query_conditions_once_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    real = routes_module.parse_query

    def counting(raw: str) -> dict[str, list[str]]:
        parsed.append(raw)
        return real(raw)

    monkeypatch.setattr(routes_module, "parse_query", counting)
    # Plain routes and header conditions: the query is never looked at.
    TABLE.match(None, "/api/users/7", "GET", CIMultiDict(), "a=1")
    CONDITIONS_TABLE.match(None, "/api/orders", "GET", CIMultiDict([("X-Api-Version", "2")]), "a")
    assert parsed == []
    # Two routes with query conditions tried, and neither holds: parsed once.
    table = RouteTable(
        [
            config_route("/a", "one", conditions=DEBUG),
            config_route("/a", "two", conditions=when(query=(query_condition("x", "present"),))),
            config_route("/a", "plain"),
        ]
    )
    match = table.match(None, "/a", "GET", CIMultiDict(), "debug=0")
    assert match.route is not None and match.route.service == "plain"
    assert parsed == ["debug=0"]


@pytest.mark.parametrize(
    ("routes", "ignored"),
    [
        pytest.param(
            [config_route("/a", "x", conditions=V2), config_route("/a", "y", conditions=V2)],
            ["y"],
            id="same-conditions",
        ),
        pytest.param(
            [
                config_route("/a", "x", conditions=V2),
                consul_route(
                    "/a", "a-meta", conditions=when(header_condition("x-api-version", "exact", "2"))
                ),
            ],
            ["a-meta"],
            id="header-name-case-does-not-matter",
        ),
        pytest.param(
            [
                config_route("/a", "x", conditions=when(BETA, query=DEBUG.query)),
                config_route("/a", "y", conditions=when(BETA, BETA, query=DEBUG.query)),
            ],
            ["y"],
            id="written-twice-is-the-same",
        ),
        pytest.param(
            [
                config_route("/a", "x", conditions=when(BETA, *V2.headers)),
                config_route("/a", "y", conditions=when(*V2.headers, BETA)),
            ],
            ["y"],
            id="any-order",
        ),
    ],
)
def test_routes_with_the_same_conditions_conflict(routes: list[Route], ignored: list[str]) -> None:
    table = RouteTable(routes)
    assert [c["ignored"]["service"] for c in table.conflicts] == ignored
    assert len(table.routes) == 1
    assert table.conflicts[0]["match"] == table.routes[0].describe()["match"]


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param(
            [config_route("/a", "x"), config_route("/a", "y", conditions=V2)],
            id="plain-and-conditions",
        ),
        pytest.param(
            [config_route("/a", "x", conditions=V2), config_route("/a", "y", conditions=DEBUG)],
            id="different-conditions",
        ),
        pytest.param(
            [
                config_route("/a", "x", conditions=V2),
                config_route(
                    "/a", "y", conditions=when(header_condition("X-Api-Version", "prefix", "2"))
                ),
            ],
            id="same-name-other-kind",
        ),
        pytest.param(
            [
                config_route("/a", "x", conditions=when(header_condition("debug", "present"))),
                config_route(
                    "/a", "y", conditions=when(query=(query_condition("debug", "present"),))
                ),
            ],
            id="header-or-query-of-one-name",
        ),
    ],
)
def test_same_prefix_with_other_conditions_does_not_conflict(routes: list[Route]) -> None:
    table = RouteTable(routes)
    assert table.conflicts == ()
    assert len(table.routes) == 2


# --- exact paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/robots.txt", True),
        ("/robots.txt/", False),
        ("/robots.txt/x", False),
        ("/robots", False),
        ("/", False),
    ],
)
def test_an_exact_route_matches_its_path_alone(path: str, matches: bool) -> None:
    assert config_route("/robots.txt", "site", exact=True).matches(path) is matches


def test_an_exact_route_keeps_its_trailing_slash_and_is_named_with_an_equals_sign() -> None:
    root = config_route("/", "site", exact=True)
    assert (root.prefix, root.name) == ("/", "site:=/")
    assert root.matches("/") and not root.matches("/x")
    docs = config_route("/docs/", "site", exact=True)
    assert (docs.prefix, docs.name, docs.exact) == ("/docs/", "site:=/docs/", True)
    assert docs.matches("/docs/") and not docs.matches("/docs")


def test_an_exact_route_rewrites_its_whole_path() -> None:
    assert config_route("/old", "s", exact=True, prefix_rewrite="/new").upstream_path("/old") == (
        "/new"
    )
    assert config_route("/old", "s", exact=True, strip_prefix=True).upstream_path("/old") == "/"


def test_exact_paths_are_tried_before_prefixes_of_their_host() -> None:
    table = RouteTable(
        [
            config_route("/", "catch-all"),
            config_route("/api/orders/export", "export"),
            config_route("/api/orders", "orders-page", exact=True),
            config_route("/api", "api"),
            config_route("/api", "api-root", exact=True, host="shop.example"),
            config_route("/", "home", exact=True),
        ]
    )

    def service(host: str | None, path: str) -> str | None:
        route = table.match(host, path, "GET").route
        return None if route is None else route.service

    assert service(None, "/api/orders") == "orders-page"  # exact beats the longer prefix
    assert service(None, "/api/orders/7") == "api"
    assert service(None, "/api/orders/export") == "export"
    assert service(None, "/") == "home"  # exact beats the root prefix
    assert service(None, "/x") == "catch-all"
    # The host's exact route goes first for its host; host-less routes after it.
    assert service("shop.example", "/api") == "api-root"
    assert service("shop.example", "/api/orders") == "orders-page"
    assert service("other.example", "/api") == "api"
    assert [r.name for r in table.routes][:2] == ["api-root:=/api", "orders-page:=/api/orders"]


def test_an_exact_path_and_a_prefix_of_the_same_text_do_not_conflict() -> None:
    table = RouteTable(
        [
            config_route("/api", "a", exact=True),
            config_route("/api", "b"),
            config_route("/api", "c", exact=True),
        ]
    )
    assert [r.service for r in table.routes] == ["a", "b"]
    (conflict,) = table.conflicts
    assert (conflict["prefix"], conflict["exact"]) == ("/api", True)
    assert conflict["winner"]["service"] == "a" and conflict["ignored"]["service"] == "c"
