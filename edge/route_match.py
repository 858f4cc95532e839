"""Conditions a route puts on a request's headers and query parameters (pure).

A route may carry :class:`Conditions`: every one of them must hold (AND) for the
route to take the request. One condition names a header or a query parameter
and asks for one of:

- ``exact``: a value equal to the text (case-sensitive);
- ``prefix``: a value starting with the text (case-sensitive);
- ``regex``: a value the regular expression matches in full, in RE2 syntax
  and matched by RE2 in time linear in the value (:mod:`mesh.config.safe_regex`:
  a client's value cannot make a pattern backtrack), compiled once when the
  route is made;
- ``present``: at least one value, of any content, even empty;
- ``absent``: no value at all.

Header names are case-insensitive; query parameter names are not. A header
sent several times, or a parameter repeated in the query, has several values:
the condition holds when *any* of them matches (for ``absent``: when there is
none). A header value is one field line's value as received, never split at
commas. The query is read with :func:`parse_query`: ``?debug`` and ``?debug=``
both carry ``debug`` with the value "".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from multidict import MultiMapping

from mesh.config.safe_regex import SafeRegex, compile_safe_regex

MatchKind = Literal["exact", "prefix", "regex", "present", "absent"]

NO_PARAMS: Mapping[str, list[str]] = {}
"""The parameters of a request without a query (shared, never written)."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition on the values a request carries under ``name``; make it with
    :func:`header_condition` or :func:`query_condition`."""

    name: str
    """A header name in lower case, or a query parameter name as written."""
    kind: MatchKind
    text: str = ""
    """The value for ``exact``, the prefix for ``prefix``, the pattern for ``regex``;
    "" for ``present`` and ``absent``."""
    compiled: SafeRegex | None = field(default=None, compare=False, hash=False, repr=False)
    """``text`` compiled, for ``regex`` (two conditions are equal by their text)."""

    def accepts(self, values: Sequence[str]) -> bool:
        """Whether ``values`` (every value carried under ``name``, in order; empty when
        there is none) satisfy the condition."""
        kind = self.kind
        if kind == "exact":
            return self.text in values
        if kind == "prefix":
            text = self.text
            return any(v.startswith(text) for v in values)
        if kind == "regex":
            assert self.compiled is not None  # set by _condition for every regex
            fullmatch = self.compiled.fullmatch
            return any(fullmatch(v) for v in values)
        if kind == "present":
            return len(values) > 0
        return len(values) == 0

    def describe(self) -> dict[str, Any]:
        """As the config writes it: ``{"name": ..., <kind>: ...}``."""
        if self.kind == "present" or self.kind == "absent":
            return {"name": self.name, "present": self.kind == "present"}
        return {"name": self.name, self.kind: self.text}


def header_condition(name: str, kind: MatchKind, text: str = "") -> Condition:
    """A condition on the header ``name`` (any case). Raises
    :class:`~mesh.config.safe_regex.RegexSyntaxError` for a regex RE2 refuses."""
    return _condition(name.lower(), kind, text)


def query_condition(name: str, kind: MatchKind, text: str = "") -> Condition:
    """A condition on the query parameter ``name`` (case-sensitive). Raises
    :class:`~mesh.config.safe_regex.RegexSyntaxError` for a regex RE2 refuses."""
    return _condition(name, kind, text)


def _condition(name: str, kind: MatchKind, text: str) -> Condition:
    if kind in ("present", "absent"):
        text = ""
    compiled = compile_safe_regex(text) if kind == "regex" else None
    return Condition(name, kind, text, compiled)


@dataclass(frozen=True, slots=True)
class Conditions:
    """Everything a route asks of a request's headers and query, all of it (AND)."""

    headers: tuple[Condition, ...] = ()
    query: tuple[Condition, ...] = ()

    def __len__(self) -> int:
        """How many conditions: a route with more is tried first (:mod:`edge.routes`)."""
        return len(self.headers) + len(self.query)

    @property
    def key(self) -> tuple[frozenset[Condition], frozenset[Condition]]:
        """What two routes compare to find a conflict: the same conditions in any order
        (or written twice) take the same requests."""
        return frozenset(self.headers), frozenset(self.query)

    def accepts(self, headers: MultiMapping[str], params: Mapping[str, list[str]]) -> bool:
        """Whether a request with ``headers`` (a case-insensitive multidict, e.g.
        aiohttp's request headers) and query ``params`` (from :func:`parse_query`; any
        mapping when ``query`` is empty) meets every condition."""
        return all(c.accepts(headers.getall(c.name, ())) for c in self.headers) and all(
            c.accepts(params.get(c.name, ())) for c in self.query
        )

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "headers": [c.describe() for c in self.headers],
            "query": [c.describe() for c in self.query],
        }


def parse_query(raw: str) -> dict[str, list[str]]:
    """The parameters of a raw query string (no ``?``), percent-decoded and ``+`` read as
    a space: name → its values in order. Blank values are kept (``?debug`` and
    ``?debug=`` give ``{"debug": [""]}``); only ``&`` separates parameters."""
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params
