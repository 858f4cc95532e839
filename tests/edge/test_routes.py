"""The edge's route table: prefix matching, rewriting, precedence and conflicts (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from edge.routes import Match, Route, RouteTable, make_route
from mesh.canary import Canary


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
        "service": "s",
        "source": "consul:s",
        "host": "h",
        "methods": ["GET", "POST"],
        "rewrite": "/",
        "timeout": 1.0,
        "max_body_size": 1024,
        "canary": {"tag": "v2", "weight": 5.0, "header": "X-Canary"},
    }


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
