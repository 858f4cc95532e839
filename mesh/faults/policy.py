"""Which faults one request gets: pure decisions, the randomness injected.

Per request, for one ``fault`` block (:class:`~mesh.faults.config.FaultConfig`):

* the delay and the abort are drawn independently, each with its ``percent``
  (one draw each, uniform in [0, 1), from the ``roll`` given);
* with ``headers: true``, ``X-Meshgate-Fault-Delay-Ms: <ms>`` replaces the
  block's delay and ``X-Meshgate-Fault-Abort: <status>`` (400-599) its status,
  for that request; the share drawn is still the block's ``percent`` for that
  kind, or every request when the block has none of that kind (as Envoy's
  ``header_delay`` / ``header_abort``). A value that cannot be read (not a whole
  number, a status outside 400-599, a delay over a day) is ignored, as if not
  sent;
* ``max_active`` caps the requests under a fault at once (:meth:`FaultPolicy.admit`
  and :meth:`FaultPolicy.release` bracket each injected fault); a request that
  would go past it goes on untouched (Envoy's ``faults_overflow``).

A policy holds its count of active faults; one event loop uses it, so the count
needs no lock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from mesh.faults.config import FaultConfig

DELAY_HEADER: Final = "X-Meshgate-Fault-Delay-Ms"
"""Request header: hold this request this many milliseconds (``headers: true`` only)."""
ABORT_HEADER: Final = "X-Meshgate-Fault-Abort"
"""Request header: answer this request with this status (``headers: true`` only)."""
CONTROL_HEADERS: Final = (DELAY_HEADER, ABORT_HEADER)

_MAX_HEADER_DELAY_MS = 24 * 3600 * 1000

Roll = Callable[[], float]
"""A uniform draw in [0, 1), ``random.random`` by default."""


@dataclass(frozen=True, slots=True)
class Fault:
    """The faults drawn for one request: a delay, an abort, or both (delay first)."""

    delay_s: float | None
    """Seconds to hold the request; None: no delay."""
    abort_status: int | None
    """Status to answer with; None: no abort (the request goes on)."""


class FaultPolicy:
    def __init__(self, config: FaultConfig, roll: Roll = random.random) -> None:
        self._roll = roll
        delay, abort = config.delay, config.abort
        self._delay_s = delay.fixed if delay is not None else None
        self._delay_percent = delay.percent if delay is not None else 100.0
        self._abort_status = abort.status if abort is not None else None
        self._abort_percent = abort.percent if abort is not None else 100.0
        self.honours_headers: Final = config.headers
        """Whether the request's control headers are read (:data:`CONTROL_HEADERS`)."""
        self._max_active = config.max_active
        self.active = 0
        """Faults admitted and not yet released."""

    def draw(self, headers: Mapping[str, str] | None = None) -> Fault | None:
        """The faults for a request with ``headers`` (read only with ``headers: true``;
        case-insensitive), or None for none."""
        delay_s, status = self._delay_s, self._abort_status
        if self.honours_headers and headers is not None:
            asked_delay = parse_delay_ms(headers.get(DELAY_HEADER))
            if asked_delay is not None:
                delay_s = asked_delay / 1000 if asked_delay > 0 else None
            asked_status = parse_status(headers.get(ABORT_HEADER))
            if asked_status is not None:
                status = asked_status
        if delay_s is not None and not self._chance(self._delay_percent):
            delay_s = None
        if status is not None and not self._chance(self._abort_percent):
            status = None
        if delay_s is None and status is None:
            return None
        return Fault(delay_s, status)

    def admit(self) -> bool:
        """Count one more active fault, unless ``max_active`` are already: then False,
        and the request must go on without its fault."""
        if self._max_active is not None and self.active >= self._max_active:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        """An admitted fault is over (its delay ended, its abort answered, its request gone)."""
        self.active -= 1

    def _chance(self, percent: float) -> bool:
        if percent >= 100.0:
            return True
        return percent > 0.0 and self._roll() * 100.0 < percent


def parse_delay_ms(value: str | None) -> int | None:
    """``X-Meshgate-Fault-Delay-Ms``: whole milliseconds, 0 to a day; else None."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    ms = int(value)
    return ms if ms <= _MAX_HEADER_DELAY_MS else None


def parse_status(value: str | None) -> int | None:
    """``X-Meshgate-Fault-Abort``: a status from 400 to 599; else None."""
    if value is None:
        return None
    value = value.strip()
    if len(value) != 3 or not (value.isascii() and value.isdigit()):
        return None
    status = int(value)
    return status if 400 <= status <= 599 else None
