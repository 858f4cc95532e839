"""How long a stored response is fresh, how old it is, and what it may be used for (pure).

RFC 9111 §4.2, for a shared cache, with wall-clock seconds (HTTP dates are):

* **lifetime**: ``s-maxage``, else ``max-age``, else ``Expires`` minus ``Date`` (an
  ``Expires`` that cannot be read is in the past); without any of them, the
  route's ``ttl`` when it has one. No heuristic freshness: a response that says
  nothing and a route without ``ttl`` are not stored.
* **age**: the corrected initial age (the larger of ``Age`` plus the time the
  request took, and the response's ``Date`` behind the time it came), plus the
  time it has been stored.
* **stale windows**: how long past its lifetime it may still be served while it
  is revalidated in the background (``stale-while-revalidate``) or when the
  service fails (``stale-if-error``). The response's own RFC 5861 directives
  win; otherwise the route's windows apply, unless the response has
  ``s-maxage`` (which implies ``proxy-revalidate`` for a shared cache).
  ``no-cache``, ``must-revalidate`` and ``proxy-revalidate`` forbid any stale
  use, the response's own windows included.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from edge.cache.control import ResponseControl
from mesh.http.cache_control import digits
from mesh.http.dates import http_date


class State(Enum):
    """What a stored response may be used for now."""

    FRESH = "fresh"
    """Served as it is."""
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"
    """Served as it is, while a background request revalidates it."""
    STALE = "stale"
    """Revalidated (or fetched again) before use; served only if that fails, within
    its ``stale-if-error`` window."""


@dataclass(frozen=True, slots=True)
class Timing:
    """A stored response's freshness, fixed when it is stored (or revalidated)."""

    lifetime: float
    """Seconds it is fresh for, counted from its age 0."""
    initial_age: float
    """Its corrected initial age when it came (RFC 9111 §4.2.3)."""
    received: float
    """When it came (wall clock): its resident time counts from here."""
    while_revalidate: float = 0.0
    """Seconds past ``lifetime`` during which it is served while revalidated."""
    if_error: float = 0.0
    """Seconds past ``lifetime`` during which it is served when the service fails."""
    revalidate_always: bool = False
    """``no-cache``: validated before every use, fresh or not."""

    def age(self, now: float) -> float:
        """Its current age at ``now`` (never negative)."""
        age = self.initial_age + now - self.received
        # A comparison, not max(): in CPython 3.11 max() parses its arguments as keywords,
        # about 1,300 instructions a call, and every hit asks the age three times.
        return age if age > 0.0 else 0.0

    def ttl(self, now: float) -> float:
        """Seconds of freshness left at ``now``; negative once stale (RFC 9211's ``ttl``)."""
        return self.lifetime - self.age(now)

    def state(self, now: float) -> State:
        staleness = -self.ttl(now)
        if self.revalidate_always:
            return State.STALE
        if staleness < 0:
            return State.FRESH
        if staleness < self.while_revalidate:
            return State.STALE_WHILE_REVALIDATE
        return State.STALE

    def usable_on_error(self, now: float) -> bool:
        """Whether it may be served at ``now`` because the service failed."""
        return -self.ttl(now) < self.if_error

    def useful(self, now: float, validated: bool) -> bool:
        """Whether it can still serve any request at ``now``: fresh, in a stale window,
        or ``validated`` (it has an ``ETag`` or ``Last-Modified`` to revalidate with)."""
        if validated:
            return True
        staleness = -self.ttl(now)
        if self.revalidate_always:
            return staleness < self.if_error  # stale windows are 0 under no-cache
        return staleness < max(self.while_revalidate, self.if_error)


def explicit_lifetime(
    control: ResponseControl, expires: str | None, date: float | None, received: float
) -> float | None:
    """The lifetime the response gives itself (None: it gives none). ``expires`` is its
    ``Expires`` field as sent, ``date`` its ``Date`` (seconds; None: absent or unreadable,
    then the time it came, ``received``, stands in)."""
    if control.s_maxage is not None:
        return float(control.s_maxage)
    if control.max_age is not None:
        return float(control.max_age)
    if expires is not None:
        when = http_date(expires)
        if when is None:
            return 0.0  # an invalid Expires (often "0") is in the past
        return max(0.0, when - (date if date is not None else received))
    return None


def initial_age(
    age_field: str | None, date: float | None, requested: float, received: float
) -> float:
    """The corrected initial age (RFC 9111 §4.2.3) of a response to a request sent at
    ``requested`` that came at ``received``, with its ``Age`` field and ``Date``."""
    apparent = max(0.0, received - date) if date is not None else 0.0
    age_value = 0.0
    if age_field is not None:
        first = age_field.split(",")[0].strip()
        if digits(first):
            age_value = float(first)
    corrected = age_value + max(0.0, received - requested)
    return max(apparent, corrected)


def stale_windows(
    control: ResponseControl, route_while_revalidate: float, route_if_error: float
) -> tuple[float, float]:
    """``(while_revalidate, if_error)``, see the module docstring."""
    if control.forbids_stale:
        return 0.0, 0.0
    defaults = control.s_maxage is None
    swr = control.stale_while_revalidate
    sie = control.stale_if_error
    return (
        float(swr) if swr is not None else (route_while_revalidate if defaults else 0.0),
        float(sie) if sie is not None else (route_if_error if defaults else 0.0),
    )
