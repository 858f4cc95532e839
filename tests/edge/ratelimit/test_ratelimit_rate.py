"""Parsing and validating rates (edge/ratelimit/rate.py)."""

from __future__ import annotations

import pytest

from edge.ratelimit.rate import Rate, parse_rate


@pytest.mark.parametrize(
    ("text", "per_second", "burst", "period_s"),
    [
        ("10/s", 10.0, 10, 1.0),
        ("100/s burst 200", 100.0, 200, 1.0),
        ("1000/min", 1000 / 60, 1000, 60.0),
        ("5/h", 5 / 3600, 5, 3600.0),
        ("1/day burst 3", 1 / 86400, 3, 86400.0),
        ("  7 / S  Burst  2 ", 7.0, 2, 1.0),
        ("60/m", 1.0, 60, 60.0),
        ("3/second", 3.0, 3, 1.0),
        ("100/s, burst 50", 100.0, 50, 1.0),
        ("2/hour", 2 / 3600, 2, 3600.0),
    ],
)
def test_parses(text: str, per_second: float, burst: int, period_s: float) -> None:
    rate = parse_rate(text)
    assert rate.per_second == pytest.approx(per_second)
    assert rate.burst == burst
    assert rate.period_s == period_s


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected '<count>/<unit>'"),
        ("100", "expected '<count>/<unit>'"),
        ("100/", "expected '<count>/<unit>'"),
        ("/s", "expected '<count>/<unit>'"),
        ("100/fortnight", "unknown time unit 'fortnight'"),
        ("0/s", "count must be at least 1"),
        ("-1/s", "count must be a whole number"),
        ("1.5/s", "count must be a whole number"),
        ("abc/s", "count must be a whole number"),
        ("10/s burst 0", "burst must be at least 1"),
        ("10/s burst x", "burst must be a whole number"),
        ("10/s burst", "expected '<count>/<unit>'"),
        ("10/s burst 5 extra", "expected '<count>/<unit>'"),
    ],
)
def test_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid rate") as info:
        parse_rate(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_round_trips_through_str() -> None:
    for text in ("100/s burst 200", "1000/min burst 1000", "5/h burst 5", "1/day burst 3"):
        assert str(parse_rate(text)) == text
        assert parse_rate(str(parse_rate(text))) == parse_rate(text)


def test_quota_undoes_float_error() -> None:
    assert parse_rate("1000/min").quota == 1000
    assert parse_rate("7/h").quota == 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_second": 0.0, "burst": 1},
        {"per_second": float("inf"), "burst": 1},
        {"per_second": float("nan"), "burst": 1},
        {"per_second": 1.0, "burst": 0},
        {"per_second": 1.0, "burst": True},
        {"per_second": 1.0, "burst": 1, "period_s": 0.0},
    ],
)
def test_rate_invariants(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Rate(**kwargs)  # type: ignore[arg-type]


def test_rate_per() -> None:
    assert Rate.per(30, 60) == Rate(0.5, 30, 60.0)
    assert Rate.per(30, 60, burst=1) == Rate(0.5, 1, 60.0)
    with pytest.raises(ValueError, match="count"):
        Rate.per(0, 1)
