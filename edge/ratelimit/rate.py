"""Rates written the way operators think of them: ``100/s burst 200``, ``1000/min``.

A :class:`Rate` is what a token bucket needs: how fast tokens come back
(``per_second``, a float so that ``1000/min`` is exact enough) and how many can
be saved up (``burst``, the bucket's capacity). ``period_s`` only remembers the
period the rate was written in, so that headers and logs can say ``1000/min``
again instead of ``16.67/s``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Accepted spellings of each period, in seconds. "m" is the minute, as in nginx's "r/m".
_PERIODS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}

_SYNTAX = re.compile(
    r"""^\s*
    (?P<count>[^/\s]+)\s*/\s*(?P<unit>[A-Za-z]+)     # 100/s
    (?:\s*,?\s*burst\s+(?P<burst>\S+))?             # optional: burst 200
    \s*$""",
    re.VERBOSE | re.IGNORECASE,
)

_EXAMPLE = "expected '<count>/<unit>' with an optional 'burst <n>', e.g. '100/s burst 200'"


@dataclass(frozen=True, slots=True)
class Rate:
    """A token-bucket limit: ``per_second`` tokens refill per second, at most ``burst`` saved.

    Invariants (checked at construction, ValueError otherwise): ``per_second`` is
    finite and > 0, ``burst`` is an int >= 1, ``period_s`` is finite and > 0.
    """

    per_second: float
    burst: int
    period_s: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second > 0):
            raise ValueError(f"rate must be a positive number of tokens, got {self.per_second!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"burst must be a whole number >= 1, got {self.burst!r}")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"period must be a positive number of seconds, got {self.period_s!r}")

    @classmethod
    def per(cls, count: int, period_s: float, burst: int | None = None) -> Rate:
        """``count`` tokens every ``period_s`` seconds; ``burst`` defaults to ``count``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"rate count must be a whole number >= 1, got {count!r}")
        return cls(count / period_s, count if burst is None else burst, period_s)

    @property
    def quota(self) -> float:
        """Tokens per ``period_s`` (1000.0 for ``1000/min``), for RateLimit-Policy's quota."""
        # Rounding undoes the float error of count / period * period.
        return round(self.per_second * self.period_s, 9)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "day"}.get(self.period_s)
        head = f"{self.quota:g}/{unit}" if unit else f"{self.per_second:g}/s"
        return f"{head} burst {self.burst}"


def parse_rate(text: str) -> Rate:
    """Parse ``<count>/<unit> [burst <n>]`` into a :class:`Rate`.

    ``count`` and ``n`` are whole numbers >= 1; ``unit`` is one of s, sec, second,
    m, min, minute, h, hr, hour, d, day (any case). Without ``burst`` the bucket
    holds one period's worth: ``1000/min`` is 16.67 tokens/s with burst 1000.
    Raises ValueError with a message that quotes the offending text.
    """
    match = _SYNTAX.match(text)
    if match is None:
        raise ValueError(f"invalid rate {text!r}: {_EXAMPLE}")
    count = _whole_number(match["count"], "count", text)
    unit = match["unit"].lower()
    period = _PERIODS.get(unit)
    if period is None:
        raise ValueError(
            f"invalid rate {text!r}: unknown time unit {match['unit']!r}, use one of s, min, h, day"
        )
    burst = None if match["burst"] is None else _whole_number(match["burst"], "burst", text)
    return Rate.per(count, period, burst)


def _whole_number(raw: str, what: str, text: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"invalid rate {text!r}: {what} must be a whole number, got {raw!r}")
    value = int(raw)
    if value < 1:
        raise ValueError(f"invalid rate {text!r}: {what} must be at least 1")
    return value
