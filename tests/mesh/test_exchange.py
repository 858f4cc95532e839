"""Exchange: what the response that goes back carries, and what goes upstream."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from mesh.exchange import Exchange, merge_vary


def _exchange() -> Exchange:
    return Exchange(make_mocked_request("GET", "/x"), "/x", "", "rid", "127.0.0.1", CIMultiDict())


def test_response_headers_replace_the_upstreams_and_keep_the_rest() -> None:
    ex = _exchange()
    ex.response_headers.extend([("X-Request-Id", "rid"), ("RateLimit-Limit", "10")])
    response = web.Response(headers={"x-request-id": "upstream", "X-Upstream": "kept"})
    ex.apply_response_headers(response)
    assert response.headers.getall("X-Request-Id") == ["rid"]
    assert response.headers["RateLimit-Limit"] == "10"
    assert response.headers["X-Upstream"] == "kept"
    assert ex.response_headers == []


def test_response_headers_are_applied_once() -> None:
    ex = _exchange()
    ex.response_headers.append(("X-Request-Id", "rid"))
    first = web.Response()
    ex.apply_response_headers(first)
    second = web.Response()
    ex.apply_response_headers(second)
    assert first.headers["X-Request-Id"] == "rid"
    assert "X-Request-Id" not in second.headers


def test_vary_is_merged_into_the_upstreams_once() -> None:
    ex = _exchange()
    ex.vary = "Origin"
    response = web.Response(headers={"Vary": "Accept-Encoding"})
    ex.apply_response_headers(response)  # no response_headers: vary alone still applies
    assert response.headers["Vary"] == "Accept-Encoding, Origin"
    again = web.Response()
    ex.apply_response_headers(again)
    assert "Vary" not in again.headers


def test_upstream_items_are_the_headers_then_the_blocks() -> None:
    ex = _exchange()
    ex.upstream_headers.extend([("Host", "h"), ("X-Tag", "1"), ("X-Tag", "2")])
    assert ex.upstream_items() == [("Host", "h"), ("X-Tag", "1"), ("X-Tag", "2")]
    ex.upstream_header_block = "X-User-Id: alice\r\nX-Auth-Method: jwt"
    assert ex.upstream_items() == [
        ("Host", "h"),
        ("X-Tag", "1"),
        ("X-Tag", "2"),
        ("X-User-Id", "alice"),
        ("X-Auth-Method", "jwt"),
    ]
    ex.attempt_header_block = "traceparent: 00-t-s-01"
    assert ex.upstream_items()[-3:] == [
        ("X-User-Id", "alice"),
        ("X-Auth-Method", "jwt"),
        ("traceparent", "00-t-s-01"),
    ]


def test_the_header_block_is_the_requests_then_the_attempts() -> None:
    ex = _exchange()
    assert ex.header_block() == ""
    ex.attempt_header_block = "traceparent: 00-t-s-01"
    assert ex.header_block() == "traceparent: 00-t-s-01"
    ex.upstream_header_block = "X-User-Id: alice"
    assert ex.header_block() == "X-User-Id: alice\r\ntraceparent: 00-t-s-01"
    ex.attempt_header_block = ""
    assert ex.header_block() == "X-User-Id: alice"


@pytest.mark.parametrize(
    ("existing", "more", "merged"),
    [
        (None, "Origin", "Origin"),
        ("", "Origin", "Origin"),
        ("Accept-Encoding", "Origin", "Accept-Encoding, Origin"),
        ("accept-encoding, origin", "Origin", "accept-encoding, origin"),
        ("*", "Origin", "*"),
        ("Accept", "Origin, Accept", "Accept, Origin"),
    ],
)
def test_merge_vary(existing: str | None, more: str, merged: str) -> None:
    assert merge_vary(existing, more) == merged
