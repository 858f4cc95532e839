"""A route's ``redirect`` and ``direct_response`` blocks: what they load to, and what is
refused (naming the file, the key and the problem)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_config
from edge.direct.actions import DirectResponse, Redirect
from edge.direct.config import MAX_BODY, DirectResponseConfig, RedirectConfig
from edge.gateway import config_routes
from tests.edge.refused_config import assert_refused


def test_redirect_defaults() -> None:
    assert RedirectConfig().action() == Redirect()
    assert Redirect().code == 301  # as Envoy's RedirectAction


def test_redirect_action_reads_the_host() -> None:
    config = RedirectConfig(code=302, scheme="https", host="Docs.Example:8443", path="/x")
    assert config.action() == Redirect(302, "https", ("docs.example", 8443), None, "/x")


def test_direct_response_body_and_type() -> None:
    assert DirectResponseConfig(status=200, body="ok\n").action() == DirectResponse(
        200, b"ok\n", "text/plain; charset=utf-8"
    )
    # No body: no Content-Type either.
    assert DirectResponseConfig(status=503, content_type="text/html").action() == (
        DirectResponse(503, b"", None)
    )


def test_direct_response_body_file(tmp_path: Path) -> None:
    page = tmp_path / "maintenance.html"
    page.write_bytes(b"<h1>back soon</h1>\xe2\x80\xa6")
    config = DirectResponseConfig(status=503, body_file=str(page), content_type="text/html")
    assert config.action() == DirectResponse(503, page.read_bytes(), "text/html")


def test_routes_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "routes:\n"
        "  - {prefix: /old, redirect: {prefix_rewrite: /new, code: 308}}\n"
        "  - {prefix: /health, direct_response: {status: 200, body: ok}}\n"
        "  - {prefix: /api, service: api, name: the-api}\n"
    )
    moved, health, api = config_routes(load_edge_config(path))
    assert (moved.service, moved.name, moved.direct) == (
        None,
        "redirect:/old",
        Redirect(code=308, prefix_rewrite="/new"),
    )
    assert (health.service, health.name) == (None, "response:/health")
    assert health.direct == DirectResponse(200, b"ok", "text/plain; charset=utf-8")
    assert (api.service, api.direct) == ("api", None)
    # /routes shows what each answers.
    assert moved.describe()["redirect"]["prefix_rewrite"] == "/new"
    assert health.describe()["direct_response"] == {
        "status": 200,
        "body_bytes": 2,
        "content_type": "text/plain; charset=utf-8",
    }
    assert "redirect" not in api.describe()


@pytest.mark.parametrize(
    ("route", "key_path", "problem"),
    [
        pytest.param(
            "{prefix: /a, service: s, redirect: {path: /b}}",
            "routes[0]",
            "give exactly one of service, redirect and direct_response (found service and "
            "redirect)",
            id="service-and-redirect",
        ),
        pytest.param(
            "{prefix: /a, redirect: {}, direct_response: {status: 200}}",
            "routes[0]",
            "(found redirect and direct_response)",
            id="redirect-and-response",
        ),
        pytest.param(
            "{prefix: /a, redirect: {path: /b}, cache: {}}",
            "routes[0]",
            "cache: a route with redirect is answered by the edge, no service",
            id="redirect-with-cache",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {status: 200}, strip_prefix: true}",
            "routes[0]",
            "strip_prefix: a route with direct_response is answered by the edge",
            id="response-with-strip-prefix",
        ),
        pytest.param(
            "{prefix: /a, redirect: {path: /b}, timeout: 5s}",
            "routes[0]",
            "timeout: a route with redirect",
            id="redirect-with-timeout",
        ),
        pytest.param(
            "{prefix: /a, redirect: {code: 200}}",
            "routes[0].redirect.code",
            "200 is not a redirect: use 301, 302, 303, 307 or 308",
            id="redirect-code",
        ),
        pytest.param(
            "{prefix: /a, redirect: {host: 'https://docs.example'}}",
            "routes[0].redirect.host",
            "is not a host name or address",
            id="redirect-host-url",
        ),
        pytest.param(
            "{prefix: /a, redirect: {path: '/b?x=1'}}",
            "routes[0].redirect.path",
            "must be an absolute URL path",
            id="redirect-path-query",
        ),
        pytest.param(
            "{prefix: /a, redirect: {prefix_rewrite: 'b'}}",
            "routes[0].redirect.prefix_rewrite",
            "must be an absolute URL path",
            id="redirect-rewrite-relative",
        ),
        pytest.param(
            "{prefix: /a, redirect: {path: '/a b'}}",
            "routes[0].redirect.path",
            "no query, fragment or spaces",
            id="redirect-path-space",
        ),
        pytest.param(
            "{prefix: /a, redirect: {path: '/%zz'}}",
            "routes[0].redirect.path",
            "%XX escapes",
            id="redirect-path-bad-escape",
        ),
        pytest.param(
            "{prefix: /a, redirect: {path: /b, prefix_rewrite: /c}}",
            "routes[0].redirect",
            "use either path or prefix_rewrite, not both",
            id="redirect-two-paths",
        ),
        pytest.param(
            "{prefix: /a, redirect: {scheme: ftp}}",
            "routes[0].redirect.scheme",
            "'http' or 'https'",
            id="redirect-scheme",
        ),
        pytest.param(
            "{prefix: /a, redirect: {port: 0}}",
            "routes[0].redirect.port",
            "greater than or equal to 1",
            id="redirect-port",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {body: hi}}",
            "routes[0].direct_response.status",
            "required key is missing",
            id="response-without-status",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {status: 101}}",
            "routes[0].direct_response.status",
            "greater than or equal to 200",
            id="response-status-1xx",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {status: 204, body: hi}}",
            "routes[0].direct_response",
            "a 204 answer has no body",
            id="response-204-with-body",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {status: 200, body: a, body_file: /etc/hostname}}",
            "routes[0].direct_response",
            "use either body or body_file, not both",
            id="response-two-bodies",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {status: 200, body_file: /nonexistent/page.html}}",
            "routes[0].direct_response",
            "body_file /nonexistent/page.html: cannot read it (No such file or directory)",
            id="response-missing-file",
        ),
        pytest.param(
            "{prefix: /a, direct_response: {status: 200, body: a, content_type: ''}}",
            "routes[0].direct_response.content_type",
            "is not a valid header value",
            id="response-empty-type",
        ),
    ],
)
def test_refused(tmp_path: Path, route: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, f"routes:\n  - {route}", key_path, problem)


def test_refused_body_too_large(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (MAX_BODY + 1))
    assert_refused(
        tmp_path,
        f"routes:\n  - {{prefix: /a, direct_response: {{status: 200, body_file: {big}}}}}",
        "routes[0].direct_response",
        f"the body is {MAX_BODY + 1} bytes, more than the {MAX_BODY} allowed",
    )


def test_refused_header_value_with_a_line_break(tmp_path: Path) -> None:
    assert_refused(
        tmp_path,
        "routes:\n  - prefix: /a\n"
        '    direct_response: {status: 200, body: a, content_type: "a\\r\\nb"}',
        "routes[0].direct_response.content_type",
        "is not a valid header value",
    )
