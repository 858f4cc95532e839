"""The ``breaker`` configuration section (a sidecar's ``resilience`` policies, the edge's
``outlier_detection``): one circuit breaker's settings, validated as
:class:`mesh.resilience.breaker.BreakerSettings` validates them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mesh.config.types import Duration, Frozen
from mesh.resilience.breaker import BreakerSettings


class BreakerConfig(Frozen):
    window: Literal["count", "time"] = "count"
    window_size: int = Field(default=100, ge=1)
    """Calls in a count window."""
    window_seconds: Duration = 10.0
    """Span of a time window."""
    min_calls: int = Field(default=20, ge=1)
    """Calls the window must hold before a failure or slow-call rate can trip it."""
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    consecutive_failures: int | None = Field(default=5, ge=1)
    slow_call_threshold: Duration | None = None
    slow_call_rate: float | None = Field(default=None, gt=0, le=1)
    open_base: Duration = 5.0
    open_max: Duration = 60.0
    open_multiplier: float = Field(default=2.0, ge=1)
    open_jitter: float = Field(default=0.1, ge=0, lt=1)
    half_open_trials: int = Field(default=3, ge=1)
    failure_statuses: tuple[int, ...] | None = None
    """Statuses counted as failures; default every 5xx."""

    @model_validator(mode="after")
    def _consistent(self) -> BreakerConfig:
        self.settings()  # BreakerSettings validates combinations; its message names the field
        return self

    def settings(self) -> BreakerSettings:
        extra: dict[str, Any] = {}
        if self.failure_statuses is not None:
            extra["failure_statuses"] = frozenset(self.failure_statuses)
        return BreakerSettings(
            window_kind=self.window,
            window_size=self.window_size,
            window_seconds=self.window_seconds,
            min_calls=self.min_calls,
            failure_rate_threshold=self.failure_rate,
            consecutive_failures=self.consecutive_failures,
            slow_call_threshold_s=self.slow_call_threshold,
            slow_call_rate_threshold=self.slow_call_rate,
            open_base_s=self.open_base,
            open_max_s=self.open_max,
            open_multiplier=self.open_multiplier,
            open_jitter=self.open_jitter,
            half_open_trials=self.half_open_trials,
            **extra,
        )
