"""A route's retry policy at the edge and the decisions about one attempt (pure).

The edge's proxy (:meth:`mesh.proxy.Proxy.forward`) asks these in its attempt loop;
the rules are the sidecar's (:mod:`mesh.resilience.retry_policy`), with the
conditions chosen per route as Envoy's ``retry_on`` does:

- an attempt is retried only when its outcome is one the route lists in
  ``retry_on`` (`reason`): ``connect-failure``, ``reset``, ``timeout`` or a 5xx status;
- a connect failure is retried for any method (nothing reached the app); anything
  else only for an idempotent request whose body can be sent again
  (`~mesh.resilience.retry_policy.should_retry`);
- backpressure (429 or 503 with ``Retry-After``) is never retried at once;
- at most ``max_attempts`` attempts, each retry granted by the route's
  `~mesh.resilience.retry_budget.RetryBudget` (asked last, so only retries that
  happen spend it), and only when its backoff ends before the request's deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from mesh.resilience.backoff import full_jitter_backoff
from mesh.resilience.outcome import CallError, CallOutcome
from mesh.resilience.retry_budget import RetryBudget
from mesh.resilience.retry_policy import should_retry

CONNECT_FAILURE: Final = "connect-failure"
"""No connection was made: the app saw nothing."""
RESET: Final = "reset"
"""The connection was lost after the request was (partly) sent."""
TIMEOUT: Final = "timeout"
"""No answer within the attempt's time (``per_try_timeout`` or the deadline)."""
CONDITIONS: Final = frozenset({CONNECT_FAILURE, RESET, TIMEOUT})
"""The ``retry_on`` conditions that are not statuses."""

_ERROR_REASONS: Final = {
    CallError.CONNECT: CONNECT_FAILURE,
    CallError.RESET: RESET,
    CallError.TIMEOUT: TIMEOUT,
}


def reason(outcome: CallOutcome) -> str:
    """The ``retry_on`` condition ``outcome`` is (its status as text for an answer):
    the label retries are counted by."""
    if outcome.error is not None:
        return _ERROR_REASONS[outcome.error]
    return str(outcome.status)


@dataclass(frozen=True, slots=True, eq=False)
class RouteRetryPolicy:
    """What a route retries, how often and how soon; one per route and edge process.

    ``budget`` is the route's state (its requests and retries of the last window):
    made with the policy, so a reload that builds the routes again starts it afresh.
    """

    max_attempts: int
    """Attempts in all, the first included (>= 1)."""
    conditions: frozenset[str]
    """Of `CONDITIONS`, those retried."""
    statuses: frozenset[int]
    """5xx answers retried (backpressure excepted)."""
    per_try_timeout: float | None
    """Longest one attempt may wait for its answer; None: as long as the request may."""
    backoff_base: float
    backoff_max: float
    replay_limit: int
    """Bodies of declared length up to this are read whole, so they can be sent again."""
    budget: RetryBudget
    attempts_header: bool = True
    """Whether the answer carries ``X-Mesh-Attempts``."""
    random_unit: Callable[[], float] = field(default=lambda: 0.0)
    """Uniform in [0, 1): the backoff's jitter (the edge passes ``random.random``)."""

    def retriable(self, outcome: CallOutcome, idempotent: bool, replayable: bool) -> bool:
        """Whether an attempt that ended in ``outcome`` may be tried again, by the route's
        conditions and the safety rules (attempt limit and budget aside)."""
        error = outcome.error
        if error is not None:
            if _ERROR_REASONS[error] not in self.conditions:
                return False
        elif outcome.status not in self.statuses:
            return False
        return should_retry(outcome, idempotent, replayable, self.statuses)

    def try_time(self, left: float | None) -> float | None:
        """The time an attempt may take, given the ``left`` seconds the request has (None:
        no deadline): the shorter of that and ``per_try_timeout``; None: no bound here."""
        per_try = self.per_try_timeout
        if per_try is None:
            return left
        if left is None or per_try < left:
            return per_try
        return left

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first): full jitter."""
        return full_jitter_backoff(retry, self.backoff_base, self.backoff_max, self.random_unit)

    def describe(self) -> dict[str, Any]:
        """The policy as ``/routes`` shows it."""
        return {
            "max_attempts": self.max_attempts,
            "retry_on": sorted(self.conditions) + sorted(self.statuses),
            "per_try_timeout": self.per_try_timeout,
            "backoff_base": self.backoff_base,
            "backoff_max": self.backoff_max,
            "replay_limit": self.replay_limit,
            "budget": {
                "ratio": self.budget.settings.ratio,
                "min_per_second": self.budget.settings.min_retries_per_second,
                "window": self.budget.settings.window_s,
                "available": self.budget.available(),
            },
            "attempts_header": self.attempts_header,
        }


def fits_before(deadline_left: float | None, wait: float) -> bool:
    """Whether a retry after ``wait`` seconds still has time, the request having
    ``deadline_left`` seconds (None: no deadline)."""
    return deadline_left is None or wait < deadline_left
