"""The A/B bench's pure parts: paired ratios, the order of a round, pooling saved runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.ab import PairedRatios, format_summary, main, paired_ratios, pool, round_order


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


def _run(a: str, b: str, rps: list[tuple[float, float]]) -> dict[str, object]:
    """A saved run as compare() writes it: bursts of A and B, round by round."""

    def burst(value: float) -> dict[str, float]:
        return {"requests_per_sec": value, "cpu_us_per_request": 1e6 / value, "p99_ms": 1.0}

    bursts = {"a": [burst(x) for x, _ in rps], "b": [burst(y) for _, y in rps]}
    ratios = paired_ratios([x for x, _ in rps], [y for _, y in rps])
    return {"a": a, "b": b, "bursts": bursts, "throughput_ratio": {"median": ratios.median}}


def test_pooling_takes_every_pair_of_every_run() -> None:
    first = _run("edge", "edge+jwt", [(100.0, 90.0), (100.0, 92.0)])
    second = _run("edge", "edge+jwt", [(200.0, 196.0), (200.0, 198.0), (200.0, 194.0)])
    pooled = pool([first, second])
    assert pooled["rounds"] == 5
    # The pairs' ratios: 0.90, 0.92, 0.98, 0.99, 0.97; not the runs' medians (0.91, 0.98).
    assert pooled["throughput_ratio"]["median"] == pytest.approx(0.97)
    assert pooled["throughput_ratio"]["low"] == pytest.approx(0.92)
    assert pooled["cpu_per_request_ratio"]["median"] == pytest.approx(1 / 0.97)
    assert pooled["run_medians"] == pytest.approx([0.91, 0.98])
    assert "2 runs pooled (their req/s medians: -9.0, -2.0 %)" in format_summary(pooled)


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param([], id="none"),
        pytest.param(
            [_run("edge", "edge+jwt", [(1.0, 1.0)]), _run("edge", "edge+apikey", [(1.0, 1.0)])],
            id="different-scenarios",
        ),
    ],
)
def test_pooling_refuses_what_cannot_be_pooled(runs: list[dict[str, object]]) -> None:
    with pytest.raises(ValueError):
        pool(runs)


def test_the_pool_option_reads_saved_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for i, rps in enumerate([[(100.0, 95.0)], [(100.0, 97.0)]]):
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps(_run("edge", "edge+jwt", rps)))
        paths.append(str(path))
    assert main(["--pool", *paths]) == 0
    out = capsys.readouterr().out
    assert "edge+jwt vs edge: req/s -4.0 %" in out and "2 runs pooled" in out


def test_the_pool_option_names_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert main(["--pool", str(missing)]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_without_scenarios_or_pool_it_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "name the scenarios" in capsys.readouterr().err


def test_pooling_keeps_both_sides_of_an_a_a_run() -> None:
    same = _run("edge", "edge", [(100.0, 90.0), (100.0, 110.0), (100.0, 100.0)])
    pooled = pool([same])
    assert pooled["throughput_ratio"]["median"] == pytest.approx(1.0)
    assert pooled["throughput_ratio"]["low"] == pytest.approx(0.95)


def test_pooling_reads_runs_saved_with_bursts_keyed_by_scenario() -> None:
    old = _run("edge", "edge+jwt", [(100.0, 90.0)])
    bursts = old["bursts"]
    assert isinstance(bursts, dict)
    old["bursts"] = {"edge": bursts["a"], "edge+jwt": bursts["b"]}
    assert pool([old])["throughput_ratio"]["median"] == pytest.approx(0.9)


def test_b_source_must_be_a_meshgate_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "edge", "--b-source", str(tmp_path)]) == 2
    assert f"--b-source {tmp_path}: no meshgate checkout there" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--runs", "--rounds"])
def test_runs_and_rounds_must_be_positive(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edge", "edge", option, "0"]) == 2
    assert "--rounds and --runs must be at least 1" in capsys.readouterr().err
