"""Whether a failed attempt may be retried, and the tenacity predicate that asks.

Shared by the sidecar (tenacity, `retry_if_outcome`) and the edge's route retries
(:mod:`mesh.resilience.route_retries`, which call `should_retry` from the proxy's loop).

tenacity is the retry engine of the project; this module holds the decisions
it is given, as plain functions plus `retry_if_outcome`, a tenacity retry
strategy combining them with the per-service `RetryBudget`::

    budget.record_request()  # once per original request
    retrying = tenacity.AsyncRetrying(
        retry=retry_if_outcome(method_idempotent=..., body_replayable=...,
                               max_attempts=3, budget=budget,
                               outcome_of_exception=transport_error_to_outcome),
        wait=wait_full_jitter(base_s=0.025, cap_s=0.25),
        stop=tenacity.stop_never,  # the attempt limit lives in the predicate
    )
    # The last outcome, retried or not. `.wraps(attempt)()` rather than
    # `retrying(attempt)`: tenacity 9 types the latter as returning Never.
    outcome = await retrying.wraps(attempt)()

Rules (RFC 9110 section 9.2.2, Envoy's ``retry_on`` vocabulary):

- a connect failure is retried for any method: the upstream saw nothing;
- a timeout, a reset after sending, and 502/503/504 are retried only for an
  idempotent request whose body can be sent again;
- backpressure (429 or 503 with ``Retry-After``) is never retried at once: the
  upstream asked for a pause, which the caller honours by avoiding the instance
  (see `mesh.resilience.ejection`) and passing the response on;
- nothing else is retried (a 500 is the application's answer, not a glitch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tenacity.retry import retry_base

from mesh.resilience.outcome import CallError, CallOutcome
from mesh.resilience.retry_budget import RetryBudget

if TYPE_CHECKING:
    from tenacity import RetryCallState

#: RFC 9110 section 9.2.2: the safe methods plus PUT and DELETE.
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: Gateway-class statuses that say "this attempt did not get through".
RETRYABLE_STATUSES: frozenset[int] = frozenset({502, 503, 504})

_IDEMPOTENCY_KEY = "idempotency-key"


def is_idempotent(method: str, headers: Mapping[str, str]) -> bool:
    """Whether repeating the request is harmless.

    True for GET, HEAD, OPTIONS, TRACE, PUT and DELETE, and for any method
    whose request carries a non-empty ``Idempotency-Key`` header (IETF
    httpapi draft: the server deduplicates). Methods are case-sensitive (RFC
    9110 section 9.1), so ``"get"`` is an unknown, non-idempotent method.
    Header names are matched case-insensitively even in a plain ``dict``.
    """
    if method in IDEMPOTENT_METHODS:
        return True
    return any(
        name.lower() == _IDEMPOTENCY_KEY and value.strip() for name, value in headers.items()
    )


def should_retry(
    outcome: CallOutcome,
    method_idempotent: bool,
    body_replayable: bool,
    statuses: frozenset[int] = RETRYABLE_STATUSES,
) -> bool:
    """Whether the attempt that ended in ``outcome`` may be retried.

    Args:
        outcome: how the attempt ended.
        method_idempotent: see `is_idempotent`.
        body_replayable: the request body is buffered (or empty) and can be
            sent again; a streamed body already consumed cannot.
        statuses: the answers retried (the edge's routes choose theirs); whatever
            they are, backpressure is never retried at once, and only an
            idempotent request with a replayable body is retried after it may
            have reached the upstream.

    Budget and attempt limits are not considered here; see `retry_if_outcome`.
    """
    if outcome.error is CallError.CONNECT:
        return True
    if outcome.is_backpressure:
        return False
    if outcome.error is not None or outcome.status in statuses:
        return method_idempotent and body_replayable
    return False


def _require_outcome(result: object) -> CallOutcome:
    if not isinstance(result, CallOutcome):
        raise TypeError(
            f"retry_if_outcome needs the attempt to return a CallOutcome, got {type(result)!r}; "
            "pass outcome_of= to extract one"
        )
    return result


def _no_outcome(error: BaseException) -> CallOutcome | None:
    return None


# Lower case, like the tenacity strategies it sits beside in a Retrying(...) call.
class retry_if_outcome(retry_base):
    """tenacity retry strategy: `should_retry`, an attempt limit, then the budget.

    For each finished attempt tenacity asks this predicate whether to retry.
    It answers True only when, in this order:

    1. the attempt produced a `CallOutcome` (returned, via ``outcome_of``; or
       raised, via ``outcome_of_exception``; an exception it maps to None is
       not retried and tenacity re-raises it unchanged);
    2. fewer than ``max_attempts`` attempts were made;
    3. `should_retry` allows it;
    4. the budget, if any, grants a retry (`RetryBudget.try_acquire_retry`).

    The budget is consulted last so that only retries that will really happen
    spend it. For the same reason the attempt limit belongs here and not in a
    tenacity ``stop``: tenacity runs ``retry`` before ``stop``, so a stop that
    vetoes afterwards would waste a budget token.

    When it answers False tenacity returns the last outcome (or re-raises the
    last exception), never a ``RetryError``, so the proxy forwards the last
    upstream response as is.
    """

    def __init__(
        self,
        *,
        method_idempotent: bool,
        body_replayable: bool,
        max_attempts: int = 3,
        budget: RetryBudget | None = None,
        outcome_of: Callable[[object], CallOutcome] = _require_outcome,
        outcome_of_exception: Callable[[BaseException], CallOutcome | None] = _no_outcome,
    ) -> None:
        """Build the predicate for one request.

        Args:
            max_attempts: total attempts including the first, >= 1.
            outcome_of: maps the attempt's return value to its outcome; by
                default the attempt must return a `CallOutcome`.
            outcome_of_exception: maps an exception raised by the attempt to
                its outcome, or None for "not a transport failure".
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self.method_idempotent = method_idempotent
        self.body_replayable = body_replayable
        self.max_attempts = max_attempts
        self.budget = budget
        self.outcome_of = outcome_of
        self.outcome_of_exception = outcome_of_exception

    def __call__(self, retry_state: RetryCallState) -> bool:
        future = retry_state.outcome
        if future is None:
            return False
        error = future.exception()
        outcome = (
            self.outcome_of(future.result()) if error is None else self.outcome_of_exception(error)
        )
        if outcome is None or retry_state.attempt_number >= self.max_attempts:
            return False
        if not should_retry(outcome, self.method_idempotent, self.body_replayable):
            return False
        return self.budget is None or self.budget.try_acquire_retry()
