"""Whether Redis may be called: the degraded-mode state machine, without I/O.

::

    healthy ──failure (error or timeout)──▶ degraded ──probe succeeded──▶ healthy
                                              │  ▲
                                              └──┘ probe failed

While degraded, nothing but the background probe talks to Redis; requests are
answered by their policies' failure modes without waiting. Only a successful
probe ends degraded mode: a late success of a request sent before the failure
does not, so one lucky reply cannot make the edge flap back onto a dying Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """A snapshot for admin endpoints and logs.

    ``degraded_since``: clock time of the failure that started the current
    degraded period (None while healthy). ``last_error``: the most recent
    failure, kept after recovery. ``outages``: healthy→degraded transitions so far.
    """

    healthy: bool
    degraded_since: float | None
    last_error: str | None
    outages: int


class RedisHealth:
    """Healthy/degraded state with the time and cause of the last failure.

    ``on_change(healthy, reason)`` is called on every transition (``reason`` is
    the failure, or None on recovery); it must not raise.
    """

    def __init__(self, on_change: Callable[[bool, str | None], None] | None = None) -> None:
        self._on_change = on_change
        self.healthy = True
        """False from a failure until the next recovery (read on every check: an attribute,
        not a property; only :meth:`failed` and :meth:`recovered` change it)."""
        self._degraded_since: float | None = None
        self._last_error: str | None = None
        self._outages = 0

    def failed(self, now: float, reason: str) -> bool:
        """Record a failure at ``now``; True if this call turned a healthy state degraded."""
        self._last_error = reason
        if self._degraded_since is not None:
            return False
        self._degraded_since = now
        self.healthy = False
        self._outages += 1
        if self._on_change is not None:
            self._on_change(False, reason)
        return True

    def recovered(self) -> bool:
        """Record a successful probe; True if this call ended a degraded period."""
        if self._degraded_since is None:
            return False
        self._degraded_since = None
        self.healthy = True
        if self._on_change is not None:
            self._on_change(True, None)
        return True

    def status(self) -> HealthStatus:
        return HealthStatus(self.healthy, self._degraded_since, self._last_error, self._outages)
