"""Serving a cached route's requests: from the store, or through the service and into it.

For a GET (or a HEAD, answered from GET's entries) the cache finds the entry
for the request's key and variant (:mod:`edge.cache.key`, :mod:`edge.cache.vary`)
and, by its freshness (:mod:`edge.cache.freshness`) at that moment:

* **fresh**: answers from it (304 to a conditional request it meets);
* **stale, within stale-while-revalidate**: answers from it, and revalidates
  it with one background request (a copy of the exchange sent through the
  rest of the pipeline, whose answer nobody waits for);
* **stale otherwise, or no-cache**: sends the request on with the entry's
  validators (``If-None-Match``, ``If-Modified-Since``, replacing the
  client's); a 304 refreshes the entry's headers and freshness and the client
  is answered from it; a new answer replaces it; a failure (5xx, no
  connection, a timeout, no healthy instance) is answered from it within its
  stale-if-error window;
* **none**: sends the request on; its answer is relayed and, when it may be
  stored (:mod:`edge.cache.storable`), copied into a new entry as it goes
  (:mod:`edge.cache.writer`). Concurrent misses of one key wait for that one
  fetch (:mod:`edge.cache.flights`).

A HEAD that does not find a fresh entry goes on as a GET (the route's
``convert_head``, as nginx's ``proxy_cache_convert_head``; without ``Range``):
its answer is stored by the rules of a GET's, and its client gets the head
alone. A GET with a ``Range`` is answered from a fresh stored 200
(:mod:`edge.cache.ranges`); otherwise (the route's ``fill_on_range``) it goes on
as a GET of the whole, without its ``Range`` and ``If-Range`` (as nginx and
Varnish send it), and the range is cut from the entry it finds or stores, or
the whole answer is relayed when none is stored (a server may ignore
``Range``, RFC 9110 §14.2). A HEAD's answer to be stored, and a range's 200,
are read whole before their client's answer is made (at most
``max_body_size`` of it is held; past that it is relayed as it comes, unstored).

A request with credentials (``Authorization``, ``X-API-Key``, ``Cookie``, or a
caller the edge authenticated) is answered only from entries whose answer said
``public``, ``s-maxage`` or ``must-revalidate``, and its answer is stored only
when it says so; a range is cut only from an entry the request may use. Other
safe methods, requests with a precondition (``If-Match``, ``If-Unmodified-Since``), a
body, or a protocol switch pass the cache by; an unsafe method (POST, PUT, PATCH, DELETE, ...)
whose answer is not an error removes every entry stored for its host and path
(RFC 9111 §4.4).

The route's tag header (``Surrogate-Key`` unless set otherwise) is taken out of
every answer of a cached route, relayed or stored; an entry keeps the tags it
named, for purges by tag (:mod:`edge.cache.tags`).

Each request's outcome is counted (``meshgate_cache_requests_total``), set
on the request's SERVER span (``meshgate.cache.result``) and in
``ex.attrs["cache"]`` (the access log's ``cache`` field), and its answer says
it in ``Cache-Status`` (:mod:`edge.cache.status`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from aiohttp import web
from multidict import CIMultiDict, istr

from edge.auth.credentials import API_KEY_HEADER
from edge.cache import status
from edge.cache.control import request_no_store
from edge.cache.flights import Flight, Flights
from edge.cache.freshness import State, Timing
from edge.cache.key import PrimaryKey
from edge.cache.metrics import CacheMetrics, Result
from edge.cache.policy import CachePolicy
from edge.cache.responses import ranged_response, stored_response
from edge.cache.storable import verdict
from edge.cache.store import CacheStore, Entry
from edge.cache.vary import Lookup, variant
from edge.cache.writer import EntryWriter
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.http.headers import end_to_end, header_block_items
from mesh.proxy import bad_gateway, gateway_timeout, stream_response
from mesh.telemetry.tracing import set_server_attribute
from mesh.transport.base import (
    SwitchedConnection,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
)

log = logging.getLogger("meshgate.edge.cache")

RESULT_ATTR = "cache"
"""``ex.attrs`` key of the request's :data:`edge.cache.metrics.Result`."""
SPAN_ATTRIBUTE = "meshgate.cache.result"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_PASSING = frozenset(istr(name.lower()) for name in ("If-Match", "If-Unmodified-Since"))
"""Request headers that make a GET pass the cache by (preconditions); as
:class:`multidict.istr`, which the request's headers compare in C, case-insensitively."""
_RANGE = istr("range")
_WHOLE = ("Range", "If-Range")
"""Request headers left out of a GET sent on for the whole answer (a converted HEAD's,
or a range's miss): the cache cuts the range itself (a server must ignore ``Range``
on a HEAD, RFC 9110 §14.2)."""
_VALIDATORS = ("If-None-Match", "If-Modified-Since")
_CREDENTIALS = frozenset(istr(name.lower()) for name in ("Authorization", API_KEY_HEADER, "Cookie"))
_IDENTITY_ATTR = "identity"
"""``ex.attrs`` key of the caller the edge authenticated (edge.filters.authenticate)."""
_NOT_STORED = frozenset(
    name.lower()
    for name in ("Content-Length", "Age", "X-Mesh-Attempts", "traceresponse", "X-Request-Id")
)
"""Headers of the service's answer left out of an entry: the length (the body's own),
the age (the cache's), and headers meshgate writes per answer."""
_NOT_UPDATED = frozenset(
    name.lower() for name in ("Content-Length", "Content-Encoding", "Content-Type", "Content-Range")
)
"""Headers a 304 never changes in the stored response (they describe its body)."""


