"""The ``ext_authz`` section and a route's ``ext_authz``: defaults, every key, what the
route table and ``/routes`` show, and what is refused, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_edge_config
from edge.gateway import config_routes
from tests.edge.refused_config import assert_refused

SECTION = "ext_authz: %s\nroutes: [{prefix: /api/orders, service: orders}]"
ROUTE = (
    "ext_authz: {service: authz}\nroutes: [{prefix: /api/orders, service: orders, ext_authz: %s}]"
)


def load(tmp_path: Path, text: str) -> EdgeConfig:
    path = tmp_path / "edge.yaml"
    path.write_text(text + "\n")
    return load_edge_config(path)


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, SECTION % "{service: authz}")
    c = config.ext_authz
    assert c is not None
    assert (c.service, c.url, c.path_prefix) == ("authz", None, "")
    assert (c.timeout, c.failure_mode, c.status_on_error) == (1.0, "deny", 503)
    assert c.check_by_default is True
    assert c.allowed_request_headers == ("Authorization", "Cookie")
    assert c.check_headers == {}
    assert c.with_request_body is None
    assert c.allowed_upstream_headers == ()
    assert c.allowed_client_headers == ("WWW-Authenticate", "Location", "Set-Cookie")
    assert load(tmp_path, "routes: []").ext_authz is None  # off unless configured


def test_every_key(tmp_path: Path) -> None:
    section = (
        "{url: 'https://authz.internal:8443/', path_prefix: /check/, timeout: 250ms, "
        "failure_mode: allow, status_on_error: 403, check_by_default: false, "
        "allowed_request_headers: [Authorization, X-Api-Version], "
        "check_headers: {X-Authz-Key: k1}, with_request_body: {max_bytes: 4KiB}, "
        "allowed_upstream_headers: [X-Tenant], allowed_client_headers: [WWW-Authenticate]}"
    )
    c = load(tmp_path, SECTION % section).ext_authz
    assert c is not None
    assert c.url == "https://authz.internal:8443/"
    assert c.path_prefix == "/check"  # one slash between it and the request's path
    assert (c.timeout, c.failure_mode, c.status_on_error) == (0.25, "allow", 403)
    assert c.check_by_default is False
    assert c.allowed_request_headers == ("Authorization", "X-Api-Version")
    assert c.check_headers == {"X-Authz-Key": "k1"}
    assert c.with_request_body is not None and c.with_request_body.max_bytes == 4096
    assert c.allowed_upstream_headers == ("X-Tenant",)
    assert c.allowed_client_headers == ("WWW-Authenticate",)
    body = load(tmp_path, SECTION % "{service: a, with_request_body: {}}").ext_authz
    assert body is not None and body.with_request_body is not None
    assert body.with_request_body.max_bytes == 8192  # the default


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("false", {"disabled": True, "context": {}}),
        ("true", {"disabled": False, "context": {}}),
        ("{disabled: true}", {"disabled": True, "context": {}}),
        (
            "{context: {resource: orders, action: read}}",
            {"disabled": False, "context": {"resource": "orders", "action": "read"}},
        ),
    ],
)
def test_a_routes_own_setting_and_the_route_view(tmp_path: Path, value: str, shown: object) -> None:
    (route,) = config_routes(load(tmp_path, ROUTE % value))
    assert route.ext_authz is not None
    assert route.describe()["ext_authz"] == shown
    assert "ext_authz" not in route.options  # routing's own key, not a feature's option


def test_context_becomes_headers(tmp_path: Path) -> None:
    (route,) = config_routes(load(tmp_path, ROUTE % "{context: {resource: orders}}"))
    assert route.ext_authz is not None
    assert route.ext_authz.context == (("X-Ext-Authz-Context-resource", "orders"),)


def test_a_route_without_a_setting_follows_the_edge(tmp_path: Path) -> None:
    (route,) = config_routes(load(tmp_path, SECTION % "{service: authz}"))
    assert route.ext_authz is None and route.describe()["ext_authz"] is None


def test_a_route_may_say_false_without_a_section(tmp_path: Path) -> None:
    text = "routes: [{prefix: /auth, service: auth, ext_authz: false}]"
    (route,) = config_routes(load(tmp_path, text))
    assert route.ext_authz is not None and route.ext_authz.disabled


@pytest.mark.parametrize(
    ("section", "key_path", "problem"),
    [
        (
            "{}",
            "ext_authz",
            "set either url or service (where the authorization service is), found neither",
        ),
        ("{service: a, url: 'http://b'}", "ext_authz", "found both"),
        (
            "{url: 'ftp://authz'}",
            "ext_authz.url",
            "expected http://host[:port] or https://host[:port]",
        ),
        ("{url: 'http://authz/check'}", "ext_authz.url", "put the path in path_prefix"),
        ("{url: 'http://authz?x=1'}", "ext_authz.url", "no path or query"),
        ("{url: 'http://u:p@authz'}", "ext_authz.url", "no user or password"),
        ("{url: 'http://authz:99999'}", "ext_authz.url", "not a valid URL"),
        ("{service: 'a/b'}", "ext_authz.service", "not a service name"),
        ("{service: a, path_prefix: check}", "ext_authz.path_prefix", "must start with '/'"),
        ("{service: a, path_prefix: '/check?x'}", "ext_authz.path_prefix", "no query"),
        ("{service: a, timeout: 0s}", "ext_authz.timeout", "longer than 0"),
        ("{service: a, failure_mode: open}", "ext_authz.failure_mode", "'deny' or 'allow'"),
        (
            "{service: a, status_on_error: 200}",
            "ext_authz.status_on_error",
            "greater than or equal to 400",
        ),
        (
            "{service: a, status_on_error: 600}",
            "ext_authz.status_on_error",
            "less than or equal to 599",
        ),
        (
            "{service: a, allowed_request_headers: [Host]}",
            "ext_authz.allowed_request_headers",
            "Host is written by the edge itself on the check",
        ),
        (
            "{service: a, allowed_request_headers: [X-Request-Id]}",
            "ext_authz.allowed_request_headers",
            "X-Request-Id is written by the edge itself",
        ),
        (
            "{service: a, allowed_request_headers: [traceparent]}",
            "ext_authz.allowed_request_headers",
            "traceparent is written by the edge itself",
        ),
        (
            "{service: a, allowed_request_headers: [X-Forwarded-For]}",
            "ext_authz.allowed_request_headers",
            "written by the edge itself",
        ),
        (
            "{service: a, allowed_request_headers: [Connection]}",
            "ext_authz.allowed_request_headers",
            "written by the edge itself",
        ),
        (
            "{service: a, allowed_request_headers: ['bad header']}",
            "ext_authz.allowed_request_headers[0]",
            "not a valid header name",
        ),
        (
            "{service: a, check_headers: {X-Ext-Authz-Context-x: 1}}",
            "ext_authz.check_headers",
            "written by the edge itself",
        ),
        (
            '{service: a, check_headers: {X-Key: "a\\nb"}}',
            "ext_authz.check_headers",
            "must be printable",
        ),
        (
            "{service: a, allowed_upstream_headers: [Host]}",
            "ext_authz.allowed_upstream_headers",
            "Host is written by meshgate itself on the request sent on",
        ),
        (
            "{service: a, allowed_upstream_headers: [Content-Length]}",
            "ext_authz.allowed_upstream_headers",
            "Content-Length is written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [Transfer-Encoding]}",
            "ext_authz.allowed_upstream_headers",
            "Transfer-Encoding is written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [X-Request-Id]}",
            "ext_authz.allowed_upstream_headers",
            "X-Request-Id is written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [traceparent]}",
            "ext_authz.allowed_upstream_headers",
            "traceparent is written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [X-B3-TraceId]}",
            "ext_authz.allowed_upstream_headers",
            "X-B3-TraceId is written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [X-Mesh-Deadline-Ms]}",
            "ext_authz.allowed_upstream_headers",
            "written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [X-Forwarded-Client-Cert]}",
            "ext_authz.allowed_upstream_headers",
            "written by meshgate",
        ),
        (
            "{service: a, allowed_upstream_headers: [X-Meshgate-Ext-Authz]}",
            "ext_authz.allowed_upstream_headers",
            "written by meshgate",
        ),
        (
            "{service: a, allowed_client_headers: [Content-Type]}",
            "ext_authz.allowed_client_headers",
            "Content-Type is written by meshgate itself on its answer",
        ),
        (
            "{service: a, allowed_client_headers: [X-Request-Id]}",
            "ext_authz.allowed_client_headers",
            "written by meshgate itself on its answer",
        ),
        (
            "{service: a, with_request_body: {max_bytes: 0}}",
            "ext_authz.with_request_body.max_bytes",
            "at least 1 byte",
        ),
        ("{service: a, retries: 3}", "ext_authz.retries", "unknown key"),
        ("authz", "ext_authz", "valid dictionary"),
    ],
)
def test_refused(tmp_path: Path, section: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, SECTION % section, key_path, problem)


@pytest.mark.parametrize("key", ["allowed_request_headers", "allowed_upstream_headers"])
@pytest.mark.parametrize("name", ["X-User-Id", "x_user_roles", "X-Mesh-Identity"])
def test_identity_headers_are_refused(tmp_path: Path, key: str, name: str) -> None:
    assert_refused(
        tmp_path,
        SECTION % f"{{service: a, {key}: [{name}]}}",
        "",
        f"ext_authz.{key}: {name} is an identity header the edge writes (auth.identity)",
    )


def test_identity_headers_follow_auth_identity(tmp_path: Path) -> None:
    text = (
        "auth: {identity: {headers: [X-Caller], claims: {X-Caller: sub}}}\n"
        + SECTION % "{service: a, check_headers: {X-Caller: me}}"
    )
    assert_refused(tmp_path, text, "", "ext_authz.check_headers: X-Caller is an identity header")
    # X-User-Id is no identity header of this edge: the service may set it.
    text = (
        "auth: {identity: {headers: [X-Caller], claims: {X-Caller: sub}}}\n"
        + SECTION % "{service: a, allowed_upstream_headers: [X-User-Id]}"
    )
    c = load(tmp_path, text).ext_authz
    assert c is not None and c.allowed_upstream_headers == ("X-User-Id",)


@pytest.mark.parametrize(
    ("value", "key_path", "problem"),
    [
        ("{context: {'a b': 1}}", "routes[0].ext_authz.context", "letters, digits and '-'"),
        ('{context: {a: "x\\ny"}}', "routes[0].ext_authz.context", "must be printable"),
        ("{context: {a: 1, A: 2}}", "routes[0].ext_authz.context", "differ only in case"),
        ("{disabled: true, context: {a: b}}", "routes[0].ext_authz", "context makes no sense"),
        ("{enabled: true}", "routes[0].ext_authz.enabled", "unknown key"),
        ("maybe", "routes[0].ext_authz", "valid dictionary"),
    ],
)
def test_route_refused(tmp_path: Path, value: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, ROUTE % value, key_path, problem)


@pytest.mark.parametrize("value", ["true", "{context: {a: b}}", "{disabled: false}"])
def test_a_route_asking_for_a_check_needs_the_section(tmp_path: Path, value: str) -> None:
    text = f"routes: [{{prefix: /api, service: api, ext_authz: {value}}}]"
    assert_refused(
        tmp_path, text, "", "routes[0].ext_authz: there is no ext_authz section to check with"
    )


def test_numbers_are_text_and_booleans_refused(tmp_path: Path) -> None:
    (route,) = config_routes(load(tmp_path, ROUTE % "{context: {version: 2}}"))
    assert route.ext_authz is not None
    assert route.ext_authz.context == (("X-Ext-Authz-Context-version", "2"),)
    assert_refused(
        tmp_path,
        ROUTE % "{context: {beta: yes}}",
        "routes[0].ext_authz.context",
        'quote it, e.g. "True"',
    )
