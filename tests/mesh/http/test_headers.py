"""Hop-by-hop header removal and the trusted X-Forwarded-For chain (table-driven)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from mesh.http.headers import (
    HOP_BY_HOP,
    client_address,
    connection_listed,
    drop_names,
    end_to_end,
    forwarded_chain,
    header_block_items,
)


def _headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


# --- connection_listed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param([], set(), id="no-connection-header"),
        pytest.param([("Connection", "close")], {"close"}, id="single-token"),
        pytest.param([("Connection", "X-Foo, X-Bar")], {"x-foo", "x-bar"}, id="comma-list"),
        pytest.param([("Connection", " x-a ,, ,x-b,")], {"x-a", "x-b"}, id="empty-tokens-skipped"),
        pytest.param(
            [("Connection", "X-A"), ("connection", "x-b, X-C")],
            {"x-a", "x-b", "x-c"},
            id="multiple-connection-headers-any-case",
        ),
        pytest.param([("CONNECTION", "Keep-Alive")], {"keep-alive"}, id="upper-case-name"),
        pytest.param([("Connection", "")], set(), id="empty-value"),
    ],
)
def test_connection_listed(pairs: list[tuple[str, str]], expected: set[str]) -> None:
    assert connection_listed(_headers(*pairs)) == expected


# --- end_to_end -----------------------------------------------------------------------------


def test_hop_by_hop_set_is_lower_case_and_complete() -> None:
    assert {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    } == HOP_BY_HOP


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "transfer-encoding",
        "UPGRADE",
        "te",
    ],
)
def test_end_to_end_drops_each_hop_by_hop_header_in_any_case(name: str) -> None:
    out = end_to_end(_headers((name, "v"), ("Accept", "*/*")))
    assert name not in out
    assert list(out.items()) == [("Accept", "*/*")]


@pytest.mark.parametrize(
    ("pairs", "also_drop", "expected"),
    [
        pytest.param(
            [("Connection", "X-Secret"), ("X-Secret", "1"), ("X-Keep", "2")],
            (),
            [("X-Keep", "2")],
            id="header-named-in-connection-dropped",
        ),
        pytest.param(
            [("Connection", "x-a, X-B"), ("X-A", "1"), ("x-b", "2"), ("X-C", "3")],
            (),
            [("X-C", "3")],
            id="comma-list-case-insensitive",
        ),
        pytest.param(
            [
                ("Connection", "X-A"),
                ("Connection", "x-b"),
                ("X-A", "1"),
                ("X-B", "2"),
                ("X-C", "3"),
            ],
            (),
            [("X-C", "3")],
            id="multiple-connection-headers",
        ),
        pytest.param(
            [("Connection", "X-Dup"), ("X-Dup", "1"), ("X-Dup", "2"), ("Accept", "a")],
            (),
            [("Accept", "a")],
            id="every-copy-of-a-listed-header",
        ),
        pytest.param(
            [("X-Internal", "1"), ("Accept", "a")],
            ("x-internal",),
            [("Accept", "a")],
            id="also-drop",
        ),
        pytest.param(
            [("Connection", "close"), ("Accept", "a"), ("X-Multi", "1"), ("X-Multi", "2")],
            (),
            [("Accept", "a"), ("X-Multi", "1"), ("X-Multi", "2")],
            id="end-to-end-headers-and-order-kept-with-duplicates",
        ),
        pytest.param(
            [("Connection", "Keep-Alive"), ("Keep-Alive", "timeout=5"), ("Host", "h")],
            (),
            [("Host", "h")],
            id="keep-alive-listed-and-hop-by-hop",
        ),
        pytest.param([], (), [], id="empty"),
    ],
)
def test_end_to_end(
    pairs: list[tuple[str, str]], also_drop: tuple[str, ...], expected: list[tuple[str, str]]
) -> None:
    assert list(end_to_end(_headers(*pairs), drop_names(also_drop)).items()) == expected


def test_end_to_end_returns_a_copy_and_accepts_a_proxy() -> None:
    original = _headers(("Connection", "close"), ("Accept", "a"))
    out = end_to_end(CIMultiDictProxy(original))
    assert isinstance(out, CIMultiDict)
    out["X-New"] = "1"
    assert "X-New" not in original
    assert "Connection" in original


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(
            [("Host", "h"), ("Accept", "a"), ("X-Multi", "1"), ("x-multi", "2")], id="plain"
        ),
        pytest.param([("Host", "h"), ("Te", "trailers"), ("Accept", "a")], id="one-hop-by-hop"),
        pytest.param([("Connection", "X-A"), ("x-a", "1"), ("X-B", "2")], id="connection"),
        pytest.param([("UPGRADE", "h2c"), ("Proxy-Connection", "x"), ("X-C", "3")], id="two"),
    ],
)
def test_end_to_end_matches_filtering_each_header_by_name(pairs: list[tuple[str, str]]) -> None:
    # The rule, header by header; end_to_end works on whole sets of names.
    headers = _headers(*pairs)
    drop = HOP_BY_HOP | connection_listed(headers)
    expected = [(k, v) for k, v in pairs if k.lower() not in drop]
    assert list(end_to_end(CIMultiDictProxy(headers)).items()) == expected


def test_end_to_end_without_any_dropped_name_is_an_equal_independent_copy() -> None:
    original = _headers(("Host", "h"), ("Accept", "a"), ("accept", "b"))
    out = end_to_end(original, drop_names(("x-internal",)))
    assert list(out.items()) == list(original.items())
    out["X-New"] = "1"
    assert "X-New" not in original


def test_drop_names_compare_equal_to_plain_lower_case_names() -> None:
    assert drop_names(("X-Internal",)) == HOP_BY_HOP | {"x-internal"}


# --- forwarded_chain / client_address -------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "trusted_hops", "expected"),
    [
        pytest.param(None, 1, [], id="no-header"),
        pytest.param("", 1, [], id="empty-header"),
        pytest.param("1.1.1.1", 0, [], id="zero-trusted-hops"),
        pytest.param("1.1.1.1", -1, [], id="negative-trusted-hops"),
        pytest.param("1.1.1.1", 1, ["1.1.1.1"], id="one-entry-one-hop"),
        pytest.param("6.6.6.6, 1.1.1.1", 1, ["1.1.1.1"], id="spoofed-head-dropped"),
        pytest.param(
            "6.6.6.6, 1.1.1.1, 10.0.0.2", 2, ["1.1.1.1", "10.0.0.2"], id="two-trusted-hops"
        ),
        pytest.param("1.1.1.1, 10.0.0.2", 5, ["1.1.1.1", "10.0.0.2"], id="fewer-than-hops"),
        pytest.param(" 1.1.1.1 ,  , 10.0.0.2 ,", 2, ["1.1.1.1", "10.0.0.2"], id="blank-entries"),
        pytest.param("2001:db8::1, 10.0.0.2", 2, ["2001:db8::1", "10.0.0.2"], id="ipv6-entry"),
    ],
)
def test_forwarded_chain(incoming: str | None, trusted_hops: int, expected: list[str]) -> None:
    assert forwarded_chain(incoming, trusted_hops) == expected


@pytest.mark.parametrize(
    ("peer", "chain", "expected"),
    [
        pytest.param("10.0.0.9", [], "10.0.0.9", id="no-chain-is-peer"),
        pytest.param("10.0.0.9", ["1.1.1.1"], "1.1.1.1", id="single-entry"),
        pytest.param("10.0.0.9", ["1.1.1.1", "10.0.0.2"], "1.1.1.1", id="first-trusted-entry"),
    ],
)
def test_client_address(peer: str, chain: list[str], expected: str) -> None:
    assert client_address(peer, chain) == expected


def test_client_address_ignores_spoofed_entries_end_to_end() -> None:
    chain = forwarded_chain("6.6.6.6, 203.0.113.7", trusted_hops=1)
    assert client_address("10.0.0.1", chain) == "203.0.113.7"


def test_header_block_items_are_its_lines_in_order() -> None:
    assert header_block_items("") == []
    assert header_block_items("X-User-Id: alice\r\nX-Note: a: b") == [
        ("X-User-Id", "alice"),
        ("X-Note", "a: b"),  # split at the first separator only
    ]
