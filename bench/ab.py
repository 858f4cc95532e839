"""A/B: what one feature costs in throughput, both edges running, loaded in turn.

    .venv/bin/python -m bench.ab edge+clientid edge+ratelimit [--rounds 12] [--duration 3]

:mod:`bench.run` starts a scenario, measures it and stops it before the next
one, so two scenarios compared are seconds to minutes apart; on this shared
2-core machine whatever else runs meanwhile moves a round's figures by ±25 %,
more than the 5-15 % a feature is allowed to cost. Here both scenarios'
processes start once and stay up; wrk then loads A and B alternately in short
bursts (A B, B A, A B, ... so neither always goes first), and each round's
*pair* gives one ratio B/A for req/s and one for CPU per request. Slow drift
(another tenant, a helper's build) hits both halves of a pair alike and cancels
in the ratio; the median of the paired ratios is the figure, and the spread
of the middle half of them says how far to trust it. Fast changes (another
tenant's cache pressure) still move a run's median by several points, and
each start of the processes may land differently: A/A runs (the same
scenario and code on both sides) gave medians of +1.2 and +2.2 % for
``edge+trace10`` and -1.3 and -1.9 % for ``edge+notrace`` (session 14, with
wrk and the upstream kept off the edges' CPU). So for a figure near a
target, ``--runs N`` measures N runs, each with freshly started processes,
and pools their bursts (as ``--pool`` does with saved runs).

Both edges are pinned to the same CPU, and every other process (wrk, the
upstream, Consul, Redis) to the rest, as ``bench.run --pin`` does; the idle edge
does only its background work (Consul watches, probes) while the other is
loaded. Each run's JSON records the CPUs the edges' processes and this one
(so wrk) were actually allowed, under ``pinning``. CPU per request counts each
scenario's own processes only, as in ``bench.run``.

Scenarios are those of ``python -m bench.run --list``; B's feature is measured
against A. ``--pool run1.json run2.json ...`` measures nothing and pools the
rounds of saved runs of the same A and B (see :func:`pool`).

``--b-source DIR`` compares two versions of the code instead of two features:
B's processes run the meshgate of another checkout (say a ``git worktree`` of
the commit before a change), A's this one's, so ``edge+trace10 edge+trace10
--b-source ../old`` measures a change to tracing in paired rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/ab.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BenchContext
from bench.cpu import allowed_cpus, pin_tree, reserve_proxy_cpu, tree_cpu_seconds
from bench.proxies import start_upstream
from bench.scenarios import SCENARIOS, EdgeScenario, Target, report_unknown, warm_up
from bench.wrk import WrkOptions, WrkResult

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "ab.json"


@dataclass(frozen=True)
class Burst:
    """One scenario's figures from one wrk burst."""

    requests_per_sec: float
    cpu_us_per_request: float
    p99_ms: float
    errors: int


@dataclass(frozen=True)
class PairedRatios:
    """B/A over the rounds: the median and the middle half's range (quartiles)."""

    median: float
    low: float
    high: float


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> PairedRatios:
    """Median and quartiles of ``b[i] / a[i]``, the rounds' own ratios.

    Raises ValueError when the sequences differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError("paired_ratios needs two sequences of the same, non-zero length")
    ratios = sorted(y / x for x, y in zip(a, b, strict=True))
    return PairedRatios(_quantile(ratios, 0.5), _quantile(ratios, 0.25), _quantile(ratios, 0.75))


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks of the sorted ``ordered``."""
    position = (len(ordered) - 1) * q
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def round_order(round_index: int) -> tuple[int, int]:
    """Which scenario goes first in a round: A then B in even rounds, B then A in odd ones."""
    return (0, 1) if round_index % 2 == 0 else (1, 0)


def _burst(target: Target, pids: Sequence[int], options: WrkOptions) -> Burst:
    before = tree_cpu_seconds(pids)
    result: WrkResult = target.wrk(options)[0]
    cpu = tree_cpu_seconds(pids) - before
    requests = max(result.requests, 1)
    return Burst(
        result.requests_per_sec,
        cpu * 1e6 / requests,
        result.latency_ms.get("p99", float("nan")),
        result.error_count,
    )


