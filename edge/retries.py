"""A route's ``retries`` key: retry failed attempts at the edge
(:mod:`mesh.resilience.route_retries`).

The keys and defaults are the sidecar's ``resilience...retries`` (``max_attempts``,
``per_try_timeout``, ``backoff_base``, ``backoff_max``, ``replay_limit``, ``budget_*``,
``attempts_header``), plus ``retry_on``, which chooses what is retried as Envoy's
route ``retry_on`` and ``retriable_status_codes`` do. ``per_try_timeout`` defaults to
none (each attempt may take what is left of the request's time), as in Envoy: an edge
route's answers may be slower than the sidecar's 2 s default.
"""

from __future__ import annotations

import random
import time

from pydantic import Field, field_validator

from mesh.config.types import PositiveDuration
from mesh.resilience.retry_budget import RetryBudget
from mesh.resilience.retry_config import RetryKeys
from mesh.resilience.route_retries import (
    CONDITIONS,
    CONNECT_FAILURE,
    RESET,
    TIMEOUT,
    RouteRetryPolicy,
)

DEFAULT_RETRY_ON: tuple[str | int, ...] = (CONNECT_FAILURE, RESET, TIMEOUT, 502, 503, 504)


class RouteRetriesConfig(RetryKeys):
    """``retries: {max_attempts: 3, retry_on: [connect-failure, 503]}`` on a route."""

    retry_on: tuple[str | int, ...] = Field(default=DEFAULT_RETRY_ON, min_length=1)
    """What is retried: ``connect-failure``, ``reset``, ``timeout`` and 5xx statuses.
    Whatever is listed, only a connect failure is retried for a request that is not
    idempotent, and backpressure (429 or 503 with ``Retry-After``) never at once."""
    per_try_timeout: PositiveDuration | None = None
    """Longest one attempt waits for its answer; null: what is left of the request's time."""

    @field_validator("retry_on")
    @classmethod
    def _known(cls, value: tuple[str | int, ...]) -> tuple[str | int, ...]:
        out: list[str | int] = []
        for item in value:
            if isinstance(item, str) and item.isdigit():
                item = int(item)
            if isinstance(item, int) and not 500 <= item <= 599:
                raise ValueError(f"{item}: only 5xx statuses are retried")
            if isinstance(item, str) and item not in CONDITIONS:
                known = ", ".join(sorted(CONDITIONS))
                raise ValueError(f"unknown condition {item!r} (known: {known} and 5xx statuses)")
            out.append(item)
        return tuple(out)

    def policy(self) -> RouteRetryPolicy:
        """A new policy, its budget empty: one per route and edge process."""
        return RouteRetryPolicy(
            max_attempts=self.max_attempts,
            conditions=frozenset(c for c in self.retry_on if isinstance(c, str)),
            statuses=frozenset(c for c in self.retry_on if isinstance(c, int)),
            per_try_timeout=self.per_try_timeout,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            replay_limit=self.replay_limit,
            budget=RetryBudget(self.budget(), clock=time.monotonic),
            attempts_header=self.attempts_header,
            random_unit=random.random,
        )
