"""The retry keys a sidecar's ``resilience...retries`` and an edge route's ``retries``
share: how many attempts, how long between them, which bodies may be sent again, the
budget, and the attempts header.

Each adds its own ``per_try_timeout`` (the sidecar's defaults to 2 s, an edge route's
to none, as in Envoy) and the edge its ``retry_on``.
"""

from __future__ import annotations

from pydantic import Field

from mesh.config.types import ByteSize, Duration, Frozen, PositiveDuration
from mesh.resilience.retry_budget import RetryBudgetSettings


class RetryKeys(Frozen):
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts in all, the first included."""
    backoff_base: Duration = 0.025
    """Full jitter: retry n waits a random time below ``backoff_base * 2 ** (n - 1)``..."""
    backoff_max: Duration = 0.25
    """... and below this."""
    replay_limit: ByteSize = Field(default=64 * 1024, ge=0)
    """Bodies up to this size (by Content-Length) are read whole so they can be sent again;
    a longer or chunked body is sent once (then only a failed connect is retried)."""
    budget_ratio: float = Field(default=0.2, ge=0)
    budget_min_per_second: float = Field(default=10.0, ge=0)
    budget_window: PositiveDuration = 10.0
    attempts_header: bool = True
    """Add ``X-Mesh-Attempts`` to the answer."""

    def budget(self) -> RetryBudgetSettings:
        return RetryBudgetSettings(
            ratio=self.budget_ratio,
            min_retries_per_second=self.budget_min_per_second,
            window_s=self.budget_window,
        )