def compare(
    ctx: BenchContext,
    names: tuple[str, str],
    rounds: int,
    options: WrkOptions,
    warmup: float,
    proxy_cpu: int | None = None,
    b_source: Path | None = None,
) -> dict[str, object]:
    """Start both scenarios, warm them, load them in turn for ``rounds`` rounds; the figures.

    ``proxy_cpu``: the CPU both scenarios' processes are pinned to (None: not pinned);
    the caller keeps everything else off it (:func:`main`).
    ``b_source``: another checkout of meshgate, whose code B's processes run (A's run
    this one's), to compare two versions of the code in one scenario.
    """
    scenarios = [SCENARIOS[n] for n in names]
    targets: list[Target] = []
    pids: list[list[int]] = []
    with ctx.scenario_scope():
        own_source = ctx.source_root
        for side, scenario in enumerate(scenarios):
            started = set(ctx.scope_pids)
            source = b_source if side == 1 and b_source is not None else own_source
            print(f"{scenario.name}: starting (code in {source})", flush=True)
            ctx.source_root = source
            try:
                targets.append(scenario.start(ctx))
            finally:
                ctx.source_root = own_source
            pids.append([p for p in ctx.scope_pids if p not in started])
        pinning = None
        if proxy_cpu is not None:
            pin_tree(ctx.scope_pids, {proxy_cpu})
            # Read back, not echoed: what the kernel will let each side run on.
            edges = allowed_cpus(pid for side in pids for pid in side)
            pinning = {"edges": sorted(edges), "others": sorted(os.sched_getaffinity(0))}
        for scenario, target in zip(scenarios, targets, strict=True):
            needed = scenario.warm_requests if isinstance(scenario, EdgeScenario) else 0
            warm_up(target, replace(options, duration=warmup), needed)
        bursts: list[list[Burst]] = [[], []]
        for index in range(rounds):
            for which in round_order(index):
                burst = _burst(targets[which], pids[which], options)
                bursts[which].append(burst)
            a, b = bursts[0][-1], bursts[1][-1]
            print(
                f"round {index + 1}/{rounds}: {names[0]} {a.requests_per_sec:,.0f} req/s "
                f"{a.cpu_us_per_request:.0f} µs | {names[1]} {b.requests_per_sec:,.0f} req/s "
                f"{b.cpu_us_per_request:.0f} µs",
                flush=True,
            )
    return {
        **_summary(names, [[asdict(x) for x in bursts[i]] for i in range(2)]),
        "duration_s": options.duration,
        "b_source": None if b_source is None else str(b_source),
        "pinning": pinning,
    }


