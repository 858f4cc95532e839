"""Server names (TLS SNI) and which certificate answers one: pure, no files, no sockets.

The rules are those of RFC 6125 (section 6.4.3) and nginx's ``server_name``:

* Names compare case-insensitively (they are kept lower-case).
* A name is exact (``api.example.com``) or has a wildcard as its whole first
  label (``*.example.com``), which stands for exactly one label: it matches
  ``a.example.com``, not ``a.b.example.com`` nor ``example.com``. Partial
  wildcards (``a*.example.com``) and wildcards elsewhere are refused.
* An exact name wins over a wildcard that also matches.
* Names are ASCII: an internationalised name is written as its A-label
  (``xn--...``), which is also what a client sends and what Python hands the
  SNI callback. IP addresses are refused: a client never sends one as SNI
  (RFC 6066), so such a name could never be chosen.

:class:`NameTable` makes the choice with at most two dict lookups, since it
runs for every handshake (in OpenSSL's SNI callback).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Underscores are not LDH, but they occur in internal names and cost nothing to allow.


def server_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a server name to match (None: it can), for a config
    error. Call :func:`normalise` first: upper case is not a problem."""
    if not name:
        return "a server name cannot be empty"
    if not name.isascii():
        return f"{name!r}: write an internationalised name as its A-label (xn--...)"
    if len(name) > 253:
        return f"{name!r}: longer than 253 characters"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return f"{name!r}: an IP address, which a client never sends as its server name"
    labels = name.split(".")
    if labels[0] == "*":
        if len(labels) < 2:
            return f"{name!r}: a wildcard needs a domain after it, e.g. *.example.com"
        labels = labels[1:]
    for label in labels:
        if not _LABEL.fullmatch(label):
            if "*" in label:
                return f"{name!r}: a wildcard may only be the whole first label (*.example.com)"
            return f"{name!r}: not a host name (letters, digits, '-' and dots)"
    return None


def normalise(name: str) -> str:
    """``name`` as it is compared: lower case, without a trailing dot (a fully
    qualified ``example.com.`` is the same host)."""
    return name.lower().removesuffix(".")


class NameConflict(Exception):
    """Two owners claim the same name (exact or wildcard)."""

    def __init__(self, name: str, first: str, second: str) -> None:
        super().__init__(f"{name} is claimed by both {first} and {second}")
        self.name = name
        self.first = first
        self.second = second


@dataclass(frozen=True)
class Claim(Generic[T]):
    """The names one value (a certificate's context) answers, and who it is (``owner``,
    e.g. its file, named in a :class:`NameConflict`)."""

    owner: str
    names: Iterable[str]
    value: T


class NameTable(Generic[T]):
    """Which value answers a server name: exact names first, then wildcards, else the
    default. Immutable once built; :meth:`select` never raises."""

    __slots__ = ("_default", "_exact", "_wildcard")

    def __init__(
        self,
        default: T,
        claims: Iterable[Claim[T]] = (),
        fallback_claims: Iterable[Claim[T]] = (),
    ) -> None:
        """``claims`` must not share a name: :class:`NameConflict` names both owners.
        ``fallback_claims`` (the default certificate's own names) take part in the
        matching, so that an exact name there still beats a wildcard in ``claims``, but
        yield any name that a claim also has. Names must be :func:`normalise`\\ d and
        have no :func:`server_name_problem`."""
        self._default = default
        exact: dict[str, T] = {}
        wildcard: dict[str, T] = {}
        owners: dict[str, str] = {}
        for claim in claims:
            for name in claim.names:
                if name in owners and owners[name] != claim.owner:
                    raise NameConflict(name, owners[name], claim.owner)
                owners[name] = claim.owner
                _add(exact, wildcard, name, claim.value)
        for claim in fallback_claims:
            for name in claim.names:
                _add(exact, wildcard, name, claim.value)  # keeps a claim's value for a name
        self._exact: Mapping[str, T] = exact
        self._wildcard: Mapping[str, T] = wildcard

    def select(self, server_name: str | None) -> T:
        """The value for ``server_name`` as the client sent it (any case); the default
        for None (no SNI) and for a name nothing claims."""
        if server_name is None:
            return self._default
        name = server_name.lower()
        if name.endswith("."):
            name = name[:-1]
        found = self._exact.get(name)
        if found is not None:
            return found
        label, dot, parent = name.partition(".")
        if label and dot:
            found = self._wildcard.get(parent)
            if found is not None:
                return found
        return self._default


def _add(exact: dict[str, T], wildcard: dict[str, T], name: str, value: T) -> None:
    """``value`` for ``name`` unless one is there already (the first added wins)."""
    if name.startswith("*."):
        wildcard.setdefault(name[2:], value)
    else:
        exact.setdefault(name, value)
