"""The A/B bench's pure parts: paired ratios and the order of a round."""

from __future__ import annotations

import pytest

from bench.ab import PairedRatios, format_summary, paired_ratios, round_order


def test_paired_ratios_are_taken_per_round_not_from_the_medians() -> None:
    # A drifts 2x between rounds; B costs 10 % more in each. The medians of A and
    # B taken apart would mix rounds; the paired ratios see the 10 % exactly.
    a = [100.0, 200.0, 100.0, 200.0, 100.0]
    b = [110.0, 220.0, 110.0, 220.0, 110.0]
    assert paired_ratios(a, b) == pytest.approx(PairedRatios(1.1, 1.1, 1.1))


def test_paired_ratios_median_and_quartiles() -> None:
    a = [1.0] * 5
    b = [0.8, 0.9, 1.0, 1.1, 1.5]
    r = paired_ratios(a, b)
    assert (r.median, r.low, r.high) == pytest.approx((1.0, 0.9, 1.1))


def test_paired_ratios_interpolates_between_ranks() -> None:
    r = paired_ratios([1.0] * 4, [1.0, 2.0, 3.0, 4.0])
    assert (r.median, r.low, r.high) == pytest.approx((2.5, 1.75, 3.25))


@pytest.mark.parametrize(("a", "b"), [([], []), ([1.0], [1.0, 2.0])])
def test_paired_ratios_refuses_unpaired_input(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError):
        paired_ratios(a, b)


def test_rounds_alternate_which_scenario_goes_first() -> None:
    assert [round_order(i) for i in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]


def test_summary_states_the_change_in_percent() -> None:
    result = {
        "a": "edge",
        "b": "edge+jwt",
        "rounds": 8,
        "throughput_ratio": {"median": 0.96, "low": 0.94, "high": 0.99},
        "cpu_per_request_ratio": {"median": 1.05, "low": 1.02, "high": 1.07},
    }
    text = format_summary(result)
    assert "edge+jwt vs edge: req/s -4.0 % (middle half of 8 rounds: -6.0 to -1.0 %)" in text
    assert "CPU/request +5.0 % (middle half of 8 rounds: +2.0 to +7.0 %)" in text
