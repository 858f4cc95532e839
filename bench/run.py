"""Benchmark meshgate against nginx and HAProxy, side by side, in one run.

    .venv/bin/python -m bench.run [--duration 10] [--connections 64] [--threads 1]
                                  [--scenarios upstream,nginx,...] [--json-out FILE]

Starts one upstream nginx, then for each scenario starts what it needs, warms
it up, loads it with wrk, and stops it. Prints a table and writes JSON. Every
process is stopped at the end, also on failure, Ctrl-C or SIGTERM.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BenchContext
from bench.cpu import pin_tree, reserve_proxy_cpu, tree_cpu_seconds
from bench.proxies import haproxy_binary, nginx_binary, start_upstream
from bench.report import (
    Outcome,
    combine_rounds,
    format_costs,
    format_table,
    results_document,
    write_json,
)
from bench.scenarios import BASELINE, SCENARIOS, Scenario
from bench.session import EXIT_USAGE, BenchRun
from bench.wrk import WrkOptions, wrk_binary

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Load nginx, HAProxy and meshgate (edge, edge+sidecar) with wrk in one run, "
        "all in front of the same upstream nginx, and compare them with nginx.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (1)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of load before each measurement (2)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, run in this order (default: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--json-out", type=Path, default=DEFAULT_JSON, help=f"results file ({DEFAULT_JSON})"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where configs and logs go (default: a temporary directory, removed after a "
        "clean run and kept when something failed)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds: run every scenario this many times, interleaved, and report the median (1)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the proxy under test alone on one CPU, and wrk, the upstream and every "
        "other process on the others (default: on with 2 or more CPUs)",
    )
    parser.add_argument(
        "--shuffle-seed",
        type=int,
        default=None,
        help="with --repeat, rounds after the first run the scenarios in an order shuffled "
        "with this seed (default: a random seed, printed); rounds in a fixed order charged "
        "scenarios late in a round ±15 %% more CPU per request on this machine",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def round_orders(scenarios: Sequence[Scenario], repeat: int, seed: int) -> list[list[Scenario]]:
    """The scenarios of each round: the first as given, the others shuffled by ``seed``.

    Interleaved rounds cancel slow spells of the machine, but a fixed order
    does not cancel what depends on a scenario's place in the round (on this
    machine the later scenarios of a round came out up to 15 % slower); a
    new order every round turns that bias into noise the median absorbs.
    """
    rng = random.Random(seed)
    orders = [list(scenarios)]
    for _ in range(repeat - 1):
        order = list(scenarios)
        rng.shuffle(order)
        orders.append(order)
    return orders


def select_scenarios(spec: str) -> list[Scenario]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if not names:
        raise SystemExit("no scenarios selected")
    return [SCENARIOS[n] for n in names]


def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return None
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else None


def _meta(options: WrkOptions, warmup: float) -> dict[str, Any]:
    nginx, haproxy, wrk = nginx_binary(), haproxy_binary(), wrk_binary()
    return {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": list(os.getloadavg()),
            "note": "shared machine: other work may run during the measurement",
        },
        "wrk": {
            "threads": options.threads,
            "connections": options.connections,
            "duration_s": options.duration,
            "warmup_s": warmup,
            "timeout_s": options.timeout,
        },
        "versions": {
            "nginx": _version([nginx, "-v"]) if nginx else None,
            "haproxy": _version([haproxy, "-v"]) if haproxy else None,
            "wrk": _version([wrk, "--version"]) if wrk else None,
            "python": sys.version.split()[0],
        },
    }


def measure(
    ctx: BenchContext,
    sc: Scenario,
    options: WrkOptions,
    warmup: float,
    progress: str,
    proxy_cpu: int | None = None,
) -> Outcome:
    """Start ``sc``, warm it up, measure it; its processes are stopped on return.

    With ``proxy_cpu``, the scenario's own processes (the proxy under test)
    are pinned to that CPU once started, every thread of them.
    """
    outcome = Outcome(sc.name, sc.description, compare_with=sc.compare_with)
    print(f"{progress} {sc.name}: starting", flush=True)
    with ctx.scenario_scope():
        try:
            target = sc.start(ctx)
            if proxy_cpu is not None:
                pin_tree(ctx.scope_pids, {proxy_cpu})
            outcome.url, outcome.headers = target.url, dict(target.headers)
            if warmup > 0:
                print(f"{progress} {sc.name}: warm-up {warmup:g}s", flush=True)
                warm = WrkOptions(options.threads, options.connections, warmup, options.timeout)
                target.wrk(warm)
            print(f"{progress} {sc.name}: measuring {options.duration:g}s", flush=True)
            cpu_before = tree_cpu_seconds(ctx.scope_pids)
            result, raw = target.wrk(options)
            cpu_seconds = tree_cpu_seconds(ctx.scope_pids) - cpu_before
        except Exception as exc:  # one broken scenario must not lose the others' numbers
            outcome.failure = f"{type(exc).__name__}: {exc}"
            print(f"{progress} {sc.name}: FAILED\n{outcome.failure}", file=sys.stderr, flush=True)
            return outcome
        ctx.path(f"{sc.name}.wrk.txt").write_text(raw)
        outcome.result = result
        if result.requests > 0 and ctx.scope_pids:
            outcome.cpu_us_per_request = cpu_seconds * 1e6 / result.requests
        p99 = result.latency_ms.get("p99", float("nan"))
        errors = f", {result.error_count} ERRORS" if result.error_count else ""
        print(
            f"{progress} {sc.name}: {result.requests_per_sec:,.0f} req/s, p99 {p99:.2f} ms"
            f"{_cpu_note(outcome)}{errors}",
            flush=True,
        )
    return outcome


def _cpu_note(outcome: Outcome) -> str:
    if outcome.cpu_us_per_request is None:
        return ""
    return f", {outcome.cpu_us_per_request:.0f} µs CPU/request"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        width = max(len(name) for name in SCENARIOS)
        for sc in SCENARIOS.values():
            print(f"{sc.name:{width}}  {sc.description}")
        return 0
    try:
        scenarios = select_scenarios(args.scenarios)
    except SystemExit as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    missing = [n for n, b in (("wrk", wrk_binary()), ("nginx", nginx_binary())) if b is None]
    if missing:
        print(
            f"bench: {' and '.join(missing)} not found (apt-get install wrk nginx haproxy)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.duration <= 0 or args.connections < 1 or args.threads < 1 or args.repeat < 1:
        print(
            "bench: --duration, --connections, --threads and --repeat must be positive",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.connections < args.threads:
        print("bench: wrk needs at least one connection per thread", file=sys.stderr)
        return EXIT_USAGE

    options = WrkOptions(args.threads, args.connections, args.duration)
    meta = _meta(options, args.warmup)
    meta["rounds"] = args.repeat
    split = reserve_proxy_cpu() if args.pin is not False else None
    if args.pin and split is None:
        print("bench: --pin needs at least two CPUs", file=sys.stderr)
        return EXIT_USAGE
    proxy_cpu: int | None = None
    if split is not None:
        # This process, and so everything started from here, is off the proxy's
        # CPU already; each scenario's own processes are moved onto it once
        # started (measure()).
        proxy_cpu, others = split
        meta["pinning"] = {"proxy_cpu": proxy_cpu, "other_cpus": sorted(others)}
        print(f"bench: proxy under test on CPU {proxy_cpu}, the rest on {sorted(others)}")
    seed = args.shuffle_seed if args.shuffle_seed is not None else random.randrange(2**32)
    if args.repeat > 1:
        meta["shuffle_seed"] = seed
        print(f"bench: rounds after the first in shuffled order (--shuffle-seed {seed})")
    run = BenchRun("bench", args.workdir)
    outcomes: list[Outcome] = []
    with run.interruptible(), BenchContext(run.workdir) as ctx:
        try:
            ctx.upstream_port = start_upstream(ctx)
        except Exception as exc:
            run.fatal = f"upstream nginx did not start: {exc}"
        else:
            rounds: list[list[Outcome]] = []
            orders = round_orders(scenarios, args.repeat, seed)
            for r, order in enumerate(orders):
                rounds.append([])
                for i, sc in enumerate(order, 1):
                    progress = f"[{i}/{len(scenarios)}]"
                    if args.repeat > 1:
                        progress = f"[round {r + 1}/{args.repeat}] {progress}"
                    rounds[-1].append(measure(ctx, sc, options, args.warmup, progress, proxy_cpu))
                    time.sleep(0.5)  # let the stopped processes' CPU settle
                outcomes = combine_rounds(rounds)
        print("bench: stopping processes", flush=True)

    if run.fatal:
        print(f"bench: {run.fatal}", file=sys.stderr)
    if outcomes:
        meta["machine"]["loadavg_at_end"] = list(os.getloadavg())
        meta["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        meta["interrupted"] = run.interrupted
        print()
        print(format_table(outcomes, BASELINE))
        print(
            "\n(wrk -t{} -c{} -d{:g}s{}; shared machine, load average at start {:.2f})".format(
                options.threads,
                options.connections,
                options.duration,
                f", median of {args.repeat} interleaved rounds" if args.repeat > 1 else "",
                meta["machine"]["loadavg_at_start"][0],
            )
        )
        costs = format_costs(outcomes)
        if costs:
            print(f"\n{costs}")
        write_json(args.json_out, results_document(outcomes, BASELINE, meta))
        print(f"results: {args.json_out}")

    return run.finish(flagged=any(o.flagged for o in outcomes))


if __name__ == "__main__":
    sys.exit(main())
