"""Serving's steps without sockets: what a revalidation (304) keeps of an entry's tags;
how an answer read whole (a HEAD sent on as a GET, a range's miss) becomes its
client's; the request sent on for the whole answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry

from edge.cache.freshness import Timing
from edge.cache.metrics import CacheMetrics
from edge.cache.policy import CachePolicy
from edge.cache.serving import (
    EdgeCache,
    _ask_whole,
    _Fetch,
    _from_entry,
    _Resumed,
    _wants_range,
    sent_upstream,
)
from edge.cache.store import CacheStore, Entry
from mesh.exchange import Exchange
from mesh.transport.base import SwitchedConnection, UpstreamError
from tests.edge.cache.entries import make_entry

NOW = 1_000_000.0


def cache_with(tags: tuple[str, ...]) -> tuple[EdgeCache, Entry]:
    cache = EdgeCache(CacheStore(10**9, 100), CacheMetrics(CollectorRegistry()), lambda: NOW)
    stale = make_entry(
        headers={"Cache-Control": "max-age=1", "ETag": '"v"'},
        body=b"body",
        timing=Timing(lifetime=1, initial_age=0, received=NOW - 10),
        tags=tags,
    )
    assert cache.store.put(stale)
    return cache, stale


def refresh(cache: EdgeCache, stale: Entry, headers: dict[str, str]) -> Entry:
    return cache.refreshed(stale, CIMultiDict(headers), CachePolicy(), False, NOW, NOW)


def test_a_304_naming_no_tags_keeps_the_entrys() -> None:
    cache, stale = cache_with(("user-7",))
    fresh = refresh(cache, stale, {"Cache-Control": "max-age=60", "ETag": '"v"'})
    assert fresh.tags == ("user-7",) and list(cache.store) == [fresh]
    assert cache.store.purge(tags=["user-7"]) == 1


def test_a_304_naming_tags_replaces_them_and_they_are_not_stored_as_a_header() -> None:
    cache, stale = cache_with(("user-7",))
    fresh = refresh(cache, stale, {"Cache-Control": "max-age=60", "Surrogate-Key": "user-8"})
    assert fresh.tags == ("user-8",) and "Surrogate-Key" not in fresh.headers
    assert cache.store.purge(tags=["user-7"]) == 0
    assert cache.store.purge(tags=["user-8"]) == 1


# -- answers read whole -----------------------------------------------------------


class Upstream:
    """A service's answer whose body comes in ``pieces``, then fails when ``fails``."""

    def __init__(
        self, headers: Mapping[str, str], pieces: list[bytes], *, fails: bool = False
    ) -> None:
        self.status = 200
        self.reason: str | None = "OK"
        self.headers = CIMultiDictProxy(CIMultiDict(headers))
        self.pieces = pieces
        self.fails = fails
        self.taken = 0
        self.released = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.taken += 1
            yield piece
        if self.fails:
            raise UpstreamError("the body was cut short")

    def release(self) -> None:
        self.released = True

    def detach(self) -> SwitchedConnection:
        raise UpstreamError("no switch")


def request(method: str, headers: Mapping[str, str] | None = None) -> Exchange:
    """``method /a`` of host ``h`` as the cache sends it on (a HEAD as a GET)."""
    sent = {"Host": "h", **(headers or {})}
    ex = Exchange(
        make_mocked_request(method, "/a", headers=sent),
        "/a",
        "",
        "rid",
        "127.0.0.1",
        CIMultiDict(sent),
    )
    if method == "HEAD":
        ex.upstream_method = "GET"
    return ex


def fetch_for(ex: Exchange) -> tuple[EdgeCache, _Fetch]:
    cache = EdgeCache(CacheStore(10**9, 100), CacheMetrics(CollectorRegistry()), lambda: NOW)
    policy = CachePolicy()
    lookup = sent_upstream(ex)
    key = policy.key.primary("r", "h", "/a", "", lookup)
    flight = cache.flights.start(key)
    fetch = _Fetch(cache, ex, "r", policy, key, None, "miss", False, lookup, flight)
    return cache, fetch


FRESH = {"Cache-Control": "max-age=60", "ETag": '"v"', "Surrogate-Key": "t1"}


