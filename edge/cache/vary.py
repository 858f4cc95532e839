"""``Vary``: which request headers a stored response was chosen by (RFC 9111 §4.1; pure).

A response that varies is stored with the values those headers had in the
request that fetched it, and serves only requests whose values are the same.
The values are those of the request *as the edge sent it to the service*,
not as the client sent it: the identity headers the edge sets (``X-User-Id``
...) are the caller's authenticated identity, which no client can choose,
and a header the edge's ``headers`` changes set or removed is what the
service saw. Values are compared after joining a header's lines with ", " and
trimming whitespace around each comma-separated member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Lookup = Callable[[str], "str | None"]
"""A request header's value by lower-cased name, its lines joined (None: absent)."""

Variant = tuple[tuple[str, "str | None"], ...]
"""The (lower-cased name, normalised value) pairs a stored response was chosen by."""

ANY = "*"


def vary_names(values: Iterable[str]) -> tuple[str, ...] | None:
    """The lower-cased names of ``Vary`` field values, sorted, each once; None for ``*``
    (a response that varies on anything: never stored)."""
    names: set[str] = set()
    for value in values:
        for member in value.split(","):
            name = member.strip().lower()
            if name == ANY:
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


def normalise(value: str | None) -> str | None:
    """A header value as compared: members trimmed, joined by ", " (None stays None)."""
    if value is None:
        return None
    return ", ".join(member.strip() for member in value.split(","))


def variant(names: Iterable[str], lookup: Lookup) -> Variant:
    """The request's values of the ``names`` a response varies on."""
    return tuple((name, normalise(lookup(name))) for name in names)


def matches(stored: Variant, lookup: Lookup) -> bool:
    """Whether a request (its headers read by ``lookup``) has the values ``stored``."""
    return all(normalise(lookup(name)) == value for name, value in stored)
