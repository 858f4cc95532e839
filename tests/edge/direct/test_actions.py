"""Redirect locations and the authority they are built from (pure)."""

from __future__ import annotations

import pytest

from edge.direct.actions import Redirect, redirect_host, rewrite_prefix
from edge.direct.location import location, split_authority


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("shop.example", ("shop.example", None)),
        ("Shop.Example:8080", ("shop.example", 8080)),
        ("10.0.0.1:80", ("10.0.0.1", 80)),
        ("[::1]", ("[::1]", None)),
        ("[2001:DB8::1]:8443", ("[2001:db8::1]", 8443)),
        ("", None),
        ("user@shop.example", None),
        ("shop.example/path", None),
        ("shop.example:", None),
        ("shop.example:0", None),
        ("shop.example:70000", None),
        ("shop.example\r\nSet-Cookie: x", None),
        ("bad host", None),
    ],
)
def test_split_authority(host: str, expected: tuple[str, int | None] | None) -> None:
    assert split_authority(host) == expected


@pytest.mark.parametrize(
    ("scheme", "port", "expected"),
    [
        ("https", None, "https://a.example/x"),
        ("https", 443, "https://a.example/x"),
        ("http", 80, "http://a.example/x"),
        ("https", 80, "https://a.example:80/x"),
        ("http", 8080, "http://a.example:8080/x"),
    ],
)
def test_location_leaves_out_the_default_port(scheme: str, port: int | None, expected: str) -> None:
    assert location(scheme, "a.example", port, "/x") == expected


@pytest.mark.parametrize(
    ("prefix", "replacement", "path", "expected"),
    [
        ("/api/users", "/users", "/api/users/7", "/users/7"),
        ("/api/users", "/users", "/api/users", "/users"),
        ("/api/users", "/", "/api/users/7", "/7"),
        ("/api/users", "/", "/api/users", "/"),
        ("/api/users", "/v2/", "/api/users/7", "/v2/7"),
        ("/", "/base", "/a/b", "/base/a/b"),
    ],
)
def test_rewrite_prefix(prefix: str, replacement: str, path: str, expected: str) -> None:
    assert rewrite_prefix(prefix, replacement, path) == expected


def _location(redirect: Redirect, scheme: str = "http", host: str = "shop.example:8080") -> str:
    url = redirect.location(scheme, host, "/old", "/old/7", "a=1&b=2")
    assert url is not None
    return url


@pytest.mark.parametrize(
    ("redirect", "expected"),
    [
        pytest.param(Redirect(), "http://shop.example:8080/old/7?a=1&b=2", id="nothing-replaced"),
        pytest.param(
            Redirect(scheme="https"), "https://shop.example/old/7?a=1&b=2", id="scheme-drops-port"
        ),
        pytest.param(
            Redirect(scheme="http"), "http://shop.example:8080/old/7?a=1&b=2", id="same-scheme"
        ),
        pytest.param(
            Redirect(scheme="https", port=8443),
            "https://shop.example:8443/old/7?a=1&b=2",
            id="scheme-and-port",
        ),
        pytest.param(
            Redirect(host=("docs.example", None)),
            "http://docs.example/old/7?a=1&b=2",
            id="host-without-port",
        ),
        pytest.param(
            Redirect(host=("docs.example", 9000)),
            "http://docs.example:9000/old/7?a=1&b=2",
            id="host-with-port",
        ),
        pytest.param(
            Redirect(host=("docs.example", 9000), port=9100),
            "http://docs.example:9100/old/7?a=1&b=2",
            id="port-over-host-port",
        ),
        pytest.param(Redirect(port=80), "http://shop.example/old/7?a=1&b=2", id="default-port"),
        pytest.param(Redirect(path="/new"), "http://shop.example:8080/new?a=1&b=2", id="path"),
        pytest.param(
            Redirect(prefix_rewrite="/new"),
            "http://shop.example:8080/new/7?a=1&b=2",
            id="prefix-rewrite",
        ),
        pytest.param(
            Redirect(path="/", strip_query=True), "http://shop.example:8080/", id="strip-query"
        ),
    ],
)
def test_redirect_location(redirect: Redirect, expected: str) -> None:
    assert _location(redirect) == expected


def test_redirect_from_https_to_http_drops_the_port() -> None:
    assert _location(Redirect(scheme="http"), "https", "shop.example:8443") == (
        "http://shop.example/old/7?a=1&b=2"
    )


def test_redirect_without_a_usable_host() -> None:
    # The request's Host is needed: none, or one that is not an authority, gives no URL ...
    assert Redirect().location("http", "", "/old", "/old/7", "") is None
    assert Redirect().location("http", "a\r\nb", "/old", "/old/7", "") is None
    # ... unless the redirect names its own host.
    assert Redirect(host=("docs.example", None)).location("http", "", "/old", "/old", "") == (
        "http://docs.example/old"
    )


def test_redirect_without_a_query_writes_no_question_mark() -> None:
    assert Redirect().location("http", "a.example", "/", "/x", "") == "http://a.example/x"


def test_redirect_host() -> None:
    assert redirect_host("Docs.Example:8443") == ("docs.example", 8443)
    with pytest.raises(ValueError, match="not a host name"):
        redirect_host("https://docs.example")


def test_describe() -> None:
    described = Redirect(code=308, host=("docs.example", 8443), strip_query=True).describe()
    assert described["redirect"]["host"] == "docs.example:8443"
    assert described["redirect"]["code"] == 308
    assert described["redirect"]["strip_query"] is True