def _summary(names: tuple[str, str], bursts: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """The figures of paired bursts (``bursts[0][i]`` of A with ``bursts[1][i]`` of B)."""
    a, b = bursts
    throughput = paired_ratios(
        [x["requests_per_sec"] for x in a], [x["requests_per_sec"] for x in b]
    )
    cpu = paired_ratios([x["cpu_us_per_request"] for x in a], [x["cpu_us_per_request"] for x in b])
    return {
        "a": names[0],
        "b": names[1],
        "rounds": len(a),
        "throughput_ratio": asdict(throughput),
        "cpu_per_request_ratio": asdict(cpu),
        # Keyed by side, not by name: an A/A run (one scenario twice) keeps both sides.
        "bursts": {"a": list(a), "b": list(b)},
    }


def pool(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' results (``compare``'s, as saved in the JSON) as one: every round's
    pair from every run, so the median and quartiles are of all of them. Also keeps
    each run's own req/s median (``run_medians``), which says how far runs disagree.

    Raises ValueError when there are none, or when they compare different scenarios.
    """
    if not results:
        raise ValueError("nothing to pool")
    names = (results[0]["a"], results[0]["b"])
    if any((r["a"], r["b"]) != names for r in results):
        raise ValueError("the runs pooled must all compare the same two scenarios")
    pooled = _summary(names, [[x for r in results for x in _side(r, side)] for side in (0, 1)])
    pooled["run_medians"] = [r["throughput_ratio"]["median"] for r in results]
    return pooled


def format_summary(result: dict[str, object]) -> str:
    """Two lines: B's change in req/s and in CPU per request against A, with the quartiles."""
    lines = []
    runs = result.get("run_medians")
    if isinstance(runs, list):
        medians = ", ".join(f"{100 * (m - 1):+.1f}" for m in runs)
        lines.append(f"{len(runs)} runs pooled (their req/s medians: {medians} %)")
    for label, key in (("req/s", "throughput_ratio"), ("CPU/request", "cpu_per_request_ratio")):
        r = result[key]
        assert isinstance(r, dict)
        lines.append(
            f"{result['b']} vs {result['a']}: {label} {100 * (r['median'] - 1):+.1f} % "
            f"(middle half of {result['rounds']} rounds: {100 * (r['low'] - 1):+.1f} "
            f"to {100 * (r['high'] - 1):+.1f} %)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("a", nargs="?", help="the reference scenario")
    parser.add_argument("b", nargs="?", help="the scenario whose feature is measured")
    parser.add_argument("--rounds", type=int, default=12, help="A/B pairs per run (12)")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="runs, each with freshly started processes, whose rounds are pooled (1)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per burst (3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load first (3)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin")
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    parser.add_argument(
        "--pool",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="measure nothing: pool the rounds of these saved runs (of the same A and B)",
    )
    parser.add_argument(
        "--b-source",
        type=Path,
        metavar="DIR",
        help="B's meshgate processes run the code of this other checkout (e.g. a git "
        "worktree of another commit): A and B may then be the same scenario",
    )
    args = parser.parse_args(argv)
    if args.pool:
        return _print_pooled(args.pool)
    if args.a is None or args.b is None:
        parser.print_usage(sys.stderr)
        print("bench: name the scenarios A and B (or --pool saved runs)", file=sys.stderr)
        return 2
    if report_unknown((args.a, args.b)):
        return 2
    if args.rounds < 1 or args.runs < 1:
        print("bench: --rounds and --runs must be at least 1", file=sys.stderr)
        return 2
    if args.b_source is not None and not (args.b_source / "meshgate" / "__main__.py").is_file():
        print(f"bench: --b-source {args.b_source}: no meshgate checkout there", file=sys.stderr)
        return 2
    # As bench.run does: wrk, the upstream (the OTLP sink too), Consul and Redis keep
    # off the edges' CPU. Until session 14 only the edges were pinned, and the rest
    # ran wherever the scheduler put them, the edges' core included: that
    # understated B's cost (tracing at 10 % against 0 % sampled: -4.2 % then,
    # -6.9 % with this; bench/README.md, "Measured again, session 14").
    split = reserve_proxy_cpu() if args.pin else None
    if split is not None:
        print(f"bench: edges on CPU {split[0]}, everything else on {sorted(split[1])}")
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-ab-"))
    with BenchContext(workdir) as ctx:
        ctx.upstream_port = start_upstream(ctx)
        options = WrkOptions(1, args.connections, args.duration, timeout=10.0)
        result = measure_runs(
            ctx,
            (args.a, args.b),
            args.runs,
            args.rounds,
            options,
            args.warmup,
            None if split is None else split[0],
            args.b_source,
        )
    print(format_summary(result))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2))
    print(f"results: {args.json_out}")
    return 0


def measure_runs(
    ctx: BenchContext,
    names: tuple[str, str],
    runs: int,
    rounds: int,
    options: WrkOptions,
    warmup: float,
    proxy_cpu: int | None = None,
    b_source: Path | None = None,
) -> dict[str, Any]:
    """``runs`` runs of :func:`compare`, each starting both scenarios afresh; one run's
    result as it is, several pooled (:func:`pool`) with each run's own under ``runs``."""
    results = []
    for run in range(runs):
        if runs > 1:
            print(f"run {run + 1}/{runs}", flush=True)
        results.append(compare(ctx, names, rounds, options, warmup, proxy_cpu, b_source))
    if runs == 1:
        return results[0]
    return {**pool(results), "runs": results}


def _side(result: dict[str, Any], side: int) -> list[dict[str, Any]]:
    """One side's bursts of a saved run: keyed ``a``/``b``, or by scenario name in
    files written before an A/A run could be saved."""
    bursts = result["bursts"]
    key = ("a", "b")[side]
    return list(bursts[key] if key in bursts else bursts[result[key]])


def _print_pooled(paths: Sequence[Path]) -> int:
    try:
        results = [json.loads(p.read_text()) for p in paths]
        pooled = pool(results)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench: cannot pool {', '.join(map(str, paths))}: {exc!r}", file=sys.stderr)
        return 2
    print(format_summary(pooled))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