class EdgeCache:
    """The cache of one edge process: its store, flights, background revalidations."""

    def __init__(
        self,
        store: CacheStore,
        metrics: CacheMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` is the wall clock freshness is counted by (HTTP dates are)."""
        self.store = store
        self.flights = Flights()
        self.metrics = metrics
        self.clock = clock
        self.results: dict[str, Counter[str]] = {}
        """Per route: requests by result, and copies dropped (``dropped:<why>``), for
        the admin listener's ``/cache``."""
        self._tasks: set[asyncio.Task[None]] = set()
        """Background revalidations (strong references: the loop keeps weak ones)."""

    # -- requests ---------------------------------------------------------------

    async def serve(
        self, ex: Exchange, route: str, policy: CachePolicy, next_handler: Handler
    ) -> web.StreamResponse:
        """Answer ``ex``, a request of ``route`` whose cache is ``policy``; ``next_handler``
        sends it on to the service."""
        method = ex.method
        if method == "GET" or (method == "HEAD" and policy.head):
            if _passes(ex):
                return await self._pass(ex, route, policy, next_handler, "bypass")
            if method == "GET" and _RANGE in ex.request.headers:
                return await self._ranged(ex, route, policy, next_handler)
            return await self._lookup(ex, route, policy, next_handler)
        if method in SAFE_METHODS:
            return await self._pass(ex, route, policy, next_handler, "method")
        return await self._pass(ex, route, policy, next_handler, "method", invalidates=True)

    def invalidating(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        """Send on an unsafe request of a route without a cache: the cache is the edge's,
        so an answer without an error still removes its URI's entries (RFC 9111 §4.4; a
        route with conditions may take the writes of another's reads). Not counted."""
        if len(self.store):
            ex.responder = _Passed(self.store, None, None, (_host(ex), ex.path))
        return next_handler(ex)

    async def _pass(
        self,
        ex: Exchange,
        route: str,
        policy: CachePolicy,
        next_handler: Handler,
        fwd: str,
        invalidates: bool = False,
    ) -> web.StreamResponse:
        """Sent on, not cached; an unsafe request (``invalidates``) answered without an
        error removes its URI's entries."""
        self.outcome(ex, route, "bypass")
        uri = (_host(ex), ex.path) if invalidates else None
        ex.responder = _Passed(self.store, status.forwarded(fwd), policy.tag_header, uri)
        return await next_handler(ex)

    def _find(
        self, ex: Exchange, route: str, policy: CachePolicy
    ) -> tuple[Lookup, PrimaryKey, Entry | None]:
        """``ex``'s view of the headers it is sent with, its primary key, and the stored
        entry of that key its variant matches (made the most recently used), if any."""
        lookup = sent_upstream(ex)
        key = policy.key.primary(route, _host(ex), ex.path, ex.query, lookup)
        return lookup, key, self.store.find(key, lookup)

    async def _ranged(
        self, ex: Exchange, route: str, policy: CachePolicy, next_handler: Handler
    ) -> web.StreamResponse:
        """A GET with a ``Range``: answered from a fresh stored 200 the request may use
        (:func:`edge.cache.responses.ranged_response`). Otherwise, with the route's
        ``fill_on_range``, sent on as a GET of the whole, without ``Range`` and
        ``If-Range``, by :meth:`_lookup`, which cuts the range from the entry it finds
        or stores (or relays the whole answer); without, it passes the cache by, its
        ``Range`` with it, and its answer (a part, most likely) is not stored."""
        _, _, entry = self._find(ex, route, policy)
        now = self.clock()
        if (
            entry is not None
            and entry.status == 200
            and (entry.shared or not _credentialed(ex))
            and entry.timing.state(now) is State.FRESH
        ):
            return self.answer(ex, route, entry, now, "hit", status.hit(entry.timing.ttl(now)))
        if not policy.fill_on_range:
            return await self._pass(ex, route, policy, next_handler, "bypass")
        _ask_whole(ex)
        return await self._lookup(ex, route, policy, next_handler)

    async def _lookup(
        self, ex: Exchange, route: str, policy: CachePolicy, next_handler: Handler
    ) -> web.StreamResponse:
        """A GET or HEAD answered from its entry, or sent on (see the module docstring);
        a GET with a ``Range`` comes here from :meth:`_ranged` (its range is cut from the
        entry that answers it: :meth:`answer`)."""
        lookup, key, entry = self._find(ex, route, policy)
        credentialed = _credentialed(ex)
        now = self.clock()
        store = self.store
        fills = ex.method == "GET" or policy.convert_head  # its answer may be stored
        fwd = "miss"
        if entry is not None and credentialed and not entry.shared:
            entry, fwd = None, "request"  # RFC 9111 §3.5
        if entry is not None:
            state = entry.timing.state(now)
            if state is State.FRESH:
                return self.answer(ex, route, entry, now, "hit", status.hit(entry.timing.ttl(now)))
            if state is State.STALE_WHILE_REVALIDATE:
                if fills:
                    self._revalidate_in_background(
                        ex, route, policy, key, entry, credentialed, next_handler
                    )
                member = status.hit(entry.timing.ttl(now), "stale-while-revalidate")
                return self.answer(ex, route, entry, now, "stale", member)
            fwd = "stale"
        elif fwd == "miss" and store.known(key):
            fwd = "vary-miss"
        if not fills:  # a HEAD without convert_head: sent on as it is, not stored
            fetch = _Fetch(self, ex, route, policy, key, entry, fwd, credentialed, lookup)
            return await self._send(ex, route, fetch, next_handler)
        if ex.method == "HEAD":  # fetched as a GET miss is, collapsed with them
            ex.upstream_method = "GET"
            _ask_whole(ex)
        flight: Flight | None = None
        if policy.lock:
            flight = self.flights.start(key)
            other = self.flights.get(key) if flight is None else None
            if other is not None and await other.wait(policy.lock_timeout):
                now = self.clock()
                found = store.find(key, lookup)
                if found is not None and (found.shared or not credentialed):
                    if found.timing.state(now) is not State.STALE:
                        member = status.forwarded("miss", collapsed=True, ttl=found.timing.ttl(now))
                        return self.answer(ex, route, found, now, "collapsed", member)
                    entry = found
                flight = self.flights.start(key)  # None: another went first; fetch anyway
        fetch = _Fetch(self, ex, route, policy, key, entry, fwd, credentialed, lookup, flight)
        if entry is not None and entry.validated:
            _validate_with(ex.upstream_headers, entry)
            fetch.revalidating = True
        try:
            return await self._send(ex, route, fetch, next_handler)
        finally:
            if flight is not None:
                flight.end()  # nothing after the fetch ended it; else it failed or was cancelled

    async def _send(
        self, ex: Exchange, route: str, fetch: _Fetch, next_handler: Handler
    ) -> web.StreamResponse:
        """``ex`` sent on with ``fetch`` as its responder; when the proxy answers without
        a response from the service (no instance, no connection, a timeout), a stale
        entry within its stale-if-error window answers instead."""
        ex.responder = fetch
        response = await next_handler(ex)
        if fetch.called:
            return response
        stale = fetch.stale
        if response.status >= 500 and not response.prepared and stale is not None:
            now = self.clock()
            if stale.timing.usable_on_error(now):
                member = status.forwarded(
                    "stale", ttl=stale.timing.ttl(now), detail="stale-if-error"
                )
                return self.answer(ex, route, stale, now, "stale_if_error", member)
        self.outcome(ex, route, "miss")
        if not response.prepared:
            response.headers[status.HEADER] = status.forwarded(fetch.fwd)
        return response

    def answer(
        self, ex: Exchange, route: str, entry: Entry, now: float, result: Result, member: str
    ) -> web.Response:
        """``ex`` answered from ``entry`` at ``now``, counted as ``result``, its
        ``Cache-Status`` member ``member`` (a GET with a ``Range`` gets its range of a
        200: :func:`_from_entry`)."""
        entry.hits += 1
        self.outcome(ex, route, result)
        return _from_entry(ex, entry, now, member, self.store)

    def outcome(self, ex: Exchange, route: str, result: Result) -> None:
        """Count what the cache did with ``ex`` and say so on its span and in its attrs."""
        self.metrics.count(route, result)
        self._results(route)[result] += 1
        ex.attrs[RESULT_ATTR] = result
        set_server_attribute(ex, SPAN_ATTRIBUTE, result)

    def dropped(self, route: str, why: str) -> None:
        """A copy being stored was dropped (``too-large``, ``incomplete``)."""
        self._results(route)[f"dropped:{why}"] += 1

    def _results(self, route: str) -> Counter[str]:
        results = self.results.get(route)
        if results is None:
            results = self.results[route] = Counter()
        return results

    # -- stale-while-revalidate --------------------------------------------------

    def _revalidate_in_background(
        self,
        ex: Exchange,
        route: str,
        policy: CachePolicy,
        key: PrimaryKey,
        entry: Entry,
        credentialed: bool,
        next_handler: Handler,
    ) -> None:
        """Start one background request refreshing ``entry`` (none when a fetch of its key
        is in flight already). It is a copy of ``ex`` as it would go on now (the caller's
        credentials and identity with it: its answer is stored only as that caller's
        would be), untraced, answered to nobody."""
        flight = self.flights.start(key)
        if flight is None:
            return
        copy = replace(
            ex,
            upstream_method="GET",  # a HEAD's too (it comes here with convert_head only)
            started=time.monotonic(),
            upstream_headers=CIMultiDict(ex.upstream_headers),
            response_headers=[],
            vary="",
            response_drops=(),
            attrs=dict(ex.attrs),
            trace=None,
            attempt_header_block="",
            body=None,
            compression=None,
            instance=None,
        )
        fetch = _Fetch(
            self,
            copy,
            route,
            policy,
            key,
            entry,
            "stale",
            credentialed,
            sent_upstream(copy),
            flight,
        )
        fetch.background = True
        if entry.validated:
            _validate_with(copy.upstream_headers, entry)
            fetch.revalidating = True
        copy.responder = fetch
        task = asyncio.get_running_loop().create_task(
            self._in_background(copy, next_handler, flight)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _in_background(self, ex: Exchange, next_handler: Handler, flight: Flight) -> None:
        try:
            await next_handler(ex)
        except Exception:  # never out of a task nobody awaits
            log.debug("background revalidation of %s failed", ex.path, exc_info=True)
        finally:
            flight.end()

    async def stop(self) -> None:
        """Cancel the background revalidations in flight and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- revalidation --------------------------------------------------------------

    def refreshed(
        self,
        stale: Entry,
        headers: CIMultiDict[str],
        policy: CachePolicy,
        credentialed: bool,
        requested: float,
        received: float,
    ) -> Entry:
        """``stale`` as a 304 with ``headers`` refreshed it (RFC 9111 §4.3.4): its stored
        headers updated with the 304's, its freshness counted anew, stored in its place
        (or removed, when the updated headers forbid storing it). The entry to answer
        from, either way."""
        merged = CIMultiDict(stale.headers)
        names = {name.lower(): name for name in headers}
        for lower, name in names.items():
            if lower not in _NOT_UPDATED and lower not in _NOT_STORED:
                merged.popall(name, None)
                merged.extend((name, value) for value in headers.getall(name))
        found = verdict(
            stale.status,
            merged,
            policy,
            credentialed=credentialed,
            request_no_store=False,
            requested=requested,
            received=received,
        )
        timing = found.timing or Timing(lifetime=0.0, initial_age=0.0, received=received)
        retagged = policy.tag_header is not None and policy.tag_header in headers
        fresh = replace(
            stale,
            headers=_stored_headers(merged, policy.tag_header),
            tags=found.tags if retagged else stale.tags,
            timing=timing,
            shared=found.shared,
            gzipped=None,
            size=0,
        )
        if found.stored:
            self.store.put(fresh)
        else:
            self.store.remove(stale)
        return fresh


class _Passed:
    """The responder of a request passing the cache by: ``Cache-Status`` said (``member``;
    None: nothing said, the route has no cache), and for an unsafe request (``uri``)
    answered without an error, that URI's entries removed."""

    __slots__ = ("_member", "_store", "_tag_header", "_uri")

    def __init__(
        self,
        store: CacheStore,
        member: str | None,
        tag_header: str | None,
        uri: tuple[str, str] | None,
    ) -> None:
        """``tag_header``: the header taken out of a cached route's answer."""
        self._store = store
        self._member = member
        self._tag_header = tag_header
        self._uri = uri

    async def __call__(self, ex: Exchange, upstream: UpstreamResponse) -> web.StreamResponse:
        uri = self._uri
        if uri is not None and upstream.status < 400:
            self._store.invalidate(*uri)
        if self._member is None:
            return await stream_response(ex, upstream)
        headers = end_to_end(upstream.headers)
        _untag(headers, self._tag_header)
        _say(ex, headers, self._member)
        return await stream_response(ex, upstream, None, headers)


class _Fetch:
    """The responder of a cacheable request sent on (see
    :attr:`mesh.exchange.Exchange.responder`): decides, once the service's answer head is
    in, whether to answer from the stale entry (304, or a failure within stale-if-error),
    to store the answer as it is relayed, or only to relay it."""

    __slots__ = (
        "_cache",
        "_credentialed",
        "_flight",
        "_key",
        "_lookup",
        "_policy",
        "_requested",
        "_route",
        "background",
        "called",
        "fwd",
        "revalidating",
        "stale",
    )

    def __init__(
        self,
        cache: EdgeCache,
        ex: Exchange,
        route: str,
        policy: CachePolicy,
        key: PrimaryKey,
        stale: Entry | None,
        fwd: str,
        credentialed: bool,
        lookup: Lookup,
        flight: Flight | None = None,
    ) -> None:
        self._cache = cache
        self._route = route
        self._policy = policy
        self._key = key
        self.stale = stale
        """The entry it may answer from instead (revalidated, or on failure)."""
        self.fwd = fwd
        self._credentialed = credentialed
        self._lookup = lookup
        self._flight = flight
        self._requested = cache.clock()
        self.called = False
        """The service answered (its head came): this responder ran."""
        self.revalidating = False
        """The request carries the stale entry's validators: a 304 refreshes it."""
        self.background = False
        """A background revalidation: nobody waits for the answer."""

    async def __call__(self, ex: Exchange, upstream: UpstreamResponse) -> web.StreamResponse:
        self.called = True
        cache = self._cache
        received = cache.clock()
        code = upstream.status
        stale = self.stale
        if stale is not None and code == 304 and self.revalidating:
            upstream.release()
            headers = end_to_end(upstream.headers)
            entry = cache.refreshed(
                stale, headers, self._policy, self._credentialed, self._requested, received
            )
            self._end_flight()
            if self.background:
                return _NOBODY
            member = status.forwarded("stale", status=304, ttl=entry.timing.ttl(received))
            return cache.answer(ex, self._route, entry, received, "revalidated", member)
        if stale is not None and code >= 500 and stale.timing.usable_on_error(received):
            upstream.release()
            self._end_flight()
            if self.background:
                return _NOBODY
            ttl = stale.timing.ttl(received)
            member = status.forwarded("stale", status=code, ttl=ttl, detail="stale-if-error")
            return cache.answer(ex, self._route, stale, received, "stale_if_error", member)
        headers = end_to_end(upstream.headers)
        if ex.method != "GET" and ex.upstream_method != "GET":  # a HEAD sent on as it is
            return await self._relay(ex, upstream, headers, "miss", detail="head")
        if code == 304:  # the client's own conditional request, sent on as it was
            return await self._relay(ex, upstream, headers, "miss", code=304)
        found = verdict(
            code,
            headers,
            self._policy,
            credentialed=self._credentialed,
            request_no_store=request_no_store(ex.request.headers.getall("Cache-Control", ())),
            requested=self._requested,
            received=received,
        )
        if not found.stored or found.timing is None:
            if stale is not None and code < 500:
                cache.store.remove(stale)  # replaced by an answer that may not be kept
            return await self._relay(ex, upstream, headers, "uncacheable", detail=found.reason)
        head = Entry(
            key=self._key,
            route=self._route,
            host=_host(ex),
            path=ex.path,
            status=code,
            reason=upstream.reason,
            headers=_stored_headers(headers, self._policy.tag_header),
            variant=variant(found.vary, self._lookup),
            body=b"",
            timing=found.timing,
            shared=found.shared,
            tags=found.tags,
        )
        writer = EntryWriter(
            cache.store, head, self._policy.max_body_size, self._flight, cache.dropped
        )
        if self.background:
            return await _read_into(upstream, writer)
        if ex.method == "HEAD" or (code == 200 and _wants_range(ex)):
            return await self._answer_whole(ex, upstream, headers, writer)
        cache.outcome(ex, self._route, "miss")
        _untag(headers, self._policy.tag_header)
        _say(ex, headers, status.forwarded(self.fwd, stored=True))
        return await stream_response(ex, upstream, writer, headers)

    async def _answer_whole(
        self,
        ex: Exchange,
        upstream: UpstreamResponse,
        headers: CIMultiDict[str],
        writer: EntryWriter,
    ) -> web.StreamResponse:
        """A storable answer read whole into ``writer`` before the client is answered
        from the entry it makes (:func:`_from_entry`): a HEAD sent on as a GET gets the
        head alone (its ``Content-Length`` the whole body's), a GET with a ``Range`` its
        range of the 200. A body that grows past ``max_body_size`` is relayed as it
        comes (what was read first, then the rest), unstored: the edge holds at most
        that much of it, as for any answer being stored. A body that fails before its
        end is a 502 (504 for a timeout), nothing having been sent yet."""
        cache = self._cache
        pieces = upstream.chunks()
        read: list[bytes] = []  # what came before a drop, to relay it (the writer's own go)
        try:
            async for piece in pieces:
                read.append(piece)
                writer.write(piece)
                if not writer.copying:  # dropped: too large
                    break
            else:
                writer.close()
        except UpstreamError as exc:
            upstream.release()
            cache.outcome(ex, self._route, "miss")
            failed = (
                gateway_timeout(ex, str(exc))
                if isinstance(exc, UpstreamTimeout)
                else bad_gateway(ex, str(exc))
            )
            failed.headers[status.HEADER] = status.forwarded(self.fwd)
            return failed
        except BaseException:  # cancelled (the client went away): the rest is not read
            upstream.release()
            raise
        finally:
            writer.abort()  # nothing after close() or a drop; else the copy is incomplete
        whole = writer.whole
        if whole is None:
            resumed = _Resumed(upstream, read, pieces)
            return await self._relay(ex, resumed, headers, "uncacheable", detail="too-large")
        upstream.release()  # read to its end: the connection goes back to the pool
        cache.outcome(ex, self._route, "miss")
        member = status.forwarded(self.fwd, stored=True)
        return _from_entry(ex, whole, cache.clock(), member, cache.store)

    async def _relay(
        self,
        ex: Exchange,
        upstream: UpstreamResponse,
        headers: CIMultiDict[str],
        result: Result,
        *,
        code: int | None = None,
        detail: str | None = None,
    ) -> web.StreamResponse:
        """The answer relayed as it comes, not stored.

        A HEAD's client gets the head alone: :func:`mesh.proxy.stream_response` does not
        read the body of the GET a HEAD was sent on as, and releasing the response
        unread closes its connection (:meth:`mesh.transport.base.UpstreamResponse.release`).
        A new connection later costs less than reading a body of any size that nobody
        wants, and nothing of it is held."""
        self._end_flight()
        if self.background:
            upstream.release()
            return _NOBODY
        self._cache.outcome(ex, self._route, result)
        _untag(headers, self._policy.tag_header)
        _say(ex, headers, status.forwarded(self.fwd, status=code, detail=detail))
        return await stream_response(ex, upstream, None, headers)

    def _end_flight(self) -> None:
        if self._flight is not None:
            self._flight.end()


_NOBODY = web.Response(status=204)
"""What a background revalidation's pipeline returns: sent to no one."""


class _Resumed:
    """An upstream response whose first pieces of body were read already (``read``):
    they come first, then the rest of ``pieces``, its body's iterator, as it arrives."""

    __slots__ = ("_pieces", "_read", "_upstream", "headers", "reason", "status")

    def __init__(
        self, upstream: UpstreamResponse, read: list[bytes], pieces: AsyncIterator[bytes]
    ) -> None:
        self._upstream = upstream
        self._read = read
        self._pieces = pieces
        self.status = upstream.status
        self.reason = upstream.reason
        self.headers = upstream.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        read, self._read = self._read, []
        for piece in read:
            yield piece
        async for piece in self._pieces:
            yield piece

    def release(self) -> None:
        self._upstream.release()

    def detach(self) -> SwitchedConnection:
        return self._upstream.detach()


def _from_entry(
    ex: Exchange, entry: Entry, now: float, member: str, store: CacheStore
) -> web.Response:
    """``ex``'s answer from ``entry``: its range, for a GET with a ``Range`` of a stored
    200 (:func:`edge.cache.responses.ranged_response`: a 206, a 416, or the whole when
    ``If-Range`` says so), else the stored answer (a HEAD's without its body)."""
    if entry.status == 200 and _wants_range(ex):
        return ranged_response(ex, entry, now, member, store)
    return stored_response(ex, entry, now, member, store)


def _wants_range(ex: Exchange) -> bool:
    """Whether ``ex`` is a GET with a ``Range`` (one that reaches the cache's lookup only
    with the route's ``fill_on_range``, or answered from a fresh entry)."""
    return ex.method == "GET" and _RANGE in ex.request.headers


def _ask_whole(ex: Exchange) -> None:
    """Send ``ex`` on for the whole answer: without ``Range`` and ``If-Range`` (:data:`_WHOLE`)."""
    headers = ex.upstream_headers
    for name in _WHOLE:
        headers.popall(name, None)


async def _read_into(upstream: UpstreamResponse, writer: EntryWriter) -> web.StreamResponse:
    """A background revalidation's new answer, read into ``writer`` (stored if whole)."""
    try:
        async for piece in upstream.chunks():
            writer.write(piece)
        writer.close()
    except UpstreamError:
        pass
    finally:
        upstream.release()
        writer.abort()  # nothing after close(); else the copy is incomplete
    return _NOBODY


def sent_upstream(ex: Exchange) -> Lookup:
    """A request header's value as the edge sends it on (lower-cased name; its lines
    joined by ", "; None: not sent): in ``upstream_headers``, else in the rendered block
    the identity headers go in."""

    def lookup(name: str) -> str | None:
        values = ex.upstream_headers.getall(name, ())
        if values:
            return ", ".join(values)
        found = [v for k, v in header_block_items(ex.upstream_header_block) if k.lower() == name]
        return ", ".join(found) if found else None

    return lookup


def _passes(ex: Exchange) -> bool:
    """Whether a GET or HEAD passes the cache by: a protocol switch, a body or a
    precondition (``If-Match``, ``If-Unmodified-Since``)."""
    if ex.upgrade is not None:
        return True
    request = ex.request
    if request.body_exists:
        return True
    return not request.headers.keys().isdisjoint(_PASSING)


def _credentialed(ex: Exchange) -> bool:
    """Whether the request carries credentials (see the module docstring)."""
    if ex.attrs.get(_IDENTITY_ATTR) is not None:
        return True
    return not ex.request.headers.keys().isdisjoint(_CREDENTIALS)


def _host(ex: Exchange) -> str:
    return ex.request.headers.get("Host", "").lower()


def _validate_with(headers: CIMultiDict[str], entry: Entry) -> None:
    """Make the request sent on a revalidation of ``entry``: its validators in place of
    any the client sent."""
    for name in _VALIDATORS:
        headers.popall(name, None)
    etag = entry.etag
    if etag is not None:
        headers["If-None-Match"] = etag
    modified = entry.last_modified
    if modified is not None:
        headers["If-Modified-Since"] = modified


def _stored_headers(headers: CIMultiDict[str], tag_header: str | None) -> CIMultiDict[str]:
    """The headers an entry keeps of an answer's end-to-end ones (its tags are kept apart,
    never in its headers)."""
    return CIMultiDict(
        (k, v)
        for k, v in headers.items()
        if (lower := k.lower()) not in _NOT_STORED and lower != tag_header
    )


def _untag(headers: CIMultiDict[str], tag_header: str | None) -> None:
    """Take the tags out of an answer of a cached route: they are for the cache (as a
    CDN's ``Surrogate-Key``), so a client sees the same headers on a hit and a miss."""
    if tag_header is not None:
        headers.popall(tag_header, None)


def _say(ex: Exchange, headers: CIMultiDict[str], member: str) -> None:
    """Add the cache's ``Cache-Status`` member to the answer relayed with ``headers``."""
    ex.response_headers.append((status.HEADER, status.appended(headers.get(status.HEADER), member)))
