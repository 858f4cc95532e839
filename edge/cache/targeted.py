"""Targeted cache control (RFC 9213): caching directives meant for this cache alone (pure).

A service may tell the edge's cache something other than what it tells browsers and
other caches: ``Cache-Control: no-store`` for everyone, ``Meshgate-Cache-Control:
max-age=60`` for the edge. A route's ``targeted_fields`` is the edge's *target list*,
most specific first. For each response, the first field on that list with a valid,
non-empty value decides the caching policy, and ``Cache-Control`` and ``Expires`` are
then ignored; when none has one, they decide as usual (RFC 9213 §2.2).

A targeted field is a Structured Field Dictionary (RFC 9651), parsed with the
``http-sf`` library, not with a ``Cache-Control`` parser: a field that does not parse
(an upper-case directive name, a stray character) is not valid and is passed over
whole. Its members map to directives as RFC 9213 §2.1 says:

* a directive without an argument (``no-store``) is a Boolean: true sets it, false
  (``no-store=?0``) leaves it unset;
* ``private`` and ``no-cache`` with a string (``private="Set-Cookie"``) are taken as
  unqualified, as :mod:`edge.cache.control` does for ``Cache-Control``;
* ``max-age`` and ``s-maxage`` want an Integer of 0 or more; any other value makes the
  answer stale (0), the safe reading, as an unreadable ``max-age`` does in
  ``Cache-Control``; ``stale-while-revalidate`` and ``stale-if-error`` with any other
  value are ignored;
* other members (extensions) and parameters are ignored.

Targeted fields pass through to the client as the service sent them: a cache that does
not have a field on its own list ignores it (RFC 9213 §2.2), so it harms nothing
downstream, and a CDN in front may use ``CDN-Cache-Control`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import http_sf
from multidict import CIMultiDict

from edge.cache.control import ResponseControl
from mesh.http.cache_control import MAX_DELTA_SECONDS

DEFAULT_FIELDS: Final = ("Meshgate-Cache-Control",)
"""The target list of a route that does not give one: meshgate's own field."""

_FLAGS: Final = ("no-store", "no-cache", "private", "public", "must-revalidate", "proxy-revalidate")
"""Directives that are set or not; ``no-cache`` and ``private`` may carry a string."""
_QUALIFIABLE: Final = frozenset({"no-cache", "private"})


def targeted_control(headers: CIMultiDict[str], fields: tuple[str, ...]) -> ResponseControl | None:
    """The directives of the first field of ``fields`` (the target list, in order) that
    ``headers`` carry with a valid, non-empty value; None when there is none, and then
    ``Cache-Control`` and ``Expires`` decide."""
    for name in fields:
        values = headers.getall(name, None)
        if not values:
            continue
        members = _dictionary(", ".join(values))
        if members:
            return _control(members)
    return None


def _dictionary(value: str) -> dict[str, object] | None:
    """The field's members by name, each its value without its parameters; None when
    the field is not a valid Structured Field Dictionary."""
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (UnicodeEncodeError, http_sf.StructuredFieldError):
        return None
    if not isinstance(parsed, dict):  # pragma: no cover - tltype="dictionary" gives one
        return None
    # An item or an inner list, each as (value, parameters).
    return {
        name: member[0] if isinstance(member, tuple) else member for name, member in parsed.items()
    }


def _flag(members: Mapping[str, object], name: str) -> bool:
    value = members.get(name)
    return value is True or (name in _QUALIFIABLE and isinstance(value, str))


def _seconds(value: object) -> int | None:
    """A member's delta-seconds: a non-negative Integer, capped; None for anything else
    (``True`` too, though a bool is an int)."""
    if type(value) is int and value >= 0:
        return min(value, MAX_DELTA_SECONDS)
    return None


def _lifetime(members: Mapping[str, object], name: str) -> int | None:
    """``max-age`` / ``s-maxage``: its seconds; 0 (stale) for a value that is not
    delta-seconds; None when absent."""
    if name not in members:
        return None
    seconds = _seconds(members[name])
    return 0 if seconds is None else seconds


def _control(members: Mapping[str, object]) -> ResponseControl:
    no_store, no_cache, private, public, must_revalidate, proxy_revalidate = (
        _flag(members, name) for name in _FLAGS
    )
    return ResponseControl(
        no_store=no_store,
        no_cache=no_cache,
        private=private,
        public=public,
        must_revalidate=must_revalidate,
        proxy_revalidate=proxy_revalidate,
        max_age=_lifetime(members, "max-age"),
        s_maxage=_lifetime(members, "s-maxage"),
        # Not delta-seconds: the extension is ignored.
        stale_while_revalidate=_seconds(members.get("stale-while-revalidate")),
        stale_if_error=_seconds(members.get("stale-if-error")),
    )
