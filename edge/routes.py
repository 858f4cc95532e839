"""The edge's route table: compiled once per snapshot, matched per request (pure).

Precedence when matching: routes for the request's host before host-less
routes, then routes of an exact path (a config route's ``path``), then the
longest prefix. Among routes with the same host and prefix,
those with conditions on headers and query (:mod:`edge.route_match`) are tried
before the one without; among them, more conditions first, then config
routes in the order given before Consul-meta routes (by service name, then
route name). A route whose conditions do not hold is passed over: the next
candidate is tried, down to shorter prefixes and host-less routes. The first
route that takes the request decides; if its methods exclude the request's,
the answer is 405 (no other route is tried).

Two routes with the same host, prefix (or exact path) and conditions (in any order)
conflict;
the rule (shown at ``/routes``) is: a route from the edge config wins over one
declared in Consul meta; between Consul routes, the service whose name sorts
first wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

from edge.cache.policy import CachePolicy
from edge.direct.actions import DirectAction, rewrite_prefix
from edge.ext_authz.policy import RouteCheck
from edge.mirror.policy import MirrorPolicy
from edge.route_match import NO_PARAMS, Condition, Conditions, parse_query
from mesh.canary import Canary
from mesh.hash_policy import HashPolicy
from mesh.resilience.route_retries import RouteRetryPolicy

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    prefix: str
    """Without a trailing slash (except the root route ``/``); for an ``exact`` route, its
    path as given."""
    service: str | None
    """Where the requests go; None for a route the edge answers itself (``direct``)."""
    source: str
    """``config`` or ``consul:<service>``."""
    host: str | None = None
    methods: frozenset[str] | None = None
    exact: bool = False
    """Only the path ``prefix`` itself matches (a route's ``path``), none below it."""
    rewrite: str | None = None
    """Replacement for the matched prefix (``/`` for strip_prefix); None keeps the path."""
    timeout: float | None = None
    max_body_size: int | None = None
    """Largest request body (bytes) this route takes; None: the listener's default."""
    canary: Canary | None = None
    """A share of the requests goes to the instances with a tag (:mod:`mesh.canary`)."""
    conditions: Conditions | None = None
    """What the request's headers and query must hold for this route to take it
    (:mod:`edge.route_match`); None: nothing (never an empty one)."""
    mirror: MirrorPolicy | None = None
    """A share of the requests is copied to a shadow service (:mod:`edge.mirror`)."""
    hash_policy: HashPolicy | None = None
    """Session affinity: requests with the same key go to the same instance
    (:mod:`mesh.hash_policy`); None: the balancer alone picks."""
    retries: RouteRetryPolicy | None = None
    """Failed attempts retried on other instances (:mod:`mesh.resilience.route_retries`);
    None: only a failed connect moves on."""
    cache: CachePolicy | None = None
    """Answers stored and served at the edge (:mod:`edge.cache`); None: never."""
    ext_authz: RouteCheck | None = None
    """The route's own external authorization setting (:mod:`edge.ext_authz`); None: the
    edge-wide ``ext_authz.check_by_default`` decides (always so for Consul-meta routes)."""
    direct: DirectAction | None = None
    """The edge's own answer to this route's requests, a redirect or a fixed response
    (:mod:`edge.direct`), for a route without a service; None: proxied."""
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Per-route settings of the features (``auth``, ``rate_limits``, ...), as configured."""

    def matches(self, path: str) -> bool:
        p = self.prefix
        if self.exact:
            return path == p
        if p == "/":
            return True
        return path.startswith(p) and (len(path) == len(p) or path[len(p)] == "/")

    def upstream_path(self, path: str) -> str | None:
        """Path to send upstream, or None when it is ``path`` unchanged."""
        if self.rewrite is None:
            return None
        return rewrite_prefix(self.prefix, self.rewrite, path)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "exact": self.exact,
            "service": self.service,
            "source": self.source,
            "host": self.host,
            "methods": sorted(self.methods) if self.methods else None,
            "rewrite": self.rewrite,
            "timeout": self.timeout,
            "max_body_size": self.max_body_size,
            "canary": (
                None
                if self.canary is None
                else {
                    "tag": self.canary.tag,
                    "weight": self.canary.weight,
                    "header": self.canary.header,
                }
            ),
            "match": None if self.conditions is None else self.conditions.describe(),
            "mirror": None if self.mirror is None else self.mirror.describe(),
            "hash_policy": None if self.hash_policy is None else self.hash_policy.describe(),
            "retries": None if self.retries is None else self.retries.describe(),
            "cache": None if self.cache is None else self.cache.describe(),
            "ext_authz": None if self.ext_authz is None else self.ext_authz.describe(),
            **({} if self.direct is None else self.direct.describe()),
        }


def make_route(
    *,
    prefix: str,
    service: str | None,
    source: str,
    name: str | None = None,
    host: str | None = None,
    methods: Iterable[str] | None = None,
    strip_prefix: bool = False,
    prefix_rewrite: str | None = None,
    timeout: float | None = None,
    max_body_size: int | None = None,
    canary: Canary | None = None,
    conditions: Conditions | None = None,
    mirror: MirrorPolicy | None = None,
    options: Mapping[str, Any] | None = None,
    hash_policy: HashPolicy | None = None,
    retries: RouteRetryPolicy | None = None,
    cache: CachePolicy | None = None,
    ext_authz: RouteCheck | None = None,
    direct: DirectAction | None = None,
    exact: bool = False,
) -> Route:
    """A route; exactly one of ``service`` and ``direct`` (the edge's own answer). With
    ``exact``, ``prefix`` is the one path the route matches (its default name marks it
    with ``=``, as nginx's exact locations are written)."""
    if (service is None) == (direct is None):
        raise ValueError("a route has either a service or a direct action")
    norm = prefix if exact else prefix.rstrip("/") or "/"
    rewrite = "/" if strip_prefix else prefix_rewrite
    label = direct.kind if direct is not None else str(service)
    return Route(
        name=name or f"{label}:{'=' if exact else ''}{norm}",
        prefix=norm,
        service=service,
        source=source,
        host=_bare_host(host) if host else None,
        methods=frozenset(m.upper() for m in methods) if methods else None,
        exact=exact,
        rewrite=rewrite,
        timeout=timeout,
        max_body_size=max_body_size,
        canary=canary,
        conditions=conditions if conditions else None,  # none at all is no conditions
        mirror=mirror,
        options=dict(options or {}),
        hash_policy=hash_policy,
        retries=retries,
        cache=cache,
        ext_authz=ext_authz,
        direct=direct,
    )


@dataclass(frozen=True)
class Match:
    route: Route | None
    method_allowed: bool = True


_NO_HEADERS: MultiMapping[str] = CIMultiDictProxy(CIMultiDict())

_ConflictKey = tuple[
    str | None, bool, str, tuple[frozenset[Condition], frozenset[Condition]] | None
]


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        """``routes`` in the order given: of two config routes otherwise tried in the
        same place (same host, prefix and number of conditions), the first given is
        tried first."""
        chosen: dict[_ConflictKey, tuple[int, Route]] = {}
        conflicts: list[dict[str, Any]] = []
        for given, route in sorted(enumerate(routes), key=lambda item: _precedence(item[1])):
            conditions = route.conditions
            key = (
                route.host,
                route.exact,
                route.prefix,
                None if conditions is None else conditions.key,
            )
            found = chosen.get(key)
            if found is None:
                chosen[key] = (given, route)
            else:
                winner = found[1].describe()
                conflicts.append(
                    {
                        "host": route.host,
                        "prefix": route.prefix,
                        "exact": route.exact,
                        "match": winner["match"],
                        "winner": winner,
                        "ignored": route.describe(),
                        "rule": "config beats consul meta; then service name order",
                    }
                )
        self.routes: tuple[Route, ...] = tuple(
            route for _, route in sorted(chosen.values(), key=lambda item: _trial_order(*item))
        )
        self.conflicts = tuple(conflicts)
        self._by_host: dict[str, tuple[Route, ...]] = {}
        hostless = tuple(r for r in self.routes if r.host is None)
        for host in {r.host for r in self.routes if r.host is not None}:
            self._by_host[host] = tuple(r for r in self.routes if r.host == host) + hostless
        self._hostless = hostless

    def match(
        self,
        host: str | None,
        path: str,
        method: str,
        headers: MultiMapping[str] = _NO_HEADERS,
        query: str = "",
    ) -> Match:
        """The first route, in precedence order, for host and path whose conditions the
        request's ``headers`` (case-insensitive multidict) and raw ``query`` (without
        ``?``) meet; ``method_allowed`` False → 405. The query is parsed only when a
        route with query conditions is tried, once at most; a route without conditions
        costs nothing more than before they existed."""
        candidates = self._hostless
        if host and self._by_host:
            candidates = self._by_host.get(_bare_host(host), self._hostless)
        params: Mapping[str, list[str]] | None = None
        for route in candidates:
            if route.matches(path):
                conditions = route.conditions
                if conditions is not None:
                    if conditions.query and params is None:
                        params = parse_query(query)
                    if not conditions.accepts(headers, params or NO_PARAMS):
                        continue
                allowed = route.methods is None or method in route.methods
                return Match(route, allowed)
        return Match(None)

    def services(self) -> set[str]:
        return {r.service for r in self.routes if r.service is not None}

    @property
    def answers_directly(self) -> bool:
        """Whether some route is answered by the edge itself (:mod:`edge.direct`)."""
        return any(r.direct is not None for r in self.routes)

    def describe(self, instances: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {
            "routes": [
                {**r.describe(), "instances": instances.get(r.service or "", [])}
                for r in self.routes
            ],
            "conflicts": list(self.conflicts),
        }


def _precedence(route: Route) -> tuple[int, str, str]:
    """Which of two conflicting routes wins: the smaller."""
    return (0 if route.source == "config" else 1, route.service or "", route.name)


def _trial_order(given: int, route: Route) -> tuple[bool, bool, int, str, int, bool, int, str, str]:
    """Where ``route`` (``given``-th in the table's input) is tried, smaller first:
    host-specific before host-less; exact paths before prefixes; longer prefixes first
    (equal lengths by prefix, so one prefix's routes sit together); for one prefix, more
    conditions first (none last); then config routes in the order given, then Consul
    routes by service and name."""
    n = len(route.conditions) if route.conditions is not None else 0
    consul = route.source != "config"
    place = (0, route.service or "", route.name) if consul else (given, "", "")
    prefix = route.prefix
    return (route.host is None, not route.exact, -len(prefix), prefix, -n, consul, *place)


def _bare_host(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
