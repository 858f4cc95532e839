"""Routes declared in Consul service meta (``meshgate-route*`` keys), table-driven."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from edge.meta_routes import (
    CANARY_HEADER_KEY,
    CANARY_KEY,
    HASH_KEY,
    HOST_KEY,
    MATCH_HEADERS_KEY,
    MAX_BODY_KEY,
    METHODS_KEY,
    PREFIX_KEY,
    REWRITE_KEY,
    STRIP_KEY,
    TIMEOUT_KEY,
    MetaProblem,
    all_meta_routes,
    routes_from_meta,
)
from edge.route_match import Conditions, header_condition
from edge.routes import Route, RouteTable
from mesh.canary import Canary
from mesh.hash_policy import HashPolicy, HashSource
from mesh.snapshot import Instance, ServiceEntry


def _inst(iid: str, meta: dict[str, str], service: str = "users") -> Instance:
    return Instance(
        id=iid,
        service=service,
        address="10.0.0.1",
        port=15000,
        meta=tuple(sorted(meta.items())),
    )


def _entry(*metas: dict[str, str], name: str = "users", healthy: bool = True) -> ServiceEntry:
    instances = tuple(
        Instance(
            id=f"{name}-{n}",
            service=name,
            address="10.0.0.1",
            port=15000 + n,
            healthy=healthy,
            meta=tuple(sorted(meta.items())),
        )
        for n, meta in enumerate(metas)
    )
    return ServiceEntry(name, instances)


def _route(prefix: str, **kw: object) -> Route:
    fields: dict[str, object] = {
        "name": f"users:{prefix}",
        "prefix": prefix,
        "service": "users",
        "source": "consul:users",
    }
    fields.update(kw)
    return Route(**fields)  # type: ignore[arg-type]


def test_meta_keys() -> None:
    assert (PREFIX_KEY, HOST_KEY, METHODS_KEY, STRIP_KEY, REWRITE_KEY, TIMEOUT_KEY) == (
        "meshgate-route",
        "meshgate-route-host",
        "meshgate-route-methods",
        "meshgate-route-strip-prefix",
        "meshgate-route-rewrite",
        "meshgate-route-timeout",
    )
    assert MAX_BODY_KEY == "meshgate-route-max-body"
    assert MATCH_HEADERS_KEY == "meshgate-route-match-headers"
    assert HASH_KEY == "meshgate-route-hash"


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        pytest.param({PREFIX_KEY: "/api/users"}, [_route("/api/users")], id="prefix-only"),
        pytest.param({PREFIX_KEY: "/api/users/"}, [_route("/api/users")], id="trailing-slash"),
        pytest.param(
            {PREFIX_KEY: "/api/users, /v1/users ,,"},
            [_route("/api/users"), _route("/v1/users")],
            id="comma-separated-prefixes",
        ),
        pytest.param({PREFIX_KEY: "/a,/a"}, [_route("/a")], id="duplicate-prefix-once"),
        pytest.param(
            {PREFIX_KEY: "/api/users", HOST_KEY: "API.Example.com"},
            [_route("/api/users", host="api.example.com")],
            id="host-lowercased",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", HOST_KEY: ""}, [_route("/api/users")], id="empty-host"
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", METHODS_KEY: "get, Post,,"},
            [_route("/api/users", methods=frozenset({"GET", "POST"}))],
            id="methods",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", METHODS_KEY: " , "},
            [_route("/api/users")],
            id="blank-methods-means-any",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", STRIP_KEY: "true"},
            [_route("/api/users", rewrite="/")],
            id="strip-true",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", STRIP_KEY: " TRUE "},
            [_route("/api/users", rewrite="/")],
            id="strip-true-any-case-and-spaces",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", STRIP_KEY: "1"},
            [_route("/api/users", rewrite="/")],
            id="strip-1",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", STRIP_KEY: "yes"},
            [_route("/api/users", rewrite="/")],
            id="strip-yes",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", STRIP_KEY: "false"}, [_route("/api/users")], id="strip-no"
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", REWRITE_KEY: "/users"},
            [_route("/api/users", rewrite="/users")],
            id="rewrite",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", REWRITE_KEY: ""}, [_route("/api/users")], id="empty-rewrite"
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", TIMEOUT_KEY: "5s"},
            [_route("/api/users", timeout=5.0)],
            id="timeout-seconds",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", TIMEOUT_KEY: "500ms"},
            [_route("/api/users", timeout=0.5)],
            id="timeout-milliseconds",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", TIMEOUT_KEY: "2"},
            [_route("/api/users", timeout=2.0)],
            id="timeout-bare-number",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", MAX_BODY_KEY: "10MB"},
            [_route("/api/users", max_body_size=10_000_000)],
            id="max-body",
        ),
        pytest.param(
            {
                PREFIX_KEY: "/a,/b",
                HOST_KEY: "h",
                METHODS_KEY: "GET",
                STRIP_KEY: "true",
                TIMEOUT_KEY: "1m",
            },
            [
                _route("/a", host="h", methods=frozenset({"GET"}), rewrite="/", timeout=60.0),
                _route("/b", host="h", methods=frozenset({"GET"}), rewrite="/", timeout=60.0),
            ],
            id="settings-apply-to-every-prefix",
        ),
        pytest.param({"version": "2"}, [], id="no-route-key"),
        pytest.param({PREFIX_KEY: ""}, [], id="empty-route-key"),
        pytest.param({PREFIX_KEY: " , "}, [], id="blank-route-key"),
    ],
)
def test_routes_from_meta(meta: dict[str, str], expected: list[Route]) -> None:
    routes, problems = routes_from_meta(_entry(meta))
    assert routes == expected
    assert problems == []


@pytest.mark.parametrize(
    ("meta", "expected_routes", "problem_key", "problem_part"),
    [
        pytest.param(
            {PREFIX_KEY: "api/users"},
            [],
            PREFIX_KEY,
            "prefix 'api/users' must start with '/'",
            id="relative-prefix",
        ),
        pytest.param(
            {PREFIX_KEY: "/ok, bad"},
            [_route("/ok")],
            PREFIX_KEY,
            "'bad'",
            id="bad-prefix-does-not-drop-good-one",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", TIMEOUT_KEY: "soon"},
            [_route("/api/users")],
            TIMEOUT_KEY,
            "expected a duration",
            id="invalid-timeout-ignored",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", TIMEOUT_KEY: "-5s"},
            [_route("/api/users")],
            TIMEOUT_KEY,
            "expected a duration",
            id="negative-timeout",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", MAX_BODY_KEY: "lots"},
            [_route("/api/users")],
            MAX_BODY_KEY,
            "expected a size",
            id="invalid-max-body-ignored",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", REWRITE_KEY: "users"},
            [_route("/api/users")],
            REWRITE_KEY,
            "must start with '/'",
            id="relative-rewrite-ignored",
        ),
        pytest.param(
            {PREFIX_KEY: "/api/users", REWRITE_KEY: "users", STRIP_KEY: "true"},
            [_route("/api/users", rewrite="/")],
            REWRITE_KEY,
            "must start with '/'",
            id="relative-rewrite-falls-back-to-strip",
        ),
    ],
)
def test_invalid_values_are_reported_not_fatal(
    meta: dict[str, str],
    expected_routes: list[Route],
    problem_key: str,
    problem_part: str,
) -> None:
    routes, problems = routes_from_meta(_entry(meta))
    assert routes == expected_routes
    assert len(problems) == 1
    assert problems[0].service == "users"
    assert problems[0].key == problem_key
    assert problem_part in problems[0].problem


def test_several_problems_in_one_service() -> None:
    _, problems = routes_from_meta(
        _entry({PREFIX_KEY: "x, y", TIMEOUT_KEY: "never", REWRITE_KEY: "z"})
    )
    assert sorted(p.key for p in problems) == sorted(
        [PREFIX_KEY, PREFIX_KEY, TIMEOUT_KEY, REWRITE_KEY]
    )
    assert {p.service for p in problems} == {"users"}


# --- several instances ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metas", "prefixes"),
    [
        pytest.param(
            [{PREFIX_KEY: "/a"}, {PREFIX_KEY: "/a"}],
            ["/a"],
            id="agreeing-instances",
        ),
        pytest.param(
            [{PREFIX_KEY: "/a"}, {PREFIX_KEY: "/b,/a"}, {PREFIX_KEY: "/c"}],
            ["/a", "/b", "/c"],
            id="union-of-prefixes",
        ),
        pytest.param(
            [{}, {PREFIX_KEY: "/b"}, {"other": "x"}],
            ["/b"],
            id="only-some-declare",
        ),
        pytest.param([{}, {}], [], id="none-declare"),
    ],
)
def test_union_of_prefixes_across_instances(
    metas: list[dict[str, str]], prefixes: list[str]
) -> None:
    routes, problems = routes_from_meta(_entry(*metas))
    assert [r.prefix for r in routes] == prefixes
    assert problems == []


def test_union_is_taken_after_normalising_the_prefix() -> None:
    routes, _ = routes_from_meta(_entry({PREFIX_KEY: "/api/users"}, {PREFIX_KEY: "/api/users/"}))
    assert [r.prefix for r in routes] == ["/api/users"]
    assert RouteTable(routes).conflicts == ()


def test_settings_come_from_the_first_declaring_instance_by_id() -> None:
    entry = ServiceEntry(
        "users",
        (
            _inst("users-a", {"version": "1"}),  # sorts first but declares no route
            _inst("users-b", {PREFIX_KEY: "/a", TIMEOUT_KEY: "1s", HOST_KEY: "b.example"}),
            _inst("users-c", {PREFIX_KEY: "/c", TIMEOUT_KEY: "9s", HOST_KEY: "c.example"}),
        ),
    )
    routes, _ = routes_from_meta(entry)
    assert [(r.prefix, r.timeout, r.host) for r in routes] == [
        ("/a", 1.0, "b.example"),
        ("/c", 1.0, "b.example"),
    ]


def test_routes_survive_when_every_instance_is_critical() -> None:
    routes, _ = routes_from_meta(_entry({PREFIX_KEY: "/a"}, {PREFIX_KEY: "/a"}, healthy=False))
    assert [r.prefix for r in routes] == ["/a"]


def test_empty_service() -> None:
    assert routes_from_meta(ServiceEntry("users", ())) == ([], [])


# --- all_meta_routes ------------------------------------------------------------------------


def test_all_meta_routes_concatenates_services() -> None:
    entries = [
        _entry({PREFIX_KEY: "/api/users"}, name="users"),
        _entry({"x": "y"}, name="quiet"),
        _entry({PREFIX_KEY: "/api/orders,orders"}, name="orders"),
    ]
    routes, problems = all_meta_routes(entries)
    assert [(r.service, r.prefix, r.source) for r in routes] == [
        ("users", "/api/users", "consul:users"),
        ("orders", "/api/orders", "consul:orders"),
    ]
    assert problems == [MetaProblem("orders", PREFIX_KEY, "prefix 'orders' must start with '/'")]


def test_all_meta_routes_empty() -> None:
    assert all_meta_routes([]) == ([], [])


def test_meta_routes_into_a_table_conflict_by_service_name() -> None:
    routes, _ = all_meta_routes(
        [
            _entry({PREFIX_KEY: "/shared"}, name="zeta"),
            _entry({PREFIX_KEY: "/shared"}, name="alpha"),
        ]
    )
    table = RouteTable(routes)
    match = table.match(None, "/shared/x", "GET")
    assert match.route is not None and match.route.service == "alpha"
    assert [c["ignored"]["service"] for c in table.conflicts] == ["zeta"]


def test_a_canary_declared_by_the_canary_instances_applies_to_the_route() -> None:
    stable = {PREFIX_KEY: "/api/users"}
    canary = {PREFIX_KEY: "/api/users", CANARY_KEY: "v2:15", CANARY_HEADER_KEY: "X-Canary"}
    # users-0 (stable, first by id) declares none; users-1 does, for the whole route.
    routes, problems = routes_from_meta(_entry(stable, canary))
    assert problems == []
    assert [r.canary for r in routes] == [Canary("v2", 15.0, "X-Canary")]
    routes, _ = routes_from_meta(_entry(stable, stable))
    assert routes[0].canary is None


@pytest.mark.parametrize("value", ["v2", "v2:", ":10", "v2:ten", "v2:101", "v2:-1", "v2:nan"])
def test_an_invalid_canary_is_reported_and_left_out(value: str) -> None:
    routes, problems = routes_from_meta(_entry({PREFIX_KEY: "/api/users", CANARY_KEY: value}))
    assert [r.canary for r in routes] == [None]  # the route itself still stands
    assert [(p.key, "e.g. canary:10" in p.problem) for p in problems] == [(CANARY_KEY, True)]


# --- meshgate-route-match-headers -----------------------------------------------------------


def _headers(*conditions: tuple[str, str] | str) -> Conditions:
    """``("Name", "value")`` asks for that value, ``"Name"`` for the header to be sent."""
    return Conditions(
        tuple(
            header_condition(c, "present")
            if isinstance(c, str)
            else header_condition(c[0], "exact", c[1])
            for c in conditions
        )
    )


@pytest.mark.parametrize(
    ("value", "conditions"),
    [
        pytest.param("X-Api-Version=2", _headers(("x-api-version", "2")), id="exact"),
        pytest.param("X-Beta", _headers("x-beta"), id="present"),
        pytest.param(
            "X-Api-Version=2,X-Beta", _headers(("x-api-version", "2"), "x-beta"), id="both"
        ),
        pytest.param(
            " X-Api-Version = 2 , , X-Beta ,",
            _headers(("x-api-version", "2"), "x-beta"),
            id="spaces-and-empty-items",
        ),
        pytest.param("X-Tag=", _headers(("x-tag", "")), id="empty-value"),
        pytest.param("X-Q=a=b", _headers(("x-q", "a=b")), id="value-holds-equals"),
        pytest.param("", None, id="empty-is-none"),
        pytest.param(" , ", None, id="blank-is-none"),
    ],
)
def test_match_headers(value: str, conditions: Conditions | None) -> None:
    routes, problems = routes_from_meta(_entry({PREFIX_KEY: "/a,/b", MATCH_HEADERS_KEY: value}))
    assert problems == []
    assert [r.conditions for r in routes] == [conditions, conditions]  # on every prefix


@pytest.mark.parametrize(
    ("value", "problem_part"),
    [
        pytest.param("=2", "'' in '=2' is not a valid header name", id="no-name"),
        pytest.param("X Api=2", "'X Api' in 'X Api=2' is not a valid header name", id="space"),
        pytest.param("X-Beta,X:Y", "'X:Y' in 'X:Y' is not a valid header name", id="colon"),
    ],
)
def test_invalid_match_headers_withhold_the_routes(value: str, problem_part: str) -> None:
    meta = {PREFIX_KEY: "/a,b", MATCH_HEADERS_KEY: value}
    routes, problems = routes_from_meta(_entry(meta))
    # Without its conditions the route would take requests meant for others: left out.
    assert routes == []
    assert [(p.service, p.key) for p in problems] == [
        ("users", MATCH_HEADERS_KEY),
        ("users", PREFIX_KEY),  # other problems are still reported
    ]
    assert problem_part in problems[0].problem
    assert problems[0].problem.endswith("the service's routes are left out")


def test_meta_routes_with_conditions_go_before_the_plain_one() -> None:
    routes, problems = all_meta_routes(
        [
            _entry({PREFIX_KEY: "/api/orders"}, name="orders"),
            _entry(
                {PREFIX_KEY: "/api/orders", MATCH_HEADERS_KEY: "X-Api-Version=2"},
                name="orders-v2",
            ),
        ]
    )
    table = RouteTable(routes)
    assert problems == [] and table.conflicts == ()

    def service(*headers: tuple[str, str]) -> str | None:
        match = table.match(None, "/api/orders/7", "GET", CIMultiDict(headers))
        return match.route.service if match.route is not None else None

    assert service(("X-API-VERSION", "2")) == "orders-v2"
    assert service(("X-Api-Version", "1")) == "orders"
    assert service() == "orders"


def test_a_hash_policy_declared_in_meta_applies_to_every_prefix() -> None:
    meta = {PREFIX_KEY: "/a,/b", HASH_KEY: "header:X-User-Id, cookie:session,source_ip"}
    routes, problems = routes_from_meta(_entry(meta))
    policy = HashPolicy(
        (
            HashSource("header", "X-User-Id"),
            HashSource("cookie", "session"),
            HashSource("source_ip"),
        )
    )
    assert problems == []
    assert [(r.prefix, r.hash_policy) for r in routes] == [("/a", policy), ("/b", policy)]


@pytest.mark.parametrize("value", ["", "header", "body:x", "header:X User"])
def test_an_invalid_hash_policy_is_reported_and_the_routes_balance_as_usual(value: str) -> None:
    routes, problems = routes_from_meta(_entry({PREFIX_KEY: "/a", HASH_KEY: value}))
    assert [(r.prefix, r.hash_policy) for r in routes] == [("/a", None)]
    assert [(p.service, p.key) for p in problems] == [("users", HASH_KEY)]
    assert problems[0].problem.endswith("; no session affinity")
