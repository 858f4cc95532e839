"""Which faults a request gets: percent draws from an injected roll, header control, the cap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from multidict import CIMultiDict

from mesh.faults.config import FaultConfig
from mesh.faults.policy import (
    ABORT_HEADER,
    DELAY_HEADER,
    Fault,
    FaultPolicy,
    parse_delay_ms,
    parse_status,
)


def rolls(*values: float) -> Any:
    """A roll handing out ``values`` in order; one draw too many fails the test."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def policy(roll: Any = None, **block: Any) -> FaultPolicy:
    return FaultPolicy(FaultConfig.model_validate(block), roll or rolls())


def test_each_kind_is_drawn_against_its_own_percent() -> None:
    p = policy(
        rolls(0.099, 0.049, 0.10, 0.05, 0.5, 0.01),
        delay={"fixed": "2s", "percent": 10},
        abort={"status": 503, "percent": 5},
    )
    assert p.draw() == Fault(2.0, 503)  # 9.9 < 10 and 4.9 < 5
    assert p.draw() is None  # 10 and 5: just outside
    assert p.draw() == Fault(None, 503)  # 50 ≥ 10, 1 < 5


def test_fractional_percents_are_kept() -> None:
    p = policy(rolls(0.0049, 0.0051), abort={"status": 500, "percent": 0.5})
    assert p.draw() == Fault(None, 500)
    assert p.draw() is None


def test_all_and_none_need_no_draw() -> None:
    # rolls() with no values: any draw would raise StopIteration.
    assert policy(abort={"status": 502}).draw() == Fault(None, 502)
    assert policy(abort={"status": 502, "percent": 0}).draw() is None
    assert policy(delay={"fixed": 1}).draw() == Fault(1.0, None)


def test_headers_are_ignored_unless_the_block_honours_them() -> None:
    headers = CIMultiDict({DELAY_HEADER: "500", ABORT_HEADER: "429"})
    assert policy(abort={"status": 503}).draw(headers) == Fault(None, 503)
    assert policy(delay={"fixed": 1}, abort={"status": 503}, headers=True).draw(headers) == Fault(
        0.5, 429
    )


def test_header_faults_take_the_blocks_share_or_every_request_without_one() -> None:
    headers = CIMultiDict({ABORT_HEADER: "500", DELAY_HEADER: "20"})
    p = policy(rolls(0.5, 0.05), headers=True, abort={"status": 503, "percent": 10})
    assert p.draw(headers) == Fault(0.02, None)  # no delay configured: every request
    assert p.draw(headers) == Fault(0.02, 500)  # the abort's 10 %
    only_headers = policy(headers=True)
    assert only_headers.draw(CIMultiDict()) is None
    assert only_headers.draw(CIMultiDict({ABORT_HEADER: "503"})) == Fault(None, 503)


def test_header_names_are_case_insensitive_and_zero_delay_is_none() -> None:
    p = policy(headers=True, delay={"fixed": "1s"})
    assert p.draw(CIMultiDict({DELAY_HEADER.lower(): "0"})) is None
    assert p.draw(CIMultiDict({DELAY_HEADER.upper(): "7"})) == Fault(0.007, None)


@pytest.mark.parametrize("value", ["", "-5", "1.5", "abc", "1e3", "²", "1000000000", "86400001"])
def test_unreadable_delay_headers_are_ignored(value: str) -> None:
    assert parse_delay_ms(value) is None
    p = policy(headers=True, delay={"fixed": "1s"})
    assert p.draw(CIMultiDict({DELAY_HEADER: value})) == Fault(1.0, None)


def test_delay_header_bounds() -> None:
    assert parse_delay_ms(" 86400000 ") == 86_400_000
    assert parse_delay_ms(None) is None


@pytest.mark.parametrize("value", ["200", "399", "600", "5O3", "", "-500", "5030", "٥٠٣"])
def test_unreadable_abort_headers_are_ignored(value: str) -> None:
    assert parse_status(value) is None


def test_abort_header_range() -> None:
    assert parse_status("400") == 400 and parse_status(" 599") == 599


def test_max_active_caps_admissions_until_released() -> None:
    p = policy(abort={"status": 503}, max_active=2)
    assert p.admit() and p.admit()
    assert not p.admit()
    assert p.active == 2
    p.release()
    assert p.admit() and p.active == 2


def test_no_cap_admits_any_number() -> None:
    p = policy(abort={"status": 503})
    assert all(p.admit() for _ in range(10_000))
    assert p.active == 10_000
