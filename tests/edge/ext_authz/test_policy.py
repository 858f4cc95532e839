"""External authorization's pure decisions: what the check carries, what an answer means,
and which headers reach the service and the client."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edge.ext_authz.policy import (
    CheckSettings,
    RouteCheck,
    check_headers,
    check_target,
    client_headers,
    denial_status,
    drop_client_copies,
    passes_through,
    take_upstream_headers,
    verdict,
)


def settings(**changes: object) -> CheckSettings:
    base: dict[str, object] = {
        "path_prefix": "/check",
        "timeout": 1.0,
        "failure_mode": "deny",
        "status_on_error": 503,
        "check_by_default": True,
        "request_names": ["Authorization", "Cookie"],
        "fixed": {},
        "body_max": None,
        "upstream_names": [],
        "client_names": ["WWW-Authenticate", "Location", "Set-Cookie"],
    }
    base.update(changes)
    return CheckSettings.of(**base)  # type: ignore[arg-type]


# What the ingress and the filters before the check leave going on: the client's headers
# less hop-by-hop and stripped ones (identity), the credential removed by auth, and the
# edge's own X-Forwarded-* and request id.
UPSTREAM = CIMultiDict(
    [
        ("Host", "shop.example:8080"),
        ("Cookie", "session=abc"),
        ("Cookie", "theme=dark"),
        ("Accept", "application/json"),
        ("X-Forwarded-For", "192.0.2.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "shop.example:8080"),
        ("X-Request-Id", "req-1234"),
        ("tracestate", "vendor=1"),
    ]
)
CLIENT = CIMultiDict(
    [
        ("Host", "shop.example:8080"),
        ("Authorization", "Bearer token"),
        ("Cookie", "session=abc"),
        ("Cookie", "theme=dark"),
        ("X-User-Id", "mallory"),  # spoofed: stripped from what goes on
        ("Accept", "application/json"),
    ]
)


def build(s: CheckSettings, **kwargs: object) -> CIMultiDict[str]:
    args: dict[str, object] = {
        "method": "POST",
        "uri": "/api/orders/7?x=1",
        "upstream": UPSTREAM,
        "client": CLIENT,
    }
    args.update(kwargs)
    return check_headers(s, **args)  # type: ignore[arg-type]


def test_the_check_carries_the_edges_view_and_the_allowed_client_headers() -> None:
    got = build(settings())
    assert list(got.items()) == [
        ("X-Forwarded-For", "192.0.2.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "shop.example:8080"),
        ("X-Request-Id", "req-1234"),
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Uri", "/api/orders/7?x=1"),
        # The credential as the client sent it (auth removed it from what goes on) ...
        ("Authorization", "Bearer token"),
        # ... every value of a listed header ...
        ("Cookie", "session=abc"),
        ("Cookie", "theme=dark"),
    ]
    # ... and nothing else: no Host (the transport writes the service's), no Accept
    # (not listed), no client copy of an identity header, no trace context (not traced).
    assert "Host" not in got and "X-User-Id" not in got and "tracestate" not in got


def test_a_client_header_not_sent_by_the_client_is_left_out() -> None:
    got = build(settings(request_names=["X-Api-Version"]))
    assert "X-Api-Version" not in got and "Authorization" not in got


def test_client_headers_are_read_as_they_go_on_except_credentials() -> None:
    # Listed, but the edge stripped it from every request (an identity header's spelling).
    upstream = CIMultiDict(UPSTREAM)
    client = CIMultiDict(CLIENT, X_Debug="1")
    got = build(settings(request_names=["X_Debug", "Authorization"]), client=client)
    assert "X_Debug" not in got  # absent from what goes on
    upstream["X_Debug"] = "1"
    got = build(settings(request_names=["X_Debug"]), upstream=upstream, client=client)
    assert got["X_Debug"] == "1"


def test_identity_fixed_context_trace_and_body_type() -> None:
    got = build(
        settings(fixed={"X-Authz-Key": "k1"}),
        identity=[("X-User-Id", "alice"), ("X-User-Roles", "user,admin")],
        context=[("X-Ext-Authz-Context-resource", "orders")],
        trace=[("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")],
        content_type="application/json",
    )
    assert got["X-User-Id"] == "alice" and got["X-User-Roles"] == "user,admin"
    assert got["X-Authz-Key"] == "k1"
    assert got["X-Ext-Authz-Context-resource"] == "orders"
    assert got["traceparent"].endswith("-01")
    # With W3C only, the request's tracestate travels as received: the check's too.
    assert got.getall("tracestate") == ["vendor=1"]
    assert got["Content-Type"] == "application/json"


def test_the_identity_replaces_any_header_of_the_same_name() -> None:
    s = settings(request_names=["X-Tenant"])
    upstream = CIMultiDict(UPSTREAM, **{"X-Tenant": "from-client"})
    got = build(s, upstream=upstream, identity=[("X-Tenant", "acme")])
    assert got.getall("X-Tenant") == ["acme"]


def test_check_target() -> None:
    assert check_target("/check", "/api/orders/7", "") == "/check/api/orders/7"
    assert check_target("/check", "/api/x", "a=1&b=2") == "/check/api/x?a=1&b=2"
    assert check_target("", "/api/x", "") == "/api/x"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "allowed"),
        (204, "allowed"),
        (299, "allowed"),
        (301, "denied"),
        (302, "denied"),
        (304, "denied"),
        (400, "denied"),
        (401, "denied"),
        (403, "denied"),
        (404, "denied"),
        (429, "denied"),
        (500, "error"),
        (503, "error"),
        (504, "error"),
    ],
)
def test_verdict(status: int, expected: str) -> None:
    assert verdict(status) == expected


@pytest.mark.parametrize(
    ("status", "location", "expected"),
    [
        (401, False, 401),
        (403, False, 403),
        (302, True, 302),
        (301, True, 301),
        (303, True, 303),
        (307, True, 307),
        (308, True, 308),
        (302, False, 403),  # a redirect to nowhere is no redirect
        (300, True, 403),
        (304, True, 403),
        (400, False, 403),
        (404, False, 403),
        (429, False, 403),
    ],
)
def test_denial_status(status: int, location: bool, expected: int) -> None:
    assert denial_status(status, location) == expected


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"error": "no"}', True),
        ("application/problem+json", b'{"title": "no"}', True),
        ("Application/JSON; charset=utf-8", b"{}", True),
        ("application/vnd.acme+json", b"{}", True),
        ("application/json", b"", False),  # nothing to pass
        ("application/json", None, False),  # too long to have been kept
        ("text/html", b"<html>sign in</html>", False),
        ("text/plain", b"no", False),
        (None, b"{}", False),
        ("text/x+json", b"{}", False),
    ],
)
def test_passes_through(content_type: str | None, body: bytes | None, expected: bool) -> None:
    assert passes_through(content_type, body) is expected


def test_an_encoded_body_is_not_passed() -> None:
    assert not passes_through("application/json", b"\x1f\x8b...", "gzip")
    assert passes_through("application/json", b"{}", "identity")


def test_client_headers_are_the_allowed_ones_every_value() -> None:
    answer = CIMultiDictProxy(
        CIMultiDict(
            [
                ("WWW-Authenticate", 'Bearer realm="shop"'),
                ("Set-Cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("X-Internal", "secret"),
                ("Content-Type", "text/html"),
            ]
        )
    )
    got = client_headers(settings(), answer)
    assert list(got.items()) == [
        ("WWW-Authenticate", 'Bearer realm="shop"'),
        ("Set-Cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]


def test_upstream_headers_from_an_allowing_answer_replace_the_requests() -> None:
    s = settings(upstream_names=["X-Tenant", "X-Scopes"])
    upstream = CIMultiDict([("X-Tenant", "other"), ("Accept", "*/*")])
    answer = CIMultiDict(
        [("X-Tenant", "acme"), ("X-Scopes", "read"), ("X-Scopes", "write"), ("X-Debug", "1")]
    )
    take_upstream_headers(s, upstream, answer)
    assert upstream.getall("X-Tenant") == ["acme"]
    assert upstream.getall("X-Scopes") == ["read", "write"]
    assert "X-Debug" not in upstream  # not allowed
    assert upstream["Accept"] == "*/*"


def test_client_copies_of_upstream_headers_go_in_every_spelling() -> None:
    s = settings(upstream_names=["X-Tenant"])
    upstream = CIMultiDict(
        [("x-tenant", "a"), ("X_Tenant", "b"), ("X-TENANT", "c"), ("Accept", "*/*")]
    )
    drop_client_copies(s, upstream)
    assert list(upstream.items()) == [("Accept", "*/*")]
    nothing = settings()
    kept = CIMultiDict([("X-Tenant", "a")])
    drop_client_copies(nothing, kept)
    assert kept["X-Tenant"] == "a"


@pytest.mark.parametrize(
    ("by_default", "own", "checked"),
    [
        (True, None, True),
        (False, None, False),
        (True, RouteCheck(disabled=True), False),
        (False, RouteCheck(disabled=False), True),
        (True, RouteCheck(False, (("X-Ext-Authz-Context-a", "1"),)), True),
    ],
)
def test_which_routes_are_checked(by_default: bool, own: RouteCheck | None, checked: bool) -> None:
    assert settings(check_by_default=by_default).checks(own) is checked


def test_route_check_describes_its_context_by_key() -> None:
    own = RouteCheck(False, (("X-Ext-Authz-Context-resource", "orders"),))
    assert own.describe() == {"disabled": False, "context": {"resource": "orders"}}
