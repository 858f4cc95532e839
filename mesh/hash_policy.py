"""Session affinity: which part of a request is its hash key (as Envoy's ``hash_policy``).

A route's policy lists sources in order; the first the request carries gives the
key, and requests with the same key go to the same instance (:mod:`mesh.maglev`)
while the instances do not change. A request carrying none of them is balanced as
any other. Unlike Envoy, the sources are not combined: one key, from one source.

Sources read what the client sent (before any filter changed the headers):

* ``header``: the first value of that header;
* ``cookie``: that cookie's value;
* ``query``: the first value of that query parameter (percent-decoded);
* ``source_ip``: the client's address (``Exchange.client_ip``: behind trusted
  proxies, the address they report).

An empty value counts as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mesh.identity.headers import is_header_name

if TYPE_CHECKING:
    from mesh.exchange import Exchange

SourceKind = Literal["header", "cookie", "query", "source_ip"]

_NAMED: dict[str, SourceKind] = {"header": "header", "cookie": "cookie", "query": "query"}
"""The kinds that take a name."""


@dataclass(frozen=True, slots=True)
class HashSource:
    kind: SourceKind
    name: str = ""
    """The header, cookie or query parameter name ("" for ``source_ip``)."""

    def value(self, ex: Exchange) -> str | None:
        """What this source gives for the request, or None (absent or empty)."""
        request = ex.request
        if self.kind == "header":
            found = request.headers.get(self.name)
        elif self.kind == "cookie":
            found = request.cookies.get(self.name)
        elif self.kind == "query":
            found = request.query.get(self.name) if ex.query else None
        else:
            found = ex.client_ip
        return found or None

    def describe(self) -> dict[str, str | bool]:
        return {"source_ip": True} if self.kind == "source_ip" else {self.kind: self.name}

    def text(self) -> str:
        """As a ``meshgate-route-hash`` item: ``header:X-Session-Id``, ``source_ip``."""
        return self.kind if self.kind == "source_ip" else f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class HashPolicy:
    sources: tuple[HashSource, ...]
    """Tried in order (at least one)."""

    def key(self, ex: Exchange) -> str | None:
        """The request's key: the first source's value it carries; None: none."""
        for source in self.sources:
            value = source.value(ex)
            if value is not None:
                return value
        return None

    def describe(self) -> list[dict[str, str | bool]]:
        return [source.describe() for source in self.sources]


def parse_hash_sources(value: str) -> HashPolicy:
    """A ``meshgate-route-hash`` value: comma-separated ``header:<name>``,
    ``cookie:<name>``, ``query:<name>`` or ``source_ip``. Raises ValueError naming the
    first bad item."""
    sources: list[HashSource] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        kind, sep, name = item.partition(":")
        kind, name = kind.strip(), name.strip()
        if kind == "source_ip" and not sep:
            sources.append(HashSource("source_ip"))
        elif kind in _NAMED and name:
            if kind == "header" and not is_header_name(name):
                raise ValueError(f"{name!r} in {item!r} is not a valid header name")
            sources.append(HashSource(_NAMED[kind], name))
        else:
            raise ValueError(
                f"{item!r}: expected header:<name>, cookie:<name>, query:<name> or source_ip"
            )
    if not sources:
        raise ValueError("no source given")
    return HashPolicy(tuple(sources))
