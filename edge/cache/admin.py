"""The cache on the edge's admin listener: ``GET /cache`` and ``POST /cache/purge``.

Both act on the store of the edge process that answers: with ``--workers N``
each worker has its own store and the admin port is shared, so the feature
sends a purge to every worker (:func:`purged_total` sums their answers) and
``GET /cache?workers=all`` lists each worker's view (:mod:`mesh.admin_workers`).

``GET /cache``: the store's bounds and totals, and per route its entries,
bytes and the requests by what the cache did; ``?route=<name>`` lists that
route's entries too, most recently used first (path, status, size, age, ttl,
hits, the headers it varies on; never a query string or a header value, which
may hold credentials), at most :data:`MAX_LISTED`.

``POST /cache/purge`` with a JSON body naming what goes: ``{"route": "<name>"}``,
``{"prefix": "/api/users/7"}`` (that path and those under it, on a segment
boundary), ``{"tags": ["user-7", ...]}`` (entries whose answer named any of these
tags, :mod:`edge.cache.tags`), any of these together (entries that meet each), or
``{"all": true}``. Answers ``{"purged": n, "pid": ...}``; a body that says none of
these, or anything else, gets a 400 problem. With ``cache.shared_purges`` the purge
is then passed on to the other edges (:mod:`edge.cache.shared_purges`, wired in
:mod:`edge.cache.feature`), and the answer says whether it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edge.cache.serving import EdgeCache
from edge.cache.tags import tag_problem
from mesh.admin import json_response
from mesh.admin_workers import WorkerAnswer
from mesh.http.problem import problem_response

MAX_LISTED = 1000
MAX_PURGED_TAGS = 1000
"""Most tags one purge may name."""
_PURGE_KEYS = frozenset({"route", "prefix", "tags", "all"})
_SAY_WHAT = 'give {"route": ...}, {"prefix": ...}, {"tags": [...]}, some of these, or {"all": true}'


class CacheAdmin:
    def __init__(self, cache: EdgeCache) -> None:
        self._cache = cache
        self.shared_view: Callable[[], dict[str, Any]] | None = None
        """This worker's end of the shared purges, for ``/cache`` (None: not shared)."""

    def view(self, route: str | None = None) -> dict[str, Any]:
        cache = self._cache
        store = cache.store
        now = cache.clock()
        totals = store.route_totals()
        routes: dict[str, Any] = {}
        for name in sorted(set(totals) | set(cache.results)):
            entries, size = totals.get(name, (0, 0))
            routes[name] = {
                "entries": entries,
                "bytes": size,
                "requests": dict(sorted(cache.results.get(name, {}).items())),
            }
        view: dict[str, Any] = {
            "pid": os.getpid(),
            "max_bytes": store.max_bytes,
            "max_entries": store.max_entries,
            "bytes": store.size,
            "entries": len(store),
            "evictions": store.evictions,
            "tags": store.tag_count(),
            "fetches_in_flight": len(cache.flights),
            "routes": routes,
            "shared_purges": None if self.shared_view is None else self.shared_view(),
        }
        if route is not None:
            listed = []
            for entry in store:
                if entry.route != route:
                    continue
                listed.append(
                    {
                        "path": entry.path,
                        "status": entry.status,
                        "bytes": entry.size,
                        "age": round(entry.timing.age(now), 3),
                        "ttl": round(entry.timing.ttl(now), 3),
                        "hits": entry.hits,
                        "vary": [name for name, _ in entry.variant],
                        "tags": list(entry.tags),
                        "shared": entry.shared,
                    }
                )
                if len(listed) >= MAX_LISTED:
                    break
            view["listed"] = listed
        return view

    async def handle_view(self, request: web.Request) -> web.Response:
        return json_response(self.view(request.query.get("route")))

    async def handle_purge(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return _bad("the body is not JSON")
        purge = parse_purge(body)
        if isinstance(purge, str):
            return _bad(purge)
        return json_response({"purged": self.apply(purge), "pid": os.getpid()})

    def apply(self, purge: Purge) -> int:
        """Carry ``purge`` out on this process's store; how many entries went."""
        return self._cache.store.purge(purge.route, purge.prefix, purge.tags)


@dataclass(frozen=True)
class Purge:
    """What one purge removes: the entries meeting every one of these given (none given:
    every entry, which only ``{"all": true}`` says)."""

    route: str | None = None
    prefix: str | None = None
    tags: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        """The body of ``POST /cache/purge`` that says this purge."""
        said: dict[str, Any] = {
            "route": self.route,
            "prefix": self.prefix,
            "tags": None if self.tags is None else list(self.tags),
        }
        said = {key: value for key, value in said.items() if value is not None}
        return said or {"all": True}


def parse_purge(body: object) -> Purge | str:
    """The purge a ``POST /cache/purge`` body (decoded JSON) says, or why it says none."""
    if not isinstance(body, dict) or not body:
        return _SAY_WHAT
    unknown = sorted(set(body) - _PURGE_KEYS)
    if unknown:
        return f"unknown key {unknown[0]!r} (route, prefix, tags, all)"
    route, prefix, everything = body.get("route"), body.get("prefix"), body.get("all")
    tags = body.get("tags")
    if route is not None and (not isinstance(route, str) or not route):
        return "route: a route's name, as /routes shows it"
    if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
        return "prefix: a path starting with '/'"
    if tags is not None:
        problem = _tags_problem(tags)
        if problem is not None:
            return f"tags: {problem}"
    if everything is not None and everything is not True:
        return "all: only true"
    narrowed = route is not None or prefix is not None or tags is not None
    if everything and narrowed:
        return "all: not with route, prefix or tags"
    if not everything and not narrowed:
        return _SAY_WHAT
    return Purge(route, prefix, None if tags is None else tuple(tags))


def purged_total(answers: Sequence[WorkerAnswer]) -> dict[str, int]:
    """A purge's total over the workers that answered it."""
    return {"purged": sum(int(a.answer["purged"]) for a in answers if a.ok)}


def _tags_problem(tags: object) -> str | None:
    """Why a purge's ``tags`` is not a list of tags; None when it is."""
    if not isinstance(tags, list) or not tags:
        return "a non-empty list of tags"
    if len(tags) > MAX_PURGED_TAGS:
        return f"at most {MAX_PURGED_TAGS} in one purge"
    for tag in tags:
        problem = tag_problem(tag)
        if problem is not None:
            return problem
    return None


def _bad(detail: str) -> web.Response:
    return problem_response(400, "Bad request", detail, None, slug="bad-purge")
