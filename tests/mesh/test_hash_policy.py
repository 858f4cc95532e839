"""A request's hash key: the first source it carries, read from what the client sent."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from mesh.exchange import Exchange
from mesh.hash_policy import HashPolicy, HashSource, parse_hash_sources


def _exchange(headers: dict[str, str] | None = None, query: str = "") -> Exchange:
    target = f"/cart?{query}" if query else "/cart"
    request = make_mocked_request("GET", target, headers=headers or {})
    return Exchange(
        request=request,
        path="/cart",
        query=query,
        request_id="rid",
        client_ip="192.0.2.7",
        upstream_headers=CIMultiDict(headers or {}),
    )


POLICY = HashPolicy(
    (
        HashSource("header", "X-User-Id"),
        HashSource("cookie", "session"),
        HashSource("query", "cart"),
        HashSource("source_ip"),
    )
)


@pytest.mark.parametrize(
    ("headers", "query", "key"),
    [
        pytest.param({"x-user-id": "u7", "Cookie": "session=s1"}, "cart=c1", "u7", id="header"),
        pytest.param({"Cookie": "theme=dark; session=s1"}, "cart=c1", "s1", id="cookie"),
        pytest.param({}, "a=1&cart=c%201&cart=c2", "c 1", id="query-first-value-decoded"),
        pytest.param({}, "", "192.0.2.7", id="source-ip"),
        pytest.param({"X-User-Id": ""}, "cart=", "192.0.2.7", id="empty-values-are-absent"),
        pytest.param({"Cookie": "Session=s1"}, "Cart=c1", "192.0.2.7", id="names-case-sensitive"),
    ],
)
def test_the_first_source_present_gives_the_key(
    headers: dict[str, str], query: str, key: str
) -> None:
    assert POLICY.key(_exchange(headers, query)) == key


def test_no_source_present_gives_no_key() -> None:
    policy = HashPolicy((HashSource("header", "X-User-Id"), HashSource("cookie", "session")))
    assert policy.key(_exchange({"Cookie": "other=1"})) is None


def test_headers_changed_by_filters_do_not_change_the_key() -> None:
    ex = _exchange({"X-User-Id": "u7"})
    ex.upstream_headers["X-User-Id"] = "rewritten"
    assert POLICY.key(ex) == "u7"


def test_describe_and_text() -> None:
    assert POLICY.describe() == [
        {"header": "X-User-Id"},
        {"cookie": "session"},
        {"query": "cart"},
        {"source_ip": True},
    ]
    assert [s.text() for s in POLICY.sources] == [
        "header:X-User-Id",
        "cookie:session",
        "query:cart",
        "source_ip",
    ]


def test_parse_hash_sources_reads_what_text_writes() -> None:
    text = ", ".join(s.text() for s in POLICY.sources)
    assert parse_hash_sources(text) == POLICY


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("", "no source given", id="blank"),
        pytest.param("header", "'header': expected header:<name>", id="no-name"),
        pytest.param("header:", "'header:': expected", id="empty-name"),
        pytest.param("source_ip:x", "'source_ip:x': expected", id="source-ip-with-name"),
        pytest.param("body:x", "'body:x': expected", id="unknown-kind"),
        pytest.param("header:X User", "'X User' in 'header:X User' is not a valid", id="bad-name"),
    ],
)
def test_parse_hash_sources_refuses(value: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_hash_sources(value)
    assert problem in str(caught.value)
