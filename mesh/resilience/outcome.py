"""What one upstream call ended with, as the resilience decisions see it.

The transport maps its exceptions and responses onto `CallOutcome`; the breaker,
the retry policy and the ejection rules read only this, so none of them depends
on the HTTP client in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

#: Statuses that mean "slow down" when they carry a ``Retry-After`` header.
BACKPRESSURE_STATUSES = frozenset({429, 503})


class CallError(StrEnum):
    """A call that produced no HTTP response, by how far the request got.

    The distinction matters for retries: only `CONNECT` guarantees the upstream
    never saw the request.
    """

    #: No connection was established (refused, unreachable, DNS failure, connect
    #: timeout, TLS handshake failure): no request byte reached the upstream.
    CONNECT = "connect"
    #: The request was (at least partly) sent and no complete response arrived
    #: before the per-attempt timeout.
    TIMEOUT = "timeout"
    #: The connection was lost after request bytes were sent and before a
    #: complete response arrived; the upstream may have acted on it.
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The result of one attempt against one upstream instance.

    Exactly one of ``status`` and ``error`` is set. ``duration_s`` is the
    attempt's wall time in seconds (used for slow-call detection).
    ``retry_after_s`` is the parsed ``Retry-After`` delay in seconds, or None
    when the response had no valid ``Retry-After`` (see
    `sidecar.resilience.retry_policy.parse_retry_after`).

    Raises:
        ValueError: on an inconsistent combination (both or neither of status
            and error, status outside 100..599, negative or non-finite times,
            ``retry_after_s`` without a status).
    """

    status: int | None = None
    error: CallError | None = None
    duration_s: float = 0.0
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        if (self.status is None) == (self.error is None):
            raise ValueError("CallOutcome needs exactly one of status and error")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"CallOutcome.status must be in 100..599, got {self.status!r}")
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ValueError(
                f"CallOutcome.duration_s must be finite and >= 0, got {self.duration_s!r}"
            )
        if self.retry_after_s is not None:
            if self.status is None:
                raise ValueError("CallOutcome.retry_after_s requires a response status")
            if not (math.isfinite(self.retry_after_s) and self.retry_after_s >= 0):
                raise ValueError(
                    f"CallOutcome.retry_after_s must be finite and >= 0, got {self.retry_after_s!r}"
                )

    @classmethod
    def response(
        cls, status: int, duration_s: float = 0.0, retry_after_s: float | None = None
    ) -> CallOutcome:
        """An attempt that received a response with ``status``."""
        return cls(status=status, duration_s=duration_s, retry_after_s=retry_after_s)

    @classmethod
    def failed(cls, error: CallError, duration_s: float = 0.0) -> CallOutcome:
        """An attempt that ended without a response."""
        return cls(error=error, duration_s=duration_s)

    @property
    def is_backpressure(self) -> bool:
        """True for a 429 or 503 carrying ``Retry-After``.

        The upstream is alive and asking callers to slow down: such a response
        is neither retried at once nor counted as a breaker failure.
        """
        return self.retry_after_s is not None and self.status in BACKPRESSURE_STATUSES
