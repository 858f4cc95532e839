"""CPU accounting for the bench: /proc stat parsing and the process-tree sum."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu import cpu_split, parse_stat, pin_tree, tree_cpu_seconds
from bench.instructions import callgrind_total
from bench.report import Outcome, combine_rounds, feature_costs, format_costs, format_table
from bench.run import round_orders
from bench.scenarios import SCENARIOS
from bench.wrk import WrkResult

# Field 2 may hold spaces and parentheses; fields are counted from the last ")".
STAT = "4242 (python (x) y) S 17 4242 4242 0 -1 4194560 900 0 0 0 150 25 3 4 20 0 3 0 1 0 0"


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    assert parse_stat(STAT) == (4242, 17, 175)


def test_tree_cpu_seconds_grows_with_this_process_work() -> None:
    before = tree_cpu_seconds([os.getpid()])
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    after = tree_cpu_seconds([os.getpid()])
    assert after - before >= 0.05


def test_tree_cpu_seconds_of_unknown_pid_is_zero() -> None:
    assert tree_cpu_seconds([2**22 + 7]) == 0.0


def test_cpu_per_request_column() -> None:
    result = WrkResult(1000.0, 1000, 1.0, {"p50": 1.0, "p99": 2.0})
    table = format_table(
        [
            Outcome("nginx", "", result=result),
            Outcome("edge", "", result=result, cpu_us_per_request=97.4),
        ],
        "nginx",
    )
    edge_row = next(line for line in table.splitlines() if line.startswith("edge"))
    assert edge_row.endswith("97 µs")
    nginx_row = next(line for line in table.splitlines() if line.startswith("nginx"))
    assert nginx_row.endswith("-")


def _outcome(name: str, rps: float, cpu: float | None, errors: int = 0) -> Outcome:
    result = WrkResult(rps, int(rps), 1.0, {"p50": 1.0, "p99": 2.0}, non_2xx_3xx=errors)
    return Outcome(name, "", result=result, cpu_us_per_request=cpu)


def test_combine_rounds_takes_median_round_and_median_cpu() -> None:
    rounds = [
        [_outcome("edge", 900.0, 120.0), _outcome("nginx", 50.0, 15.0)],
        [_outcome("edge", 1100.0, 100.0), _outcome("nginx", 60.0, 14.0)],
        [_outcome("edge", 1000.0, 130.0), _outcome("nginx", 40.0, 16.0)],
    ]
    edge, nginx = combine_rounds(rounds)
    assert edge.result is not None and edge.result.requests_per_sec == 1000.0
    assert edge.cpu_us_per_request == 120.0
    assert edge.rounds == [(900.0, 120.0), (1100.0, 100.0), (1000.0, 130.0)]
    assert nginx.result is not None and nginx.result.requests_per_sec == 50.0


def test_combine_rounds_reports_a_flagged_round() -> None:
    rounds = [[_outcome("edge", 900.0, 120.0)], [_outcome("edge", 1100.0, 100.0, errors=3)]]
    (edge,) = combine_rounds(rounds)
    assert edge.flagged


def test_callgrind_total_reads_the_totals_line() -> None:
    dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 1234567\ntotals: 1234567\n"
    assert callgrind_total(dump) == 1234567
    with pytest.raises(ValueError):
        callgrind_total("events: Ir\n")


def _paired(name: str, rounds: list[tuple[float, float]], compare_with: str | None) -> Outcome:
    mid = sorted(rounds)[len(rounds) // 2]
    out = _outcome(name, mid[0], mid[1])
    out.rounds = list(rounds)
    out.compare_with = compare_with
    return out


def test_feature_cost_is_the_median_of_paired_round_ratios() -> None:
    # Round 2 is slow for both scenarios: paired ratios cancel it out.
    ref = _paired("edge", [(1000.0, 100.0), (500.0, 200.0), (1000.0, 100.0)], None)
    feature = _paired(
        "edge+x", [(900.0, 110.0), (450.0, 220.0), (800.0, 125.0)], compare_with="edge"
    )
    costs = feature_costs([ref, feature])
    assert set(costs) == {"edge+x"}
    cost = costs["edge+x"]
    assert cost.against == "edge" and cost.rounds == 3
    assert cost.throughput == pytest.approx(-0.10)
    assert cost.cpu == pytest.approx(0.10)
    table = format_costs([ref, feature])
    row = next(line for line in table.splitlines() if line.startswith("edge+x"))
    assert row.split()[1:] == ["edge", "-10.0", "%", "+10.0", "%"]
    assert "median of 3 paired rounds" in table


def test_feature_cost_needs_a_clean_reference_in_the_same_run() -> None:
    feature = _paired("edge+x", [(900.0, 110.0)], compare_with="edge")
    assert feature_costs([feature]) == {}
    broken_ref = _outcome("edge", 1000.0, 100.0, errors=5)
    assert feature_costs([broken_ref, feature]) == {}
    assert format_costs([feature]) == ""


def test_feature_cost_of_single_rounds_uses_the_reported_figures() -> None:
    ref = _outcome("edge", 1000.0, 100.0)
    feature = _outcome("edge+x", 850.0, None)
    feature.compare_with = "edge"
    cost = feature_costs([ref, feature])["edge+x"]
    assert cost.throughput == pytest.approx(-0.15) and cost.cpu is None and cost.rounds == 1


def test_cpu_split_keeps_one_cpu_for_the_proxy() -> None:
    assert cpu_split({0, 1}) == (0, {1})
    assert cpu_split({2, 5, 7}) == (2, {5, 7})
    assert cpu_split({3}) is None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to keep one free")
def test_reserve_proxy_cpu_moves_the_bench_and_what_it_starts_off_the_proxy_cpu() -> None:
    # In a child: the call changes the calling process's own affinity.
    code = (
        "import os, subprocess, sys\n"
        "from bench.cpu import reserve_proxy_cpu\n"
        "split = reserve_proxy_cpu()\n"
        "child = subprocess.run([sys.executable, '-c', "
        "'import os; print(sorted(os.sched_getaffinity(0)))'], capture_output=True, text=True)\n"
        "print(split[0], sorted(split[1]), sorted(os.sched_getaffinity(0)), child.stdout.strip())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    cpus = sorted(os.sched_getaffinity(0))
    others = cpus[1:]
    assert done.stdout.split(" ", 1) == [str(cpus[0]), f"{others} {others} {others}\n"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin onto one")
def test_pin_tree_moves_a_process_tree_and_its_threads_onto_the_cpus() -> None:
    cpu = min(os.sched_getaffinity(0))
    # A child with a thread of its own, and a grandchild.
    code = (
        "import subprocess, sys, threading, time;"
        "threading.Thread(target=time.sleep, args=(30,), daemon=True).start();"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']);"
        "time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        tids: list[int] = []
        grandchildren: list[str] = []
        while time.monotonic() < deadline:
            tids = [int(t) for t in os.listdir(f"/proc/{child.pid}/task")]
            children = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
            grandchildren = children
            if len(tids) >= 2 and grandchildren:
                break
            time.sleep(0.05)
        assert len(tids) >= 2 and grandchildren
        assert pin_tree([child.pid], {cpu}) >= 3
        for tid in tids:
            assert os.sched_getaffinity(tid) == {cpu}
        assert os.sched_getaffinity(int(grandchildren[0])) == {cpu}
    finally:
        for pid in [int(p) for p in grandchildren]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        child.kill()
        child.wait()


def test_round_orders_keep_the_first_round_and_shuffle_the_rest_by_seed() -> None:
    scenarios = [SCENARIOS[n] for n in ("nginx", "edge", "edge+notrace", "edge+trace0")]
    orders = round_orders(scenarios, 6, seed=7)
    assert len(orders) == 6 and orders[0] == scenarios
    assert all(sorted(o, key=scenarios.index) == scenarios for o in orders)
    assert any(o != scenarios for o in orders[1:])  # 5 shuffles of 4: not all the identity
    assert round_orders(scenarios, 6, seed=7) == orders
