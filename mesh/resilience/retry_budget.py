"""Retry budget for one upstream service at a sidecar, or one route at the edge
(Finagle / Linkerd / Envoy style).

Retries amplify load exactly when an upstream is struggling. A budget caps the
retries of the last ``window_s`` seconds at::

    ratio * requests_in_window + min_retries_per_second * window_s

so retries add at most ``ratio`` extra load once traffic is high, while the
floor still lets a quiet caller retry its rare failures. The defaults (20 %,
10 retries/s, 10 s) are Linkerd's and Finagle's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mesh.resilience.sliding_window import BucketedCounter, Clock

_REQUESTS, _RETRIES = 0, 1

# Absorbs float error so that e.g. 0.29 * 100 (28.999999999999996) allows 29.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RetryBudgetSettings:
    """Validated, immutable settings of a retry budget.

    Attributes:
        ratio: retries allowed per original request in the window, >= 0.
        min_retries_per_second: floor allowed regardless of traffic, >= 0.
        window_s: how far back requests and retries count, > 0.
        window_buckets: resolution; an event leaves the window between
            ``window_s * (1 - 1/window_buckets)`` and ``window_s`` after it.

    Raises:
        ValueError: from ``__post_init__`` on any invalid value, naming it.
    """

    ratio: float = 0.2
    min_retries_per_second: float = 10.0
    window_s: float = 10.0
    window_buckets: int = 10

    def __post_init__(self) -> None:
        for name in ("ratio", "min_retries_per_second"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"RetryBudgetSettings.{name} must be finite and >= 0, got {value!r}"
                )
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(
                f"RetryBudgetSettings.window_s must be finite and > 0, got {self.window_s!r}"
            )
        if isinstance(self.window_buckets, bool) or self.window_buckets < 1:
            raise ValueError(
                f"RetryBudgetSettings.window_buckets must be an integer >= 1, "
                f"got {self.window_buckets!r}"
            )

    @property
    def floor(self) -> float:
        """Retries allowed per window with no traffic at all."""
        return self.min_retries_per_second * self.window_s


class RetryBudget:
    """Sliding-window retry budget shared by all calls to one upstream service.

    Call `record_request` once per original request (not per attempt) and
    `try_acquire_retry` before each retry. Not thread-safe; one event loop.
    """

    __slots__ = ("_counter", "_exhausted_total", "_retries_total", "_settings")

    def __init__(self, settings: RetryBudgetSettings | None = None, *, clock: Clock) -> None:
        """Create an empty budget; ``clock`` returns monotonic seconds."""
        self._settings = settings if settings is not None else RetryBudgetSettings()
        self._counter = BucketedCounter(
            fields=2,
            window_s=self._settings.window_s,
            buckets=self._settings.window_buckets,
            clock=clock,
        )
        self._retries_total = 0
        self._exhausted_total = 0

    @property
    def settings(self) -> RetryBudgetSettings:
        """The settings the budget was built with."""
        return self._settings

    def record_request(self) -> None:
        """Count one original request, which earns ``ratio`` retries for the window."""
        self._counter.add(_REQUESTS)

    def try_acquire_retry(self) -> bool:
        """Take one retry from the budget if it fits.

        Returns True, and counts the retry, when the retries of the window plus
        this one stay within `limit`; otherwise returns False, counts nothing
        in the window and increments `exhausted_total`.
        """
        requests, retries = self._counter.totals()
        if retries + 1 <= self._limit(requests) + _EPSILON:
            self._counter.add(_RETRIES)
            self._retries_total += 1
            return True
        self._exhausted_total += 1
        return False

    def limit(self) -> float:
        """Retries the current window allows in total (used and unused)."""
        return self._limit(self._counter.total(_REQUESTS))

    def available(self) -> int:
        """Retries `try_acquire_retry` would grant right now, if nothing else happened."""
        requests, retries = self._counter.totals()
        return max(0, math.floor(self._limit(requests) + _EPSILON) - retries)

    @property
    def requests_in_window(self) -> int:
        """Original requests counted in the current window."""
        return self._counter.total(_REQUESTS)

    @property
    def retries_in_window(self) -> int:
        """Retries granted in the current window."""
        return self._counter.total(_RETRIES)

    @property
    def retries_total(self) -> int:
        """Retries granted since creation (monotonic, for a Prometheus counter)."""
        return self._retries_total

    @property
    def exhausted_total(self) -> int:
        """Retries refused since creation (monotonic, for a Prometheus counter)."""
        return self._exhausted_total

    def _limit(self, requests: int) -> float:
        return self._settings.ratio * requests + self._settings.floor
