"""Freshness lifetime, age and stale windows, with times given (no clock)."""

from __future__ import annotations

import pytest

from edge.cache.control import response_control
from edge.cache.freshness import State, Timing, explicit_lifetime, initial_age, stale_windows

DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
AT = 784111777.0  # DATE in seconds


@pytest.mark.parametrize(
    ("cache_control", "expires", "lifetime"),
    [
        ("s-maxage=20, max-age=10", None, 20.0),  # s-maxage wins for a shared cache
        ("max-age=10", "Sun, 06 Nov 1994 09:49:37 GMT", 10.0),  # max-age over Expires
        ("", "Sun, 06 Nov 1994 09:49:37 GMT", 3600.0),  # Expires - Date
        ("", "Sun, 06 Nov 1994 07:49:37 GMT", 0.0),  # already past
        ("", "0", 0.0),  # unreadable: in the past
        ("public", None, None),  # nothing said
        ("", None, None),
    ],
)
def test_explicit_lifetime(cache_control: str, expires: str | None, lifetime: float | None) -> None:
    control = response_control([cache_control] if cache_control else [])
    assert explicit_lifetime(control, expires, AT, AT + 5) == lifetime


def test_expires_without_date_counts_from_arrival() -> None:
    control = response_control([])
    assert explicit_lifetime(control, "Sun, 06 Nov 1994 09:49:37 GMT", None, AT + 600) == 3000.0


def test_initial_age_is_the_larger_of_apparent_and_corrected_age() -> None:
    # Sent at 100, came at 103: Age 10 plus the 3 s the request took.
    assert initial_age("10", date=103.0, requested=100.0, received=103.0) == 13.0
    # A Date 30 s behind the arrival says more.
    assert initial_age("10", date=73.0, requested=100.0, received=103.0) == 30.0
    # No Age, no Date: the time the request took.
    assert initial_age(None, date=None, requested=100.0, received=100.5) == 0.5
    # A Date from the future (clock skew) is no negative age; an unreadable Age is 0.
    assert initial_age("abc", date=200.0, requested=100.0, received=100.0) == 0.0
    assert initial_age("²", date=None, requested=100.0, received=100.0) == 0.0
    assert initial_age("7, 9", date=None, requested=100.0, received=100.0) == 7.0


@pytest.mark.parametrize(
    ("cache_control", "windows"),
    [
        ("max-age=10", (30.0, 300.0)),  # the route's
        ("max-age=10, stale-while-revalidate=5", (5.0, 300.0)),  # the answer's own wins
        ("max-age=10, stale-if-error=0", (30.0, 0.0)),
        ("s-maxage=10", (0.0, 0.0)),  # implied proxy-revalidate: not the route's ...
        ("s-maxage=10, stale-while-revalidate=5, stale-if-error=7", (5.0, 7.0)),  # ... its own
        ("max-age=10, must-revalidate, stale-if-error=60", (0.0, 0.0)),
        ("max-age=10, proxy-revalidate", (0.0, 0.0)),
        ("no-cache, stale-while-revalidate=60", (0.0, 0.0)),
    ],
)
def test_stale_windows(cache_control: str, windows: tuple[float, float]) -> None:
    assert stale_windows(response_control([cache_control]), 30.0, 300.0) == windows


def test_a_timing_goes_fresh_then_stale_while_revalidate_then_stale() -> None:
    timing = Timing(lifetime=10, initial_age=2, received=1000, while_revalidate=5, if_error=20)
    assert timing.age(1000) == 2
    assert timing.ttl(1000) == 8
    assert timing.state(1000) is State.FRESH
    assert timing.state(1007.9) is State.FRESH
    assert timing.state(1008) is State.STALE_WHILE_REVALIDATE
    assert timing.ttl(1010) == -2
    assert timing.state(1012.9) is State.STALE_WHILE_REVALIDATE
    assert timing.state(1013) is State.STALE
    assert timing.usable_on_error(1027.9)
    assert not timing.usable_on_error(1028)


def test_age_never_goes_negative_when_the_clock_steps_back() -> None:
    timing = Timing(lifetime=10, initial_age=0, received=1000)
    assert timing.age(990) == 0


def test_no_cache_is_stale_even_when_young() -> None:
    timing = Timing(lifetime=60, initial_age=0, received=1000, revalidate_always=True)
    assert timing.state(1000) is State.STALE


@pytest.mark.parametrize(
    ("timing", "at", "validated", "useful"),
    [
        (Timing(lifetime=10, initial_age=0, received=0), 5, False, True),  # fresh
        (Timing(lifetime=10, initial_age=0, received=0), 11, False, False),  # stale, no use
        (Timing(lifetime=10, initial_age=0, received=0), 11, True, True),  # can revalidate
        (Timing(lifetime=10, initial_age=0, received=0, if_error=5), 14, False, True),
        (Timing(lifetime=10, initial_age=0, received=0, while_revalidate=5), 16, False, False),
        (Timing(lifetime=0, initial_age=0, received=0, revalidate_always=True), 0, False, False),
    ],
)
def test_useful(timing: Timing, at: float, validated: bool, useful: bool) -> None:
    assert timing.useful(at, validated) is useful
