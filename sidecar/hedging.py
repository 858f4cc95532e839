"""The decisions of one hedged call (``retries.hedge_on_per_try_timeout``), without I/O.

A hedged call does not abandon an attempt at its per-try timeout: when
``per_try_timeout`` has passed since the latest attempt started with no usable
answer, another attempt (a *hedge*) starts on another instance while the
earlier ones keep running, and the first usable answer wins (Envoy's
``hedge_policy: {hedge_on_per_try_timeout: true}``).

The rules :class:`HedgedCall` applies (the proxy runs the attempts, asks it what
to do, and cancels the attempts left once it has an answer):

- *Usable* is what would not be retried (:func:`~mesh.resilience.retry_policy.should_retry`
  says no): any response but 502/503/504, backpressure included. A usable
  answer is the call's at once.
- An attempt that ends in a retryable way (a connect error, a reset, a timeout,
  502/503/504) while another is still in flight is set aside: the call waits for
  the one in flight (and the next hedge, when due). When it was the last in
  flight, the normal retry rules apply: another attempt if the call has attempts
  and time left and the budget grants a retry; otherwise that outcome is the
  call's (the last attempt's to end, as for a retried call).
- Every attempt after the first, hedge or retry, counts against ``max_attempts``
  (attempts in flight plus ended) and takes one retry from the budget. A hedge
  the budget refuses is not made, nor any later hedge of the call: the attempts
  in flight run on to their end (``until``).
- Nothing starts at or after ``until``, the call's end, which also bounds each
  attempt's wait for its answer: the call's deadline (how long its caller will
  wait) or, without one, ``max_attempts * per_try_timeout`` after it began (the
  longest a call without hedging waits for answers, its backoffs aside).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from mesh.resilience.outcome import CallOutcome
from mesh.resilience.retry_policy import should_retry


class Step(Enum):
    """What to do with the outcome of an attempt that ended (:meth:`HedgedCall.ended`)."""

    ANSWER = "answer"
    """This outcome is the call's: return it, cancel the attempts still in flight."""
    WAIT = "wait"
    """Set it aside: another attempt is still in flight."""
    RETRY = "retry"
    """Start another attempt (after the backoff); the budget has been spent for it."""


class HedgedCall:
    """The state of one hedged call: attempts started and in flight, when a hedge is due.

    ``try_acquire_retry`` is the service's retry budget
    (:meth:`~mesh.resilience.retry_budget.RetryBudget.try_acquire_retry`): called
    once for each hedge or retry about to start, it spends one retry when it answers
    True. ``clock`` gives monotonic seconds, the same clock as ``until``.
    Not thread-safe; one call, one event loop.
    """

    __slots__ = (
        "_clock",
        "_hedging",
        "_last_start",
        "_max_attempts",
        "_per_try",
        "_try_acquire_retry",
        "in_flight",
        "started",
        "until",
    )

    def __init__(
        self,
        *,
        per_try_timeout: float,
        max_attempts: int,
        until: float,
        try_acquire_retry: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self._per_try = per_try_timeout
        self._max_attempts = max_attempts
        self.until = until
        """No attempt starts at or after this time, and none waits past it."""
        self._try_acquire_retry = try_acquire_retry
        self._clock = clock
        self._hedging = True
        """False once the budget refused a hedge: the call makes no more."""
        self._last_start = 0.0
        self.started = 0
        """Attempts started so far (the number of the latest)."""
        self.in_flight = 0
        """Attempts started and not yet ended."""

    def start(self) -> int:
        """Count an attempt starting now; returns its number (from 1)."""
        self.started += 1
        self.in_flight += 1
        self._last_start = self._clock()
        return self.started

    def time_left(self) -> float:
        """Seconds until :attr:`until` (<= 0: the call's time is up)."""
        return self.until - self._clock()

    def hedge_in(self) -> float | None:
        """Seconds until the next hedge is due (0: now), or None when none will be:
        nothing in flight, every attempt used, the budget refused one, or it would be
        due at or after :attr:`until`."""
        if not self._hedging or self.in_flight == 0 or self.started >= self._max_attempts:
            return None
        due = self._last_start + self._per_try
        if due >= self.until:
            return None
        return max(0.0, due - self._clock())

    def may_hedge(self) -> bool:
        """A hedge is due (:meth:`hedge_in` has passed): whether to start it now.

        True spends one retry from the budget; False (attempts used up, time up, or
        the budget refused) means the call makes no more hedges.
        """
        if (
            not self._hedging
            or self.started >= self._max_attempts
            or self._clock() >= self.until
            or not self._try_acquire_retry()
        ):
            self._hedging = False
            return False
        return True

    def ended(self, outcome: CallOutcome) -> Step:
        """An attempt in flight ended with ``outcome``: what to do with it (see the
        module docstring). ``RETRY`` has spent one retry from the budget."""
        self.in_flight -= 1
        # Only idempotent requests with a replayable body are hedged.
        if not should_retry(outcome, method_idempotent=True, body_replayable=True):
            return Step.ANSWER
        if self.in_flight > 0:
            return Step.WAIT
        if (
            self.started < self._max_attempts
            and self._clock() < self.until
            and self._try_acquire_retry()
        ):
            return Step.RETRY
        return Step.ANSWER
