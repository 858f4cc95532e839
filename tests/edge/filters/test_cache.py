"""The cache filter in front of the real proxy, transport and a real upstream server, over
real sockets; the cache's wall clock is the test's (the upstream dates its answers by it).

The upstream's ``/c/<name>`` answers as its query asks (as the demo service's
``/<name>/cached/...``): ``cc`` (Cache-Control), ``etag``, ``vary``, ``cookie``,
``status``, ``bytes`` with ``stream``, ``ms`` (a delay); a conditional request its ETag
meets gets 304; every answer is numbered per path (``X-Served``) and counted.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from email.utils import formatdate

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from edge.cache.key import KeySpec
from edge.cache.metrics import CacheMetrics
from edge.cache.policy import CachePolicy
from edge.cache.serving import EdgeCache
from edge.cache.store import CacheStore
from edge.filters.cache import CacheFilter
from edge.routes import Route, make_route
from mesh.balancing import Balancer
from mesh.chain import Handler, build_chain
from mesh.exchange import Exchange
from mesh.http.compression import ResponseCompression
from mesh.ingress import Ingress
from mesh.proxy import Proxy, ProxySettings
from mesh.server import Listener
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.transport.fast import FastTransport

START = 1_800_000_000.0


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Upstream:
    clock: Clock
    served: Counter[str] = field(default_factory=Counter)
    seen: list[CIMultiDict[str]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    fail: int | None = None
    """Answer every request with this status (no caching headers) while set."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.served[request.path] += 1
        self.seen.append(CIMultiDict(request.headers))
        self.methods.append(request.method)
        query = request.query
        if "ms" in query:
            await asyncio.sleep(int(query["ms"]) / 1000)
        date = formatdate(self.clock.now, usegmt=True)
        n = str(self.served[request.path])
        if self.fail is not None:
            return web.Response(status=self.fail, text="failing", headers={"Date": date})
        if request.method not in ("GET", "HEAD"):
            return web.Response(text="changed", headers={"Date": date})
        headers = {"Date": date, "X-Served": n, "Content-Type": "application/json"}
        for key, name in (("cc", "Cache-Control"), ("vary", "Vary")):
            if key in query:
                headers[name] = query[key]
        etag = f'"{query["etag"]}"' if "etag" in query else None
        if etag is not None:
            headers["ETag"] = etag
            if etag in request.headers.get("If-None-Match", ""):
                return web.Response(status=304, headers=headers)
        if query.get("cookie") == "1":
            headers["Set-Cookie"] = "session=s; Path=/"
        status = int(query.get("status", "200"))
        size = int(query.get("bytes", "0"))
        body = (f'{{"n":{n}}}' + " " * size).encode()
        if query.get("stream") != "1":
            return web.Response(status=status, body=body, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        for i in range(0, len(body), 16384):
            await response.write(body[i : i + 16384])
        await response.write_eof()
        return response


@dataclass
class Rig:
    url: str
    clock: Clock
    upstream: Upstream
    cache: EdgeCache
    registry: CollectorRegistry
    site: web.TCPSite
    runner: web.AppRunner
    routes: dict[str, Route]

    def results(self, route: str = "cached") -> dict[str, float]:
        out = {}
        for metric in self.registry.collect():
            if metric.name == "meshgate_cache_requests":
                for sample in metric.samples:
                    if sample.name.endswith("_total") and sample.labels["route"] == route:
                        out[sample.labels["result"]] = sample.value
        return out

    def served(self, path: str) -> int:
        return self.upstream.served[path]


POLICY = CachePolicy(stale_while_revalidate=0.0, stale_if_error=0.0)


def route_for(name: str, policy: CachePolicy | None) -> Route:
    return make_route(prefix="/", service="svc", source="config", name=name, cache=policy)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """Routes ``cached`` (``POLICY``; a test may replace it in ``rig.routes``), ``swr``
    (10 s windows) and ``uncached`` (no cache). Requests pick one with ``?route=``;
    ``X-Test-Identity`` makes one authenticated (identity headers set as the edge's auth
    would)."""
    clock = Clock()
    upstream = Upstream(clock)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    snapshot = Snapshot(
        {"svc": ServiceEntry("svc", (Instance("svc-1", "svc", "127.0.0.1", port),))}
    )
    transport = FastTransport()
    proxy = Proxy(
        transport,
        lambda: snapshot,
        Balancer("round_robin"),
        ProxySettings(connect_timeout=0.5, response_timeout=2.0, connect_attempts=1),
    )
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)
    cache = EdgeCache(CacheStore(10 * 1024 * 1024, 1000, metrics), metrics, clock)
    routes = {
        "cached": route_for("cached", POLICY),
        "swr": route_for("swr", CachePolicy(stale_while_revalidate=10.0, stale_if_error=10.0)),
        "uncached": route_for("uncached", None),
    }
    compression = ResponseCompression(("application/json",), 100)

    async def routing(ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        route = routes[dict(ex.request.query).get("route", "cached")]
        ex.attrs["route"] = route
        ex.route = route.name
        ex.service = route.service
        ex.timeout = 5.0
        if "gzip" in ex.query:
            ex.compression = compression
        # As the edge's auth would: client copies of identity headers gone, the
        # authenticated caller's identity set in the rendered block.
        ex.upstream_headers.popall("X-User-Id", None)
        who = ex.request.headers.get("X-Test-Identity")
        if who is not None:
            ex.attrs["identity"] = who
            ex.upstream_header_block = f"X-User-Id: {who}"
        return await next_handler(ex)

    chain = build_chain([routing, CacheFilter(cache)], proxy)
    listener = Listener("front", Ingress(lambda: chain), "127.0.0.1", 0, shutdown_timeout=0.5)
    await listener.start()
    try:
        yield Rig(
            f"http://127.0.0.1:{listener.port}",
            clock,
            upstream,
            cache,
            registry,
            site,
            runner,
            routes,
        )
    finally:
        await cache.stop()
        await listener.stop()
        await transport.close()
        await runner.cleanup()


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    @property
    def served(self) -> str | None:
        """Which of the upstream's answers this is (its X-Served)."""
        return self.headers.get("X-Served")

    @property
    def cache_status(self) -> str:
        return self.headers.get("Cache-Status", "")


async def get(url: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> Answer:
    async with (
        aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=["Accept-Encoding"]) as s,
        s.request(method, url, headers=dict(headers or {})) as resp,
    ):
        return Answer(resp.status, CIMultiDict(resp.headers), await resp.read())


# -- hits, expiry, revalidation --------------------------------------------------------


async def test_a_stored_answer_is_served_without_the_service(rig: Rig) -> None:
    url = f"{rig.url}/c/a?cc=max-age=60"
    first = await get(url)
    assert (first.status, first.served, first.cache_status) == (
        200,
        "1",
        "meshgate; fwd=miss; stored",
    )
    assert "Age" not in first.headers
    rig.clock.now += 10
    second = await get(url)
    assert (second.status, second.served, second.body) == (200, "1", first.body)
    assert second.cache_status == "meshgate; hit; ttl=50"
    assert second.headers["Age"] == "10"
    assert second.headers["Date"] == first.headers["Date"]  # the service's, as stored
    assert rig.served("/c/a") == 1
    head = await get(url, method="HEAD")  # HEAD from GET's entry
    assert (head.status, head.body, head.headers["Content-Length"]) == (
        200,
        b"",
        str(len(first.body)),
    )
    assert rig.served("/c/a") == 1
    assert rig.results() == {"miss": 1.0, "hit": 2.0}
    # Another query is another resource.
    assert (await get(f"{url}&x=1")).served == "2"  # numbered per path
    assert rig.served("/c/a") == 2


async def test_a_stale_answer_is_revalidated_and_a_304_refreshes_it(rig: Rig) -> None:
    url = f"{rig.url}/c/r?cc=max-age=10&etag=v1"
    await get(url)
    rig.clock.now += 11
    answer = await get(url, {"If-None-Match": '"old"'})
    assert answer.status == 200  # the client's tag is not the stored one
    assert answer.cache_status == "meshgate; fwd=stale; fwd-status=304; ttl=10"
    assert answer.served == "2"  # the 304's headers update the stored ones
    assert (
        rig.upstream.seen[-1]["If-None-Match"] == '"v1"'
    )  # the entry's validator, not the client's
    assert rig.served("/c/r") == 2
    rig.clock.now += 5
    fresh = await get(url)
    assert (fresh.cache_status, fresh.headers["Age"]) == ("meshgate; hit; ttl=5", "5")
    assert rig.served("/c/r") == 2
    assert rig.results() == {"miss": 1.0, "revalidated": 1.0, "hit": 1.0}


async def test_a_client_conditional_request_gets_a_304_from_a_fresh_entry(rig: Rig) -> None:
    url = f"{rig.url}/c/c?cc=max-age=60&etag=v1"
    await get(url)
    answer = await get(url, {"If-None-Match": 'W/"v1"'})
    assert (answer.status, answer.body) == (304, b"")
    assert answer.headers["ETag"] == '"v1"' and answer.headers["Cache-Control"] == "max-age=60"
    assert answer.cache_status.startswith("meshgate; hit")
    assert "Content-Type" not in answer.headers
    assert rig.served("/c/c") == 1


async def test_a_changed_answer_replaces_the_stale_one(rig: Rig) -> None:
    await get(f"{rig.url}/c/x?cc=max-age=10&etag=v1")
    rig.clock.now += 11
    # Same key (the query is the route's whole key: make the new tag come with it).
    rig.routes["cached"] = route_for("cached", CachePolicy(key=KeySpec(query="none")))
    changed = await get(f"{rig.url}/c/x?cc=max-age=10&etag=v2")
    assert changed.served == "2"
    assert changed.cache_status == "meshgate; fwd=miss; stored"  # another route: another key
    again = await get(f"{rig.url}/c/x?whatever")
    assert (again.served, again.headers["ETag"]) == ("2", '"v2"')


async def test_an_answer_that_may_no_longer_be_stored_removes_the_stale_one(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", CachePolicy(key=KeySpec(query="none")))
    await get(f"{rig.url}/c/y?cc=max-age=10")
    rig.clock.now += 11
    answer = await get(f"{rig.url}/c/y?cc=no-store")
    assert answer.cache_status == "meshgate; fwd=stale; detail=no-store"
    assert len(rig.cache.store) == 0
    assert (await get(f"{rig.url}/c/y?cc=max-age=10")).cache_status == "meshgate; fwd=miss; stored"


# -- never stored -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("cc=max-age=60,no-store", "no-store"),
        ("cc=max-age=60,private", "private"),
        ("cc=max-age=60&cookie=1", "set-cookie"),
        ("cc=max-age=60&vary=*", "vary-star"),
        ("", "no-freshness"),
        ("cc=max-age=60&status=302", "status"),
        ("cc=max-age=60&status=500", "status"),
        ("cc=max-age=60&bytes=2000000", "too-large"),
    ],
)
async def test_what_is_never_stored(rig: Rig, query: str, detail: str) -> None:
    url = f"{rig.url}/c/n?{query}"
    for _ in range(2):
        answer = await get(url)
        assert answer.cache_status == f"meshgate; fwd=miss; detail={detail}"
    assert rig.served("/c/n") == 2
    assert rig.results() == {"uncacheable": 2.0}
    assert len(rig.cache.store) == 0


