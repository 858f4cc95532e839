"""How long to wait before a retry: exponential backoff with full jitter.

"Full jitter" (AWS architecture blog, "Exponential Backoff And Jitter") draws
the wait uniformly from ``[0, min(cap, base * 2 ** (attempt - 1)))``: callers
that failed together do not retry together.

This is exactly tenacity's ``wait_random_exponential(multiplier=base, max=cap)``,
which however draws from the global ``random`` module. `wait_full_jitter` is the
same tenacity wait strategy with the randomness injected, so tests (and the
proxy's seeded benchmarks) are deterministic::

    tenacity.AsyncRetrying(wait=wait_full_jitter(base_s=0.025, cap_s=0.25), ...)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenacity.wait import wait_base

if TYPE_CHECKING:
    from tenacity import RetryCallState


def backoff_ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """Upper bound of the wait before retry number ``attempt`` (1 = first retry).

    ``min(cap_s, base_s * 2 ** (attempt - 1))``; equals tenacity's
    ``wait_exponential(multiplier=base_s, max=cap_s)`` after ``attempt`` attempts.

    Raises:
        ValueError: if ``attempt < 1``, ``base_s < 0`` or ``cap_s < 0``.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt!r}")
    if not (math.isfinite(base_s) and base_s >= 0):
        raise ValueError(f"base_s must be finite and >= 0, got {base_s!r}")
    if not cap_s >= 0:
        raise ValueError(f"cap_s must be >= 0, got {cap_s!r}")
    try:
        ceiling = base_s * 2.0 ** (attempt - 1)
    except OverflowError:
        # Huge attempt counts: the exponential has long passed any cap.
        return cap_s
    return min(cap_s, ceiling)


def full_jitter_backoff(
    attempt: int, base_s: float, cap_s: float, random_unit: Callable[[], float]
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry).

    ``backoff_ceiling(attempt, base_s, cap_s) * random_unit()``: uniform in
    ``[0, ceiling)`` when ``random_unit`` returns floats in [0, 1), e.g.
    ``random.Random(seed).random``. Never exceeds ``cap_s``.
    """
    return backoff_ceiling(attempt, base_s, cap_s) * random_unit()


# Lower case, like the tenacity strategies it sits beside in a Retrying(...) call.
class wait_full_jitter(wait_base):
    """tenacity wait strategy: `full_jitter_backoff` with injected randomness.

    tenacity calls a wait strategy after ``retry_state.attempt_number``
    attempts, so the first retry waits up to ``base_s``, the second up to
    ``2 * base_s``, and so on up to ``cap_s``.
    """

    def __init__(
        self, base_s: float, cap_s: float, random_unit: Callable[[], float] = random.random
    ) -> None:
        backoff_ceiling(1, base_s, cap_s)  # validates the arguments at construction
        self.base_s = base_s
        self.cap_s = cap_s
        self.random_unit = random_unit

    def __call__(self, retry_state: RetryCallState) -> float:
        return full_jitter_backoff(
            retry_state.attempt_number, self.base_s, self.cap_s, self.random_unit
        )
