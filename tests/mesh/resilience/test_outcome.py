"""CallOutcome: validation and the backpressure classification."""

from __future__ import annotations

import math

import pytest

from mesh.resilience.outcome import CallError, CallOutcome


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of status and error"),
        ({"status": 200, "error": CallError.CONNECT}, "exactly one of status and error"),
        ({"status": 99}, "status must be in 100..599"),
        ({"status": 600}, "status must be in 100..599"),
        ({"status": 200, "duration_s": -0.1}, "duration_s must be finite"),
        ({"status": 200, "duration_s": math.nan}, "duration_s must be finite"),
        ({"status": 200, "duration_s": math.inf}, "duration_s must be finite"),
        ({"error": CallError.TIMEOUT, "retry_after_s": 1.0}, "requires a response status"),
        ({"status": 503, "retry_after_s": -1.0}, "retry_after_s must be finite"),
        ({"status": 503, "retry_after_s": math.inf}, "retry_after_s must be finite"),
    ],
)
def test_invalid_outcomes_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallOutcome(**kwargs)  # type: ignore[arg-type]


def test_constructors() -> None:
    assert CallOutcome.response(204, 0.5) == CallOutcome(status=204, duration_s=0.5)
    assert CallOutcome.response(503, 0.1, retry_after_s=2.0).retry_after_s == 2.0
    assert CallOutcome.failed(CallError.RESET, 1.5) == CallOutcome(
        error=CallError.RESET, duration_s=1.5
    )


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (CallOutcome.response(429, retry_after_s=1.0), True),
        (CallOutcome.response(503, retry_after_s=0.0), True),
        (CallOutcome.response(429), False),
        (CallOutcome.response(503), False),
        # Retry-After on other statuses (e.g. a redirect) is not backpressure.
        (CallOutcome.response(301, retry_after_s=5.0), False),
        (CallOutcome.response(502, retry_after_s=5.0), False),
        (CallOutcome.failed(CallError.TIMEOUT), False),
    ],
)
def test_is_backpressure(outcome: CallOutcome, expected: bool) -> None:
    assert outcome.is_backpressure is expected