async def test_a_client_no_store_keeps_its_answer_out(rig: Rig) -> None:
    url = f"{rig.url}/c/ns?cc=max-age=60"
    answer = await get(url, {"Cache-Control": "no-store"})
    assert answer.cache_status == "meshgate; fwd=miss; detail=request-no-store"
    await get(url)
    # A client's no-cache does not send its request past a fresh entry.
    answer = await get(url, {"Cache-Control": "no-cache", "Pragma": "no-cache"})
    assert answer.cache_status.startswith("meshgate; hit")
    assert rig.served("/c/ns") == 2


async def test_a_large_streamed_body_reaches_the_client_whole_and_is_not_stored(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", CachePolicy(max_body_size=100_000))
    url = f"{rig.url}/c/big?cc=max-age=60&bytes=300000&stream=1"
    for served in ("1", "2"):
        answer = await get(url)
        assert answer.headers["Transfer-Encoding"] == "chunked"
        assert answer.cache_status == "meshgate; fwd=miss; stored"  # as far as the head said
        assert len(answer.body) == 300_000 + len(f'{{"n":{served}}}')
        assert answer.served == served
    assert len(rig.cache.store) == 0
    assert rig.cache.results["cached"]["dropped:too-large"] == 2
    # Within the limit the same way, stored.
    small = f"{rig.url}/c/s?cc=max-age=60&bytes=50000&stream=1"
    await get(small)
    assert (await get(small)).served == "1"


# -- variants and credentials ---------------------------------------------------------------


async def test_vary_keeps_variants_apart(rig: Rig) -> None:
    url = f"{rig.url}/c/v?cc=max-age=60&vary=Accept-Language"
    en = await get(url, {"Accept-Language": "en"})
    fr = await get(url, {"Accept-Language": "fr"})
    assert (en.served, fr.served) == ("1", "2")
    assert (await get(url, {"Accept-Language": "en"})).served == "1"
    assert (await get(url, {"Accept-Language": "fr"})).served == "2"
    other = await get(url, {"Accept-Language": "de"})
    assert (other.served, other.cache_status) == ("3", "meshgate; fwd=vary-miss; stored")


async def test_identity_variants_follow_the_edge_set_identity_never_the_client_copy(
    rig: Rig,
) -> None:
    url = f"{rig.url}/c/me?cc=public,max-age=60&vary=X-User-Id"
    alice = await get(url, {"X-Test-Identity": "alice"})
    bob = await get(url, {"X-Test-Identity": "bob"})
    assert (alice.served, bob.served) == ("1", "2")
    assert (await get(url, {"X-Test-Identity": "alice"})).served == "1"
    # An anonymous client claiming to be alice gets the anonymous variant, not hers.
    spoofed = await get(url, {"X-User-Id": "alice"})
    assert spoofed.served == "3"
    assert rig.upstream.seen[-1].get("X-User-Id") is None


@pytest.mark.parametrize(
    "credentials",
    [
        {"Authorization": "Bearer t"},
        {"X-API-Key": "k"},
        {"Cookie": "s=1"},
        {"X-Test-Identity": "al"},
    ],
)
async def test_requests_with_credentials_use_only_answers_that_say_they_may(
    rig: Rig, credentials: dict[str, str]
) -> None:
    url = f"{rig.url}/c/p?cc=max-age=60"
    await get(url)  # stored by an anonymous request, without public
    answer = await get(url, credentials)
    assert (answer.served, answer.cache_status) == (
        "2",
        "meshgate; fwd=request; detail=authorization",
    )
    assert (await get(url)).served == "1"  # still there for anonymous callers
    shared = f"{rig.url}/c/p?cc=public,max-age=60"
    first = await get(shared, credentials)
    assert first.cache_status == "meshgate; fwd=miss; stored"
    assert (await get(shared, credentials)).served == first.served
    assert (await get(shared)).served == first.served
    for cc in ("s-maxage=60", "max-age=60,must-revalidate"):
        stored = await get(f"{rig.url}/c/p?cc={cc}", credentials)
        assert stored.cache_status == "meshgate; fwd=miss; stored", cc


# -- failures, stale windows, collapsing ------------------------------------------------------


async def test_stale_if_error_when_the_service_fails_then_is_gone(rig: Rig) -> None:
    url = f"{rig.url}/c/e?cc=max-age=10,stale-if-error=60&route=swr"
    await get(url)
    rig.clock.now += 20
    rig.upstream.fail = 503
    answer = await get(url)
    assert (answer.status, answer.served) == (200, "1")
    assert (
        answer.cache_status == "meshgate; fwd=stale; fwd-status=503; ttl=-10; detail=stale-if-error"
    )
    await rig.runner.cleanup()  # connections closed, connects refused: the proxy's own 502
    answer = await get(url)
    assert (answer.status, answer.served) == (200, "1")
    assert answer.cache_status == "meshgate; fwd=stale; ttl=-10; detail=stale-if-error"
    rig.clock.now += 60  # past the window
    gone = await get(url)
    assert (gone.status, gone.cache_status) == (502, "meshgate; fwd=stale")
    assert rig.results("swr") == {"miss": 2.0, "stale_if_error": 2.0}


async def test_without_a_window_a_failure_is_the_client_answer(rig: Rig) -> None:
    url = f"{rig.url}/c/f?cc=max-age=10"
    await get(url)
    rig.clock.now += 11
    rig.upstream.fail = 500
    answer = await get(url)
    assert (answer.status, answer.body) == (500, b"failing")
    assert answer.cache_status == "meshgate; fwd=stale; detail=status"


async def test_must_revalidate_forbids_a_stale_answer_on_error(rig: Rig) -> None:
    url = f"{rig.url}/c/m?cc=max-age=10,must-revalidate&route=swr"
    await get(url)
    rig.clock.now += 11
    rig.upstream.fail = 503
    assert (await get(url)).status == 503


async def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(rig: Rig) -> None:
    url = f"{rig.url}/c/w?cc=max-age=10&etag=v1&route=swr"
    await get(url)
    rig.clock.now += 12
    stale = await get(url)
    assert (stale.served, stale.headers["Age"]) == ("1", "12")
    assert stale.cache_status == "meshgate; hit; ttl=-2; detail=stale-while-revalidate"
    for _ in range(100):  # the background revalidation
        if rig.served("/c/w") == 2 and not rig.cache.flights.get(next(iter(rig.cache.store)).key):
            break
        await asyncio.sleep(0.01)
    assert rig.served("/c/w") == 2
    assert rig.upstream.seen[-1]["If-None-Match"] == '"v1"'
    fresh = await get(url)
    assert (fresh.cache_status, fresh.headers["Age"]) == ("meshgate; hit; ttl=10", "0")
    assert rig.served("/c/w") == 2
    assert rig.results("swr") == {"miss": 1.0, "stale": 1.0, "hit": 1.0}


async def test_concurrent_misses_wait_for_one_fetch(rig: Rig) -> None:
    url = f"{rig.url}/c/k?cc=max-age=60&ms=300"
    answers = await asyncio.gather(*(get(url) for _ in range(10)))
    assert rig.served("/c/k") == 1
    assert {a.served for a in answers} == {"1"}
    statuses = Counter(a.cache_status.split("; ttl")[0] for a in answers)
    assert statuses == {"meshgate; fwd=miss; stored": 1, "meshgate; fwd=miss; collapsed": 9}
    assert rig.results() == {"miss": 1.0, "collapsed": 9.0}


async def test_waiters_fetch_for_themselves_after_the_lock_timeout(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", CachePolicy(lock_timeout=0.05))
    url = f"{rig.url}/c/t?cc=max-age=60&ms=500"
    await asyncio.gather(*(get(url) for _ in range(4)))
    assert rig.served("/c/t") == 4


async def test_without_the_lock_every_miss_fetches(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", CachePolicy(lock=False))
    url = f"{rig.url}/c/l?cc=max-age=60&ms=200"
    await asyncio.gather(*(get(url) for _ in range(4)))
    assert rig.served("/c/l") == 4


async def test_waiters_go_at_once_when_the_answer_cannot_be_stored(rig: Rig) -> None:
    url = f"{rig.url}/c/u?cc=private&ms=200"
    answers = await asyncio.gather(*(get(url) for _ in range(4)))
    assert rig.served("/c/u") == 4
    assert all(a.cache_status == "meshgate; fwd=miss; detail=private" for a in answers)


# -- methods, invalidation, gzip ---------------------------------------------------------------


async def test_unsafe_methods_pass_and_invalidate_the_uri(rig: Rig) -> None:
    url = f"{rig.url}/c/i?cc=max-age=60"
    await get(url)
    await get(f"{rig.url}/c/i?cc=max-age=60&other=1")
    await get(f"{rig.url}/c/keep?cc=max-age=60")
    posted = await get(url, method="POST")
    assert (posted.status, posted.cache_status) == (200, "meshgate; fwd=method")
    assert [e.path for e in rig.cache.store] == ["/c/keep"]
    assert (await get(url)).served == "4"  # fetched again (after ?other=1 and the POST)
    rig.upstream.fail = 500
    await get(url, method="DELETE")  # an error: nothing removed
    rig.upstream.fail = None
    assert (await get(url)).cache_status.startswith("meshgate; hit")
    assert rig.results()["bypass"] == 2.0


async def test_an_unsafe_request_of_a_route_without_a_cache_invalidates_too(rig: Rig) -> None:
    url = f"{rig.url}/c/o?cc=max-age=60"
    await get(url)
    answer = await get(f"{url}&route=uncached", method="PUT")
    assert answer.status == 200 and "Cache-Status" not in answer.headers
    assert len(rig.cache.store) == 0
    assert rig.results("uncached") == {}  # not a cached route's request: not counted


@pytest.mark.parametrize(
    ("headers", "method"),
    [
        ({"If-Match": '"v"'}, "GET"),
        ({"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}, "GET"),
        ({}, "OPTIONS"),
    ],
)
async def test_preconditions_and_other_methods_pass(
    rig: Rig, headers: dict[str, str], method: str
) -> None:
    url = f"{rig.url}/c/b?cc=max-age=60"
    await get(url)
    answer = await get(url, headers, method)
    assert answer.cache_status.startswith("meshgate; fwd=")
    assert rig.served("/c/b") == 2
    assert rig.results()["bypass"] == 1.0


# -- ranges -----------------------------------------------------------------------------


async def test_a_range_of_a_fresh_entry_is_served_from_it(rig: Rig) -> None:
    url = f"{rig.url}/c/r?cc=max-age=60&etag=r1&bytes=1000&gzip"
    whole = (await get(url)).body
    assert len(whole) == 1007 and whole.startswith(b'{"n":1}')

    part = await get(url, {"Range": "bytes=0-6", "Accept-Encoding": "gzip"})
    assert (part.status, part.body) == (206, b'{"n":1}')  # a part is never gzipped
    assert part.headers["Content-Range"] == "bytes 0-6/1007"
    assert "Content-Encoding" not in part.headers and part.headers["ETag"] == '"r1"'
    assert part.cache_status == "meshgate; hit; ttl=60"
    tail = await get(url, {"Range": "bytes=-3"})
    assert (tail.status, tail.body, tail.headers["Content-Range"]) == (
        206,
        b"   ",
        "bytes 1004-1006/1007",
    )
    after = await get(url, {"Range": "bytes=1000-"})
    assert (after.status, after.body) == (206, whole[1000:])

    beyond = await get(url, {"Range": "bytes=5000-"})
    assert beyond.status == 416 and beyond.headers["Content-Range"] == "bytes */1007"
    assert beyond.headers["Content-Type"] == "application/problem+json"
    assert b"range-not-satisfiable" in beyond.body

    # The whole answer: several ranges, an If-Range the entry does not meet.
    for headers in (
        {"Range": "bytes=0-1,5-6"},
        {"Range": "bytes=0-6", "If-Range": '"other"'},
        {"Range": "bytes=0-6", "If-Range": 'W/"r1"'},
    ):
        answer = await get(url, headers)
        assert (answer.status, answer.body) == (200, whole), headers
    answer = await get(url, {"Range": "bytes=0-6", "If-Range": '"r1"'})
    assert (answer.status, answer.body) == (206, b'{"n":1}')
    # If-None-Match comes first (RFC 9110 §13.2.2): met, it is a 304.
    assert (await get(url, {"Range": "bytes=0-6", "If-None-Match": '"r1"'})).status == 304

    assert rig.served("/c/r") == 1
    assert rig.results() == {"miss": 1.0, "hit": 9.0}


async def test_without_fill_on_range_a_range_nothing_fresh_answers_passes_by(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", replace(POLICY, fill_on_range=False))
    ranged = {"Range": "bytes=0-1"}
    miss = await get(f"{rig.url}/c/m?cc=max-age=60", ranged)
    assert (miss.status, miss.cache_status) == (200, "meshgate; fwd=bypass")
    assert rig.upstream.seen[-1]["Range"] == "bytes=0-1"  # sent on with its Range
    assert len(rig.cache.store) == 0

    url = f"{rig.url}/c/s?cc=max-age=60"
    await get(url)
    rig.clock.now += 61  # stale
    assert (await get(url, ranged)).cache_status == "meshgate; fwd=bypass"
    not_found = f"{rig.url}/c/n?cc=max-age=60&status=404"
    await get(not_found)
    assert (await get(not_found, ranged)).cache_status == "meshgate; fwd=bypass"
    private = f"{rig.url}/c/p?cc=max-age=60"
    await get(private)
    answer = await get(private, {**ranged, "X-Test-Identity": "u1"})
    assert answer.cache_status == "meshgate; fwd=bypass"  # not shared: not for a caller
    assert rig.served("/c/s") == rig.served("/c/n") == rig.served("/c/p") == 2
    # A HEAD ignores its Range: answered from the GET's entry.
    assert (await get(private, ranged, "HEAD")).cache_status.startswith("meshgate; hit")


async def test_head_passes_when_only_get_is_cached(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", CachePolicy(head=False))
    url = f"{rig.url}/c/h?cc=max-age=60"
    await get(url)
    assert (await get(url, method="HEAD")).cache_status == "meshgate; fwd=method"
    assert rig.served("/c/h") == 2


async def test_without_convert_head_a_head_miss_is_sent_on_and_fills_nothing(rig: Rig) -> None:
    rig.routes["cached"] = route_for("cached", replace(POLICY, convert_head=False))
    url = f"{rig.url}/c/hm?cc=max-age=60"
    answer = await get(url, method="HEAD")
    assert answer.cache_status == "meshgate; fwd=miss; detail=head"
    assert len(rig.cache.store) == 0 and rig.upstream.methods == ["HEAD"]


# -- HEAD and range misses fill the cache ------------------------------------------------


async def test_a_head_miss_is_fetched_as_a_get_stored_and_answered_with_its_head(
    rig: Rig,
) -> None:
    url = f"{rig.url}/c/h?cc=max-age=60&bytes=100000&gzip"
    head = await get(url, {"Range": "bytes=0-1", "Accept-Encoding": "gzip"}, "HEAD")
    assert (head.status, head.body, head.cache_status) == (200, b"", "meshgate; fwd=miss; stored")
    assert head.headers["Content-Length"] == "100007" and "Content-Encoding" not in head.headers
    assert rig.upstream.methods == ["GET"] and "Range" not in rig.upstream.seen[-1]
    whole = await get(url)
    assert (len(whole.body), whole.cache_status) == (100_007, "meshgate; hit; ttl=60")
    [entry] = list(rig.cache.store)
    assert entry.hits == 1  # the HEAD's own answer is not a hit
    assert rig.results() == {"miss": 1.0, "hit": 1.0}

    # Stale: revalidated with a GET carrying the validators; the 304 refreshes the entry.
    tagged = f"{rig.url}/c/hv?cc=max-age=10&etag=v1"
    await get(tagged, method="HEAD")
    rig.clock.now += 11
    again = await get(tagged, method="HEAD")
    assert again.cache_status == "meshgate; fwd=stale; fwd-status=304; ttl=10"
    assert rig.upstream.methods[-1] == "GET" and rig.upstream.seen[-1]["If-None-Match"] == '"v1"'


async def test_a_stale_head_within_stale_while_revalidate_is_refreshed_by_a_get(
    rig: Rig,
) -> None:
    url = f"{rig.url}/c/w?cc=max-age=10&etag=v1&route=swr"
    await get(url, method="HEAD")
    rig.clock.now += 12
    stale = await get(url, method="HEAD")
    assert stale.cache_status == "meshgate; hit; ttl=-2; detail=stale-while-revalidate"
    for _ in range(100):  # the background revalidation
        if rig.served("/c/w") == 2 and not rig.cache.flights.get(next(iter(rig.cache.store)).key):
            break
        await asyncio.sleep(0.01)
    assert rig.upstream.methods == ["GET", "GET"]
    assert rig.upstream.seen[-1]["If-None-Match"] == '"v1"'
    fresh = await get(url, method="HEAD")
    assert fresh.cache_status == "meshgate; hit; ttl=10"


async def test_a_head_miss_not_stored_gets_the_head_and_the_body_is_never_read(
    rig: Rig,
) -> None:
    for name, query, detail in [
        ("ns", "cc=no-store&bytes=2000000&stream=1", "no-store"),
        ("big", "cc=max-age=60&bytes=2000000&stream=1", "too-large"),
        ("err", "cc=max-age=60&status=500", "status"),
    ]:
        answer = await get(f"{rig.url}/c/{name}?{query}", method="HEAD")
        assert (answer.status, answer.body) == (500 if name == "err" else 200, b"")
        assert answer.cache_status == f"meshgate; fwd=miss; detail={detail}", name
    assert len(rig.cache.store) == 0 and rig.upstream.methods == ["GET"] * 3
    assert rig.cache.results["cached"]["dropped:too-large"] == 1
    # The edge goes on answering (the connections not read to the end were closed).
    assert (await get(f"{rig.url}/c/after?cc=max-age=60")).status == 200


async def test_a_head_and_gets_of_one_key_make_one_request(rig: Rig) -> None:
    url = f"{rig.url}/c/k?cc=max-age=60&ms=200"
    answers = await asyncio.gather(get(url, method="HEAD"), *(get(url) for _ in range(3)))
    assert rig.served("/c/k") == 1 and rig.upstream.methods == ["GET"]
    kinds = sorted(a.cache_status.split("; ttl")[0] for a in answers)
    assert kinds == ["meshgate; fwd=miss; collapsed"] * 3 + ["meshgate; fwd=miss; stored"]
    assert {a.body for a in answers[1:]} == {b'{"n":1}'} and answers[0].body == b""


async def test_a_range_miss_fetches_the_whole_stores_it_and_cuts_the_range(rig: Rig) -> None:
    url = f"{rig.url}/c/r?cc=max-age=60&etag=r1&bytes=1000"
    part = await get(url, {"Range": "bytes=2-6", "If-Range": '"r1"'})
    assert (part.status, part.body, part.headers["Content-Range"]) == (
        206,
        b'n":1}',
        "bytes 2-6/1007",
    )
    assert part.cache_status == "meshgate; fwd=miss; stored"
    sent = rig.upstream.seen[-1]
    assert "Range" not in sent and "If-Range" not in sent
    assert (await get(url, {"Range": "bytes=-2"})).cache_status == "meshgate; hit; ttl=60"
    # Unsatisfiable, or an If-Range the new answer does not meet: from the entry stored.
    beyond = await get(f"{rig.url}/c/r2?cc=max-age=60", {"Range": "bytes=500-"})
    assert (beyond.status, beyond.headers["Content-Range"]) == (416, "bytes */7")
    assert beyond.cache_status == "meshgate; fwd=miss; stored"
    other = await get(
        f"{rig.url}/c/r3?cc=max-age=60&etag=new", {"Range": "bytes=0-1", "If-Range": '"old"'}
    )
    assert (other.status, other.body) == (200, b'{"n":1}')
    assert rig.served("/c/r") == rig.served("/c/r2") == rig.served("/c/r3") == 1
    assert rig.results() == {"miss": 3.0, "hit": 1.0}


async def test_a_range_miss_not_stored_gets_the_whole_answer(rig: Rig) -> None:
    ranged = {"Range": "bytes=0-1"}
    for name, query, detail, size in [
        ("ns", "cc=no-store&bytes=100", "no-store", 107),
        ("big", "cc=max-age=60&bytes=2000000&stream=1", "too-large", 2_000_007),
        ("st", "cc=max-age=60&status=500", "status", 7),
    ]:
        answer = await get(f"{rig.url}/c/{name}?{query}", ranged)
        assert answer.cache_status == f"meshgate; fwd=miss; detail={detail}", name
        assert answer.status == (500 if name == "st" else 200) and len(answer.body) == size
        assert answer.body.startswith(b'{"n":1}') and "Content-Range" not in answer.headers
    assert len(rig.cache.store) == 0


async def test_a_range_of_an_entry_not_fresh_or_not_the_requests_goes_on_whole(
    rig: Rig,
) -> None:
    ranged = {"Range": "bytes=0-4"}
    # Stale: revalidated, and the range cut from the refreshed entry.
    url = f"{rig.url}/c/s?cc=max-age=10&etag=s1"
    await get(url)
    rig.clock.now += 11
    answer = await get(url, ranged)
    assert (answer.status, answer.body) == (206, b'{"n":')
    assert answer.cache_status == "meshgate; fwd=stale; fwd-status=304; ttl=10"
    assert rig.upstream.seen[-1]["If-None-Match"] == '"s1"' and "Range" not in rig.upstream.seen[-1]
    # A fresh stored 404 answers whole (a range is of a 200).
    not_found = f"{rig.url}/c/n?cc=max-age=60&status=404"
    await get(not_found)
    answer = await get(not_found, ranged)
    assert (answer.status, answer.body) == (404, b'{"n":1}')
    assert answer.cache_status.startswith("meshgate; hit")
    # Not shared: an authenticated caller's range is not cut from the anonymous entry;
    # its own answer, not storable for it, comes whole.
    private = f"{rig.url}/c/p?cc=max-age=60"
    await get(private)
    answer = await get(private, {**ranged, "X-Test-Identity": "u1"})
    assert (answer.status, answer.body) == (200, b'{"n":2}')
    assert answer.cache_status == "meshgate; fwd=request; detail=authorization"
    assert (await get(private, ranged)).body == b'{"n":'  # the anonymous one, still
    # Shared, it may be: and a caller's public answer is stored and cut at once.
    public = f"{rig.url}/c/q?cc=public,max-age=60"
    answer = await get(public, {**ranged, "X-Test-Identity": "u1"})
    assert (answer.status, answer.cache_status) == (206, "meshgate; fwd=miss; stored")
    assert (await get(public, {"Range": "bytes=0-1"})).cache_status.startswith("meshgate; hit")
    assert rig.served("/c/s") == rig.served("/c/p") == 2
    assert rig.served("/c/n") == rig.served("/c/q") == 1


async def test_gzip_applies_to_misses_and_hits_and_the_entry_keeps_the_service_bytes(
    rig: Rig,
) -> None:
    url = f"{rig.url}/c/g?cc=max-age=60&etag=g1&bytes=5000&gzip"
    miss = await get(url, {"Accept-Encoding": "gzip"})
    hit = await get(url, {"Accept-Encoding": "gzip"})
    plain = await get(url)
    assert miss.headers["Content-Encoding"] == hit.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(miss.body) == gzip.decompress(hit.body) == plain.body
    assert "Content-Encoding" not in plain.headers
    assert hit.headers["ETag"] == 'W/"g1"' and plain.headers["ETag"] == '"g1"'
    assert "Accept-Encoding" in hit.headers["Vary"] and "Accept-Encoding" in plain.headers["Vary"]
    [entry] = list(rig.cache.store)
    assert entry.body == plain.body and entry.gzipped is not None
    assert rig.served("/c/g") == 1
    unmodified = await get(url, {"Accept-Encoding": "gzip", "If-None-Match": hit.headers["ETag"]})
    assert unmodified.status == 304 and unmodified.headers["ETag"] == 'W/"g1"'


async def test_routes_without_a_cache_are_untouched(rig: Rig) -> None:
    url = f"{rig.url}/c/z?cc=max-age=60&route=uncached"
    for _ in range(2):
        answer = await get(url)
        assert "Cache-Status" not in answer.headers
    assert rig.served("/c/z") == 2
    assert rig.results("uncached") == {}
