"""CallOutcome: validation and the backpressure classification; Retry-After parsing."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from mesh.resilience.outcome import CallError, CallOutcome, parse_retry_after


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


# --- parse_retry_after ---------------------------------------------------------------------

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  7 ", 7.0),
        ("007", 7.0),
        ("Fri, 01 Mar 2024 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Friday, 01-Mar-24 12:01:00 GMT", 60.0),  # RFC 850
        ("Fri Mar  1 12:00:05 2024", 5.0),  # asctime, implicitly GMT
        ("Fri, 01 Mar 2024 11:00:00 GMT", 0.0),  # in the past
        ("Fri, 01 Mar 2024 12:00:00 GMT", 0.0),  # exactly now
        ("Fri, 01 Mar 2024 14:00:10 +0200", 10.0),  # zone honoured
        (None, None),
        ("", None),
        ("   ", None),
        ("-5", None),
        ("1.5", None),
        ("+5", None),
        ("5s", None),
        ("soon", None),
        ("\u00b2", None),  # a unicode digit
        ("9" * 400, None),  # too large to be finite
        ("Fri, 32 Mar 2024 12:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    result = parse_retry_after(value, NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_retry_after_large_delta_is_kept() -> None:
    assert parse_retry_after("86400000", NOW) == 86_400_000.0


@pytest.mark.parametrize("value", ["nan", "inf", "1e3", "0x10"])
def test_float_spellings_are_not_delay_seconds(value: str) -> None:
    assert parse_retry_after(value, NOW) is None
