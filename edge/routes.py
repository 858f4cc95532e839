"""The edge's route table: compiled once per snapshot, matched per request (pure).

Precedence when matching: routes for the request's host before host-less
routes, then the longest prefix. Two routes with the same host and prefix
conflict; the rule (shown at ``/routes``) is: a route from the edge config
wins over one declared in Consul meta; between Consul routes, the service
whose name sorts first wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.canary import Canary

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    prefix: str
    """Without a trailing slash (except the root route ``/``)."""
    service: str
    source: str
    """``config`` or ``consul:<service>``."""
    host: str | None = None
    methods: frozenset[str] | None = None
    rewrite: str | None = None
    """Replacement for the matched prefix (``/`` for strip_prefix); None keeps the path."""
    timeout: float | None = None
    max_body_size: int | None = None
    """Largest request body (bytes) this route takes; None: the listener's default."""
    canary: Canary | None = None
    """A share of the requests goes to the instances with a tag (:mod:`mesh.canary`)."""
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Per-route settings of the features (``auth``, ``rate_limits``, ...), as configured."""

    def matches(self, path: str) -> bool:
        p = self.prefix
        if p == "/":
            return True
        return path.startswith(p) and (len(path) == len(p) or path[len(p)] == "/")

    def upstream_path(self, path: str) -> str | None:
        """Path to send upstream, or None when it is ``path`` unchanged."""
        if self.rewrite is None:
            return None
        rest = path[len(self.prefix) :] if self.prefix != "/" else path
        base = self.rewrite.rstrip("/")
        out = base + rest
        return out if out.startswith("/") else "/" + out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": self.prefix,
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
        }


def make_route(
    *,
    prefix: str,
    service: str,
    source: str,
    name: str | None = None,
    host: str | None = None,
    methods: Iterable[str] | None = None,
    strip_prefix: bool = False,
    prefix_rewrite: str | None = None,
    timeout: float | None = None,
    max_body_size: int | None = None,
    canary: Canary | None = None,
    options: Mapping[str, Any] | None = None,
) -> Route:
    norm = prefix.rstrip("/") or "/"
    rewrite = "/" if strip_prefix else prefix_rewrite
    return Route(
        name=name or f"{service}:{norm}",
        prefix=norm,
        service=service,
        source=source,
        host=_bare_host(host) if host else None,
        methods=frozenset(m.upper() for m in methods) if methods else None,
        rewrite=rewrite,
        timeout=timeout,
        max_body_size=max_body_size,
        canary=canary,
        options=dict(options or {}),
    )


@dataclass(frozen=True)
class Match:
    route: Route | None
    method_allowed: bool = True


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        chosen: dict[tuple[str | None, str], Route] = {}
        conflicts: list[dict[str, Any]] = []
        for route in sorted(routes, key=_precedence):
            key = (route.host, route.prefix)
            winner = chosen.get(key)
            if winner is None:
                chosen[key] = route
            else:
                conflicts.append(
                    {
                        "host": route.host,
                        "prefix": route.prefix,
                        "winner": winner.describe(),
                        "ignored": route.describe(),
                        "rule": "config beats consul meta; then service name order",
                    }
                )
        # Host-specific first, then longer prefixes first.
        self.routes: tuple[Route, ...] = tuple(
            sorted(chosen.values(), key=lambda r: (r.host is None, -len(r.prefix), r.name))
        )
        self.conflicts = tuple(conflicts)
        self._by_host: dict[str, tuple[Route, ...]] = {}
        hostless = tuple(r for r in self.routes if r.host is None)
        for host in {r.host for r in self.routes if r.host is not None}:
            self._by_host[host] = tuple(r for r in self.routes if r.host == host) + hostless
        self._hostless = hostless

    def match(self, host: str | None, path: str, method: str) -> Match:
        """The most specific route for host and path; ``method_allowed`` False → 405."""
        candidates = self._hostless
        if host and self._by_host:
            candidates = self._by_host.get(_bare_host(host), self._hostless)
        for route in candidates:
            if route.matches(path):
                allowed = route.methods is None or method in route.methods
                return Match(route, allowed)
        return Match(None)

    def services(self) -> set[str]:
        return {r.service for r in self.routes}

    def describe(self, instances: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {
            "routes": [
                {**r.describe(), "instances": instances.get(r.service, [])} for r in self.routes
            ],
            "conflicts": list(self.conflicts),
        }


def _precedence(route: Route) -> tuple[int, str, str]:
    return (0 if route.source == "config" else 1, route.service, route.name)


def _bare_host(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
