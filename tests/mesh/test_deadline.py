"""The deadline header: seconds left ↔ whole milliseconds."""

from __future__ import annotations

import pytest

from mesh.deadline import format_remaining, parse_remaining


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250", 0.25),
        (" 1500 ", 1.5),
        ("0", 0.0),
        ("-20", -0.02),  # expired on arrival: the caller answers 504
        ("99999999999", 24 * 3600.0),  # capped at a day
        (None, None),
        ("", None),
        ("1.5", None),
        ("soon", None),
        ("1234567890123", None),  # more than 12 characters
    ],
)
def test_parse_remaining(value: str | None, seconds: float | None) -> None:
    assert parse_remaining(value) == seconds


@pytest.mark.parametrize(
    ("seconds", "value"),
    [(1.5, "1500"), (0.0129, "12"), (0.0004, "0"), (0.0, "0"), (-3.0, "0")],
)
def test_format_remaining_is_whole_ms_never_negative(seconds: float, value: str) -> None:
    assert format_remaining(seconds) == value
