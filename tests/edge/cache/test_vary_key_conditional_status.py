"""Vary, the primary key, conditional requests and Cache-Status: the small pure parts."""

from __future__ import annotations

import re
import time

import pytest

from edge.cache import status
from edge.cache.conditional import not_modified, opaque_tags, weak_match
from edge.cache.key import KeySpec
from edge.cache.vary import matches, normalise, variant, vary_names

HEADERS = {"accept-language": "en,  fr", "x-user-id": "alice"}


def lookup(name: str) -> str | None:
    return HEADERS.get(name)


# -- Vary ---------------------------------------------------------------------------


def test_vary_names() -> None:
    assert vary_names([]) == ()
    assert vary_names(["Accept-Encoding, accept-language", "X-User-Id , Accept-Encoding"]) == (
        "accept-encoding",
        "accept-language",
        "x-user-id",
    )
    assert vary_names(["Accept", " * "]) is None


def test_values_are_normalised_around_commas() -> None:
    assert normalise(" en ,fr,  de ") == "en, fr, de"
    assert normalise(None) is None


def test_a_variant_matches_the_same_values_only() -> None:
    stored = variant(("accept-language", "x-user-id", "x-absent"), lookup)
    assert stored == (("accept-language", "en, fr"), ("x-user-id", "alice"), ("x-absent", None))
    assert matches(stored, lookup)
    assert matches(stored, {"accept-language": "en,fr", "x-user-id": "alice"}.get)
    assert not matches(stored, {"accept-language": "en, fr", "x-user-id": "bob"}.get)
    # Absent is a value too: a request sending the header does not match.
    assert not matches(stored, {**HEADERS, "x-absent": ""}.get)
    assert matches((), lookup)


# -- the primary key ----------------------------------------------------------------


def test_the_key_has_route_host_path_and_the_whole_query_by_default() -> None:
    spec = KeySpec()
    key = spec.primary("r", "Shop.Example:8080", "/a", "b=2&a=1", lookup)
    assert key == ("r", "shop.example:8080", "/a", "b=2&a=1")
    assert key != spec.primary("r", "shop.example:8080", "/a", "a=1&b=2", lookup)
    assert key != spec.primary("other", "shop.example:8080", "/a", "b=2&a=1", lookup)


def test_the_query_ignored() -> None:
    spec = KeySpec(query="none")
    assert spec.primary("r", "h", "/a", "x=1", lookup) == spec.primary("r", "h", "/a", "", lookup)


def test_only_named_parameters_kept_in_sorted_order() -> None:
    spec = KeySpec(query=("page", "lang"))
    one = spec.primary("r", "h", "/a", "utm=1&page=2&lang=en&page=3", lookup)
    two = spec.primary("r", "h", "/a", "lang=en&page=2&page=3&utm=9", lookup)
    assert one == two == ("r", "h", "/a", (("lang", "en"), ("page", "2"), ("page", "3")))
    assert one != spec.primary("r", "h", "/a", "lang=en&page=3&page=2", lookup)  # value order


def test_key_headers_join_the_key_as_sent_upstream() -> None:
    spec = KeySpec(headers=("x-user-id", "x-tenant"))
    key = spec.primary("r", "h", "/a", "", lookup)
    assert key == ("r", "h", "/a", "", ("alice", None))
    assert key != spec.primary("r", "h", "/a", "", {"x-user-id": "bob"}.get)


# -- conditional requests -------------------------------------------------------------


def test_opaque_tags() -> None:
    assert opaque_tags('"a", W/"b",  "c,d"') == ['"a"', '"b"', '"c,d"']
    assert opaque_tags(" * ") is None
    assert opaque_tags("garbage") == []


# The pattern as it was, with a leading \s*: the tags found must not change.
_BACKTRACKING_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[^"]*")\s*(?:,|$)')


