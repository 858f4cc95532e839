"""The key a route's responses are stored under (pure).

A stored response is found by its *primary key*: the route, the request's
``Host`` (lower-cased, port included), its normalised path, its query as the
route's ``key.query`` says, and the values of the route's ``key.headers``
(read, like ``Vary``'s, from the request as the edge sends it to the service:
see :mod:`edge.cache.vary`). Within a primary key, responses that vary are told
apart by their ``Vary`` headers' values.

``key.query``:

* ``all`` (the default): the query exactly as sent (``?a=1&b=2`` and
  ``?b=2&a=1`` are two entries, as they are two URIs);
* ``none``: ignored (every query shares the path's entry; for parameters that
  only bust caches, when the service never reads the query);
* a list of names: only those parameters, their names in sorted order, each
  name's values in the order sent (any other parameter is ignored).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from edge.cache.vary import Lookup, normalise

QueryRule = Literal["all", "none"] | tuple[str, ...]

PrimaryKey = tuple[Hashable, ...]
"""``(route, host, path, query part, header values)``: hashable, compared whole."""


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What besides the route, host and path makes a route's key."""

    headers: tuple[str, ...] = ()
    """Lower-cased request header names whose values join the key."""
    query: QueryRule = "all"

    def primary(self, route: str, host: str, path: str, query: str, lookup: Lookup) -> PrimaryKey:
        """The primary key of a request of ``route`` (``query``: raw, without ``?``)."""
        rule = self.query
        part: Hashable
        if rule == "all":
            part = query
        elif rule == "none":
            part = ""
        else:
            kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k in rule]
            part = tuple(sorted(kept, key=lambda item: item[0]))  # stable: values keep order
        if not self.headers:
            return (route, host.lower(), path, part)
        values = tuple(normalise(lookup(name)) for name in self.headers)
        return (route, host.lower(), path, part, values)

    def describe(self) -> dict[str, object]:
        return {
            "headers": list(self.headers),
            "query": self.query if isinstance(self.query, str) else list(self.query),
        }
