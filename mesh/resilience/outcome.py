"""What one upstream call ended with, as the resilience decisions see it.

The transport maps its exceptions and responses onto `CallOutcome`; the breaker,
the retry policy and the ejection rules read only this, so none of them depends
on the HTTP client in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from mesh.http.dates import http_date

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
    `parse_retry_after`).

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


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Parse a ``Retry-After`` header into seconds to wait from ``now_epoch``.

    Accepts delay-seconds (``"120"``) and HTTP-date in its three RFC 9110
    forms (IMF-fixdate, RFC 850, asctime; a date without a zone is GMT). A
    date in the past gives 0.0.

    Args:
        value: the header value, or None if absent.
        now_epoch: current Unix time (wall clock: HTTP-dates are wall-clock).

    Returns:
        Seconds >= 0, or None when the header is absent, empty, malformed or
        out of range (e.g. negative, fractional, or too large to be finite).
        Callers should cap the result to what they are willing to honour.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    # isascii() too: str.isdigit() accepts characters such as "²".
    if text.isascii() and text.isdigit():
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    when = http_date(text)
    return None if when is None else max(0.0, when - now_epoch)
