"""Which requests get an access-log line (pure: the draw is injected)."""

from __future__ import annotations

import pytest

from mesh.telemetry.log_selection import LogSelection, log_selection


def test_the_rules_keep_failures_and_slow_requests_whatever_the_draw() -> None:
    selection = LogSelection(0.0, keep_status_from=400, keep_slower_than=1.0, roll=lambda: 0.0)
    assert selection.keeps(400, 0.001)
    assert selection.keeps(503, 0.001)
    assert selection.keeps(200, 1.0)  # "this long or longer"
    assert selection.keeps(200, 2.5)
    assert not selection.keeps(399, 0.999)
    assert not selection.keeps(200, 0.0)


@pytest.mark.parametrize(
    ("sample", "draw", "kept"),
    [
        (0.1, 0.0, True),
        (0.1, 0.0999, True),
        (0.1, 0.1, False),  # [0, sample): a share of exactly `sample`
        (0.1, 0.9, False),
        (0.0, 0.0, False),  # never, even on a draw of 0
    ],
)
def test_the_rest_is_sampled(sample: float, draw: float, kept: bool) -> None:
    assert LogSelection(sample, roll=lambda: draw).keeps(200, 0.01) is kept


def test_a_sample_keeps_about_its_share() -> None:
    draws = iter(i / 1000 for i in range(1000))
    selection = LogSelection(0.05, roll=lambda: next(draws))
    assert sum(selection.keeps(200, 0.01) for _ in range(1000)) == 50


def test_without_rules_nothing_else_is_kept() -> None:
    selection = LogSelection(0.0, roll=lambda: 0.0)
    assert not selection.keeps(500, 60.0)


def test_every_request_logged_needs_no_selection() -> None:
    assert log_selection(1.0, 500, 2.0) is None
    made = log_selection(0.5, None, None)
    assert made is not None and (made.sample, made.keep_status_from) == (0.5, None)