async def test_a_head_sent_on_as_a_get_stores_the_whole_and_gets_its_head() -> None:
    ex = request("HEAD")
    cache, fetch = fetch_for(ex)
    upstream = Upstream(FRESH, [b"hel", b"lo"])
    response = await fetch(ex, upstream)
    [entry] = list(cache.store)
    assert (entry.body, entry.tags, entry.hits) == (b"hello", ("t1",), 0)
    assert response.status == 200 and response.headers["Cache-Status"] == (
        "meshgate; fwd=miss; stored"
    )
    assert "Surrogate-Key" not in response.headers
    # Its body is the whole (its Content-Length); aiohttp sends none of it to a HEAD.
    assert getattr(response, "body", None) == b"hello"
    assert upstream.released and len(cache.flights) == 0
    assert cache.results["r"] == {"miss": 1}


async def test_a_range_miss_stores_the_whole_and_gets_its_range() -> None:
    ex = request("GET", {"Range": "bytes=1-3"})
    _ask_whole(ex)
    cache, fetch = fetch_for(ex)
    response = await fetch(ex, Upstream(FRESH, [b"hel", b"lo"]))
    assert [e.body for e in cache.store] == [b"hello"]
    assert (response.status, getattr(response, "body", None)) == (206, b"ell")
    assert response.headers["Content-Range"] == "bytes 1-3/5"


async def test_a_body_that_fails_midway_is_a_502_and_nothing_is_stored() -> None:
    ex = request("GET", {"Range": "bytes=1-3"})
    cache, fetch = fetch_for(ex)
    upstream = Upstream(FRESH, [b"hel"], fails=True)
    response = await fetch(ex, upstream)
    assert response.status == 502 and response.headers["Cache-Status"] == "meshgate; fwd=miss"
    assert len(cache.store) == 0 and upstream.released and len(cache.flights) == 0
    assert cache.results["r"] == {"miss": 1, "dropped:incomplete": 1}


async def test_a_resumed_body_gives_what_was_read_then_the_rest() -> None:
    upstream = Upstream({}, [b"a", b"b", b"c", b"d"])
    pieces = upstream.chunks()
    read = [await anext(pieces), await anext(pieces)]
    resumed = _Resumed(upstream, read, pieces)
    assert (resumed.status, resumed.reason, resumed.headers) == (200, "OK", upstream.headers)
    assert [piece async for piece in resumed.chunks()] == [b"a", b"b", b"c", b"d"]
    assert upstream.taken == 4 and not upstream.released
    resumed.release()
    assert upstream.released


# -- whole answers, ranges cut -----------------------------------------------------


def test_the_whole_is_asked_for_without_range_or_if_range() -> None:
    ex = request("GET", {"Range": "bytes=0-9", "if-range": '"v"', "If-None-Match": '"w"'})
    _ask_whole(ex)
    assert dict(ex.upstream_headers) == {"Host": "h", "If-None-Match": '"w"'}
    assert ex.request.headers["Range"] == "bytes=0-9"  # the client's range, to cut


@pytest.mark.parametrize(
    ("method", "headers", "wants"),
    [
        ("GET", {"Range": "bytes=0-9"}, True),
        ("GET", {"range": "bytes=0-9"}, True),
        ("GET", {}, False),
        ("HEAD", {"Range": "bytes=0-9"}, False),  # no range of a HEAD (RFC 9110 §14.2)
    ],
)
def test_which_requests_want_a_range(method: str, headers: dict[str, str], wants: bool) -> None:
    assert _wants_range(request(method, headers)) is wants


def test_a_range_is_cut_from_a_200_only() -> None:
    store = CacheStore(10**6, 10)
    ok = make_entry(body=b"0123456789")
    ranged = request("GET", {"Range": "bytes=2-4"})
    part = _from_entry(ranged, ok, 0.0, "m", store)
    assert (part.status, part.body, part.headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    gone = replace(ok, status=404, reason="Not Found")
    whole = _from_entry(ranged, gone, 0.0, "m", store)
    assert (whole.status, whole.body) == (404, b"0123456789")
    assert "Content-Range" not in whole.headers
    head = _from_entry(request("HEAD", {"Range": "bytes=2-4"}), ok, 0.0, "m", store)
    assert (head.status, head.body) == (200, b"0123456789")
