"""Hooks through which the limiters report what they do, for metrics and logs.

The limiters call an observer synchronously on the request path: every method
must be cheap and must not raise. :class:`NullObserver` is the default;
:class:`edge.ratelimit.prometheus.PrometheusObserver` turns the calls into
Prometheus series on a registry the edge passes in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from edge.ratelimit.limiter import LimitResult


class LimiterObserver(Protocol):
    """Receives every decision, every Redis round trip and every health change."""

    def on_decision(self, result: LimitResult) -> None:
        """One check was answered (by Redis, the cache, the fallback or a failure mode)."""

    def on_decisions(self, results: Sequence[LimitResult]) -> None:
        """The checks of one Redis batch were answered: :meth:`on_decision` for each.

        One call per batch, so that what is counted per decision can be added
        up once per batch; called before any of the checks resumes.
        """

    def on_round_trip(self, seconds: float, commands: int, error: str | None) -> None:
        """One pipelined batch of ``commands`` scripts took ``seconds``; ``error`` if it failed.

        ``error`` is a short kind: "timeout", "connection", "script" or an exception name.
        """

    def on_health_change(self, healthy: bool, reason: str | None) -> None:
        """Redis became unusable (``reason`` says why) or usable again (``reason`` is None)."""


class NullObserver:
    """Ignores everything."""

    def on_decision(self, result: LimitResult) -> None:
        pass

    def on_decisions(self, results: Sequence[LimitResult]) -> None:
        pass

    def on_round_trip(self, seconds: float, commands: int, error: str | None) -> None:
        pass

    def on_health_change(self, healthy: bool, reason: str | None) -> None:
        pass