@pytest.mark.parametrize(
    "field",
    [
        '"a", W/"b",  "c,d"',
        '  "a"  ,   W/"b"  ',
        '\t"a",\t\tW/"b"',
        '"a" "b", "c"',
        'W/ "a", x"b", W/W/"c"',
        '"unterminated, "a"',
        ",,, ,",
        "",
    ],
)
def test_opaque_tags_reads_lists_as_the_pattern_with_leading_blanks_did(field: str) -> None:
    expected = [m.group(1) for m in _BACKTRACKING_ENTITY_TAG.finditer(field)]
    assert opaque_tags(field) == expected


@pytest.mark.parametrize(
    "field",
    [
        "a" + " " * 40_000 + "x",  # with the leading \s*: about 30 s (1.3 s for 8 KB)
        '"a"' + " " * 40_000 + "x",
        ('"' + " " * 100) * 1_000,
        "W/" * 50_000,
    ],
)
def test_opaque_tags_takes_linear_time_on_a_hostile_if_none_match(field: str) -> None:
    started = time.monotonic()
    opaque_tags(field)
    assert time.monotonic() - started < 5.0  # generous: it takes a few milliseconds


@pytest.mark.parametrize(
    ("field", "etag", "matched"),
    [
        ('"v1"', '"v1"', True),
        ('W/"v1"', '"v1"', True),  # weak comparison: the edge's gzip made it weak
        ('"v1"', 'W/"v1"', True),
        ('"v0", "v1"', '"v1"', True),
        ('"v2"', '"v1"', False),
        ("*", '"v1"', True),
        ("*", None, True),  # a stored response exists
        ('"v1"', None, False),
    ],
)
def test_weak_match(field: str, etag: str | None, matched: bool) -> None:
    assert weak_match(field, etag) is matched


MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    ("request_headers", "stored_status", "etag", "last_modified", "unmodified"),
    [
        ({"If-None-Match": '"v1"'}, 200, '"v1"', None, True),
        ({"If-None-Match": '"v1"'}, 404, '"v1"', None, False),  # 2xx only
        ({"If-Modified-Since": MODIFIED}, 200, None, MODIFIED, True),
        ({"If-Modified-Since": "Sun, 06 Nov 1994 09:00:00 GMT"}, 200, None, MODIFIED, True),
        ({"If-Modified-Since": "Sun, 06 Nov 1994 08:00:00 GMT"}, 200, None, MODIFIED, False),
        ({"If-Modified-Since": MODIFIED}, 200, None, None, False),  # no Last-Modified
        ({"If-Modified-Since": "junk"}, 200, None, MODIFIED, False),
        # If-None-Match decides alone when present.
        ({"If-None-Match": '"v2"', "If-Modified-Since": MODIFIED}, 200, '"v1"', MODIFIED, False),
        ({}, 200, '"v1"', MODIFIED, False),
    ],
)
def test_not_modified(
    request_headers: dict[str, str],
    stored_status: int,
    etag: str | None,
    last_modified: str | None,
    unmodified: bool,
) -> None:
    assert not_modified(request_headers, stored_status, etag, last_modified) is unmodified


# -- Cache-Status -------------------------------------------------------------------------


def test_cache_status_members() -> None:
    assert status.hit(42.9) == "meshgate; hit; ttl=42"
    assert status.hit(-3.2, "stale-while-revalidate") == (
        "meshgate; hit; ttl=-3; detail=stale-while-revalidate"
    )
    assert status.forwarded("miss", stored=True) == "meshgate; fwd=miss; stored"
    assert (
        status.forwarded("miss", collapsed=True, ttl=60) == "meshgate; fwd=miss; collapsed; ttl=60"
    )
    assert (
        status.forwarded("stale", status=304, ttl=10)
        == "meshgate; fwd=stale; fwd-status=304; ttl=10"
    )
    assert status.forwarded("miss", detail="private") == "meshgate; fwd=miss; detail=private"
    assert status.appended(None, "meshgate; hit; ttl=1") == "meshgate; hit; ttl=1"
    assert status.appended("app-cache; hit", "meshgate; hit; ttl=1") == (
        "app-cache; hit, meshgate; hit; ttl=1"
    )
