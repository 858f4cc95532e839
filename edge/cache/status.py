"""The ``Cache-Status`` response header (RFC 9211; pure): what the edge's cache did.

One member per answer, named ``meshgate``, added after any member the services'
own caches put in the stored or forwarded response (the list runs from the
origin's side to the client's):

* ``meshgate; hit; ttl=42``: served from the cache, fresh for 42 s more;
* ``meshgate; hit; ttl=-3; detail=stale-while-revalidate``: served stale while
  a background request revalidates it;
* ``meshgate; fwd=miss; collapsed; ttl=60``: waited for another request's
  fetch of the same resource, then served what it stored;
* ``meshgate; fwd=stale; fwd-status=304; ttl=60``: revalidated with the service,
  which said it had not changed;
* ``meshgate; fwd=stale; fwd-status=503; ttl=-8; detail=stale-if-error``: the
  service failed (503, or with no status: no connection, a timeout, no healthy
  instance) and a stale response was served;
* ``meshgate; fwd=miss; stored``: fetched and stored (``fwd=stale``: a stale
  one was replaced; ``fwd=vary-miss``: stored ones were for other header
  values; ``fwd=request``: the stored one may not serve this request, which
  carries credentials);
* ``meshgate; fwd=miss; detail=private``: fetched, not stored, and why
  (:data:`REASONS`);
* ``meshgate; fwd=method`` / ``fwd=bypass``: not a request the cache answers.
"""

from __future__ import annotations

from typing import Final

HEADER: Final = "Cache-Status"
NAME: Final = "meshgate"

REASONS: Final = (
    "request-no-store",
    "status",
    "no-store",
    "private",
    "authorization",
    "set-cookie",
    "vary-star",
    "tags",
    "too-large",
    "no-freshness",
    "expired",
    "head",
)
"""Why a fetched response was not stored: the client's request said ``no-store``; a
status not stored; ``no-store``; ``private``; a request with credentials answered
without ``public``, ``s-maxage`` or ``must-revalidate``; ``Set-Cookie``; ``Vary: *``;
more tags than an entry keeps, or one too long (:mod:`edge.cache.tags`); a body
larger than ``max_body_size``; no freshness given and no ``ttl``; stale on arrival
with nothing to revalidate it by; a HEAD sent on as a HEAD (the route's ``convert_head``
is off), whose answer has no body to store."""


def hit(ttl: float, detail: str | None = None) -> str:
    """A response served from the cache, fresh for ``ttl`` more seconds (negative: stale)."""
    value = f"{NAME}; hit; ttl={_seconds(ttl)}"
    return f"{value}; detail={detail}" if detail else value


def forwarded(
    fwd: str,
    *,
    status: int | None = None,
    stored: bool = False,
    collapsed: bool = False,
    ttl: float | None = None,
    detail: str | None = None,
) -> str:
    """A request sent on to the service (``fwd``: ``miss``, ``stale``, ``vary-miss``,
    ``request``, ``method``, ``bypass``); ``status``: the service's; ``collapsed``: it
    waited for another request's fetch and was served what that one stored."""
    parts = [NAME, f"fwd={fwd}"]
    if status is not None:
        parts.append(f"fwd-status={status}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if ttl is not None:
        parts.append(f"ttl={_seconds(ttl)}")
    if detail:
        parts.append(f"detail={detail}")
    return "; ".join(parts)


def appended(existing: str | None, member: str) -> str:
    """``member`` after the members already in a ``Cache-Status`` value."""
    return f"{existing}, {member}" if existing else member


def _seconds(ttl: float) -> int:
    """Whole seconds, rounded towards zero as RFC 9211's integers are."""
    return int(ttl)
