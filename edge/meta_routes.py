"""Routes that services declare themselves in their Consul service meta (pure).

Registering a service with these meta keys is enough to expose it at the edge:

==============================  ==============================================
``meshgate-route``              comma-separated path prefixes (required)
``meshgate-route-host``         only for this Host
``meshgate-route-methods``      comma-separated methods, e.g. ``GET,POST``
``meshgate-route-strip-prefix`` ``true`` sends the path without the prefix
``meshgate-route-rewrite``      replace the prefix with this path
``meshgate-route-timeout``      e.g. ``5s`` or ``500ms``
``meshgate-route-max-body``     largest request body, e.g. ``10MB`` or ``512KiB``
``meshgate-route-canary``       ``<tag>:<percent>``, e.g. ``canary:10``: that share
                                to the instances with the tag (:mod:`mesh.canary`)
``meshgate-route-canary-header`` a request header that picks the canary's side
``meshgate-route-match-headers`` only requests with these headers: comma-separated
                                ``Name=value`` (that exact value) or ``Name``
                                (sent, any value), e.g. ``X-Api-Version=2,X-Beta``
``meshgate-route-hash``         session affinity (:mod:`mesh.hash_policy`):
                                comma-separated ``header:<name>``,
                                ``cookie:<name>``, ``query:<name>``, ``source_ip``
==============================  ==============================================

Instances of one service normally agree; if they do not, the union of the
prefixes declared by its instances is used, and the settings of the instance
whose id sorts first, except the canary's: a canary is usually declared by the
canary's own instances as they are rolled out, so the first instance by id that
declares one declares it for all. Invalid values are reported, not fatal; an
invalid ``meshgate-route-match-headers`` withholds the service's routes rather
than publish them without their conditions, where they would take requests
meant for other routes. An invalid ``meshgate-route-hash`` leaves the routes without
affinity (balanced as usual).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from edge.route_match import Conditions, header_condition
from edge.routes import HTTP_METHODS, Route, make_route
from mesh.canary import Canary
from mesh.config.types import parse_byte_size, parse_duration
from mesh.hash_policy import parse_hash_sources
from mesh.identity.headers import is_header_name
from mesh.snapshot import ServiceEntry

T = TypeVar("T")

PREFIX_KEY = "meshgate-route"
HOST_KEY = "meshgate-route-host"
METHODS_KEY = "meshgate-route-methods"
STRIP_KEY = "meshgate-route-strip-prefix"
REWRITE_KEY = "meshgate-route-rewrite"
TIMEOUT_KEY = "meshgate-route-timeout"
MAX_BODY_KEY = "meshgate-route-max-body"
CANARY_KEY = "meshgate-route-canary"
CANARY_HEADER_KEY = "meshgate-route-canary-header"
MATCH_HEADERS_KEY = "meshgate-route-match-headers"
HASH_KEY = "meshgate-route-hash"

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class MetaProblem:
    service: str
    key: str
    problem: str


def _parsed(
    meta: Mapping[str, str],
    key: str,
    parse: Callable[[str], T],
    problem: Callable[[str, str], None],
    consequence: str = "",
) -> T | None:
    """``parse`` of the value of meta ``key``; None when the key is absent, or when its
    value does not parse (``parse`` raised ValueError): then reported as a problem of
    ``key``, the error followed by ``consequence`` (what is done instead)."""
    if key not in meta:
        return None
    try:
        return parse(meta[key])
    except ValueError as exc:
        problem(key, f"{exc}; {consequence}" if consequence else str(exc))
        return None


def routes_from_meta(entry: ServiceEntry) -> tuple[list[Route], list[MetaProblem]]:
    routes: list[Route] = []
    problems: list[MetaProblem] = []
    declaring = [i for i in entry.instances if PREFIX_KEY in i.meta_dict()]
    if not declaring:
        return routes, problems
    meta = declaring[0].meta_dict()
    prefixes: list[str] = []
    for inst in declaring:
        for p in inst.meta_dict()[PREFIX_KEY].split(","):
            p = p.strip()
            if p.startswith("/"):
                p = p.rstrip("/") or "/"  # /api/ and /api are the same prefix
            if p and p not in prefixes:
                prefixes.append(p)

    def problem(key: str, text: str) -> None:
        problems.append(MetaProblem(entry.name, key, text))

    timeout = _parsed(meta, TIMEOUT_KEY, parse_duration, problem)
    max_body_size = _parsed(
        meta, MAX_BODY_KEY, parse_byte_size, problem, "the edge's default applies"
    )
    methods = [m.upper() for m in _split(meta.get(METHODS_KEY, ""))]
    unknown = [m for m in methods if m not in HTTP_METHODS]
    if unknown:
        problem(METHODS_KEY, f"unknown HTTP method {unknown[0]!r}; method filter ignored")
        methods = []
    strip_value = meta.get(STRIP_KEY, "false").strip().lower()
    if strip_value not in _BOOLEANS:
        problem(STRIP_KEY, f"expected true or false, got {strip_value!r}")
    strip = _BOOLEANS.get(strip_value, False)
    rewrite = meta.get(REWRITE_KEY) or None
    if rewrite is not None and not rewrite.startswith("/"):
        problem(REWRITE_KEY, "must start with '/'")
        rewrite = None
    if strip and rewrite is not None:
        problem(STRIP_KEY, f"ignored: {REWRITE_KEY} is set too, and the rewrite wins")
    canary = _canary([i.meta_dict() for i in declaring], problem)
    conditions = _parsed(
        meta, MATCH_HEADERS_KEY, parse_match_headers, problem, "the service's routes are left out"
    )
    # Refused (not merely empty): the routes would take requests their conditions exclude.
    withheld = any(p.key == MATCH_HEADERS_KEY for p in problems)
    hash_policy = _parsed(meta, HASH_KEY, parse_hash_sources, problem, "no session affinity")
    for prefix in prefixes:
        if not prefix.startswith("/"):
            problem(PREFIX_KEY, f"prefix {prefix!r} must start with '/'")
            continue
        if withheld:
            continue
        routes.append(
            make_route(
                prefix=prefix,
                service=entry.name,
                source=f"consul:{entry.name}",
                host=meta.get(HOST_KEY) or None,
                methods=methods or None,
                strip_prefix=strip and rewrite is None,
                prefix_rewrite=rewrite,
                timeout=timeout,
                max_body_size=max_body_size,
                canary=canary,
                conditions=conditions,
                hash_policy=hash_policy,
            )
        )
    return routes, problems


def parse_match_headers(value: str) -> Conditions | None:
    """The conditions of a ``meshgate-route-match-headers`` value: comma-separated
    ``Name=value`` (the header has exactly that value; spaces around either are
    dropped, and ``Name=`` asks for an empty one) or ``Name`` (the header is sent);
    None when blank. A value cannot hold a comma. Raises ValueError naming the first
    bad item."""
    conditions = []
    for item in _split(value):
        name, eq, text = item.partition("=")
        name = name.strip()
        if not is_header_name(name):
            raise ValueError(f"{name!r} in {item!r} is not a valid header name")
        if eq:
            conditions.append(header_condition(name, "exact", text.strip()))
        else:
            conditions.append(header_condition(name, "present"))
    return Conditions(tuple(conditions)) if conditions else None


def _canary(metas: list[dict[str, str]], problem: Callable[[str, str], None]) -> Canary | None:
    """The canary the first instance declaring one declares (None: none does, or it
    is invalid, which is reported)."""
    carrying = [meta for meta in metas if CANARY_KEY in meta]
    if not carrying:
        return None
    meta = carrying[0]
    tag, sep, weight_text = meta[CANARY_KEY].strip().rpartition(":")
    try:
        weight = float(weight_text)
    except ValueError:
        weight = -1.0
    if not sep or not tag.strip() or not 0 <= weight <= 100:
        problem(CANARY_KEY, "expected <tag>:<percent from 0 to 100>, e.g. canary:10; no canary")
        return None
    return Canary(tag.strip(), weight, meta.get(CANARY_HEADER_KEY) or None)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def all_meta_routes(entries: Iterable[ServiceEntry]) -> tuple[list[Route], list[MetaProblem]]:
    routes: list[Route] = []
    problems: list[MetaProblem] = []
    for entry in entries:
        r, p = routes_from_meta(entry)
        routes += r
        problems += p
    return routes, problems
