"""Instructions the edge executes per request, counted by callgrind: costs without the noise.

    .venv/bin/python -m bench.instructions [--seconds 12] [--connections 64]
                                          edge+notrace edge+trace10 ...

The wrk bench (:mod:`bench.run`) measures what users see, req/s and latency,
but on a shared 2-core machine a scenario's figures move by ±15 % from run to
run, more than most single features cost. This tool answers the narrower
question "how much work does feature X add to a request" exactly: each
scenario's edge runs under ``valgrind --tool=callgrind`` with instrumentation
off; after a warm-up, instrumentation is switched on for ``--seconds`` of wrk
load and the instructions executed (Ir, every thread of the edge, user space
only) are divided by the requests wrk completed. The same build gives the
same count within about 1 %, whatever else the machine is doing.

What it does not see: system calls (time in the kernel), cache misses
(unless ``--cache-sim``, which simulates them), branch mispredictions (unless
``--branch-sim``) and the GIL's waits, so a
feature's share of instructions is a floor, not its share of wall-clock
throughput. The edge runs 50-100x slower under valgrind,
so batching that depends on timing (rate-limit checks coalesced per loop turn,
span batches) can differ from the real thing; compare scenarios with each
other, not with native figures.

Needs ``valgrind`` (``apt-get install valgrind``) as well as what the wrk
bench needs. Scenarios are those of ``python -m bench.run --list``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as ``python bench/instructions.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BenchContext
from bench.proxies import start_upstream
from bench.scenarios import report_unknown, warmed_proxy
from bench.wrk import WrkOptions

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "instructions.json"
SETTLE_SECONDS = 7.0
"""Longer than the batch span processor's export delay (5 s, the SDK's default)."""
STARTUP_SLOWDOWN = 12.0
"""Start-up waits are this much longer: imports under valgrind take a while."""
RUNTIME_SLOWDOWN = 100.0
"""The edge runs up to this much slower under callgrind (see BenchContext.runtime_slowdown)."""


L1_MISSES = ("I1mr", "D1mr", "D1mw")
LL_MISSES = ("ILmr", "DLmr", "DLmw")
MISPREDICTS = ("Bcm", "Bim")
"""Conditional and indirect branches mispredicted (``--branch-sim``)."""


def callgrind_counts(text: str) -> dict[str, int]:
    """Every event total of one callgrind output file, by event name (``Ir``, ``D1mr``, ...).

    The names come from the file's ``events:`` line, the totals from its
    ``totals:`` (or ``summary:``) line, in the same order.
    """
    events: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("totals:", "summary:")):
            if not events:
                raise ValueError("a totals: line before any events: line in the callgrind output")
            values = [int(v) for v in line.split()[1:]]
            # Trailing zero events may be left out of the line.
            return dict(zip(events, values + [0] * (len(events) - len(values)), strict=True))
    raise ValueError("no totals: or summary: line in the callgrind output")


def callgrind_total(text: str) -> int:
    """The instruction total (``Ir``) of one callgrind output file."""
    return callgrind_counts(text)["Ir"]


def events_total(counts: dict[str, float], events: tuple[str, ...]) -> float:
    """The sum of ``events`` in ``counts``; an event not simulated (missing) counts 0."""
    return sum(counts.get(e, 0) for e in events)


def cycle_estimate(counts: dict[str, float]) -> float:
    """KCachegrind's cycle estimate: Ir + 10 per mispredicted branch + 10 per first-level
    miss + 100 per last-level miss.

    A model, not a measurement: it weighs the simulated cache misses and
    branch mispredictions (which instruction counts ignore) so that a
    feature which touches much memory, or takes branches the predictor has
    not learnt, shows its cost. Events missing from ``counts`` (no
    ``--cache-sim`` or no ``--branch-sim``) count 0.
    """
    l1 = events_total(counts, L1_MISSES)
    ll = events_total(counts, LL_MISSES)
    mispredicts = events_total(counts, MISPREDICTS)
    return counts["Ir"] + 10 * mispredicts + 10 * l1 + 100 * ll


def private_cache_option(cpu_cache: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> list[str]:
    """Callgrind's ``--LL`` set to this machine's per-core level-2 cache, if sysfs tells it.

    Callgrind simulates two levels and by default takes the last level from
    the host: here a 32 MiB L3 shared with wrk, Redis, the upstream and, on a
    virtual machine, other tenants. The edge has only its core's L2 to
    itself, so simulating that as the last level is the fairer model of what
    a growing working set costs it. ``[]`` (callgrind's default) when sysfs
    has no unified level-2 cache.
    """
    for index in sorted(cpu_cache.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
            ways = int((index / "ways_of_associativity").read_text())
            line = int((index / "coherency_line_size").read_text())
        except (OSError, ValueError):
            continue
        if level == "2" and kind == "Unified" and size.endswith("K"):
            return [f"--LL={int(size[:-1]) * 1024},{ways},{line}"]
    return []


def _dump(pid: int, out_dir: Path, seen: set[str], keep: Path | None = None) -> Counter[str]:
    """Dump the edge's counters (which zeroes them) and return the event totals dumped;
    with ``keep``, the files dumped are copied into that directory too."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    time.sleep(1.0)  # the dump is written by the edge's own thread
    new = sorted(set(glob.glob(f"{out_dir}/cg.{pid}.out.*")) - seen)
    seen.update(new)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    total: Counter[str] = Counter()
    for f in new:
        total.update(callgrind_counts(Path(f).read_text()))
        if keep is not None:
            shutil.copy(f, keep)
    return total


def measure(
    ctx: BenchContext,
    name: str,
    seconds: float,
    connections: int,
    warmup: float = 5.0,
    idle_seconds: float = 6.0,
    settle_seconds: float = SETTLE_SECONDS,
    cache_sim: bool = False,
    branch_sim: bool = False,
    keep: Path | None = None,
) -> dict[str, object]:
    """Start scenario ``name`` with its edge under callgrind; count one measured window.

    Before the loaded window, an idle one (no requests, ``idle_seconds``)
    counts what the edge does anyway: Consul health checks and blocking
    queries, Redis probes, metric refreshes. Their rate times the loaded
    window's length is subtracted, so that background work is not charged to
    requests (under valgrind it is a large share: few requests fit in a
    window). ``idle_seconds`` 0 skips it.

    Work that requests cause later belongs to them, not to the background:
    the batch span processor exports a request's spans up to 5 s after it.
    So the idle window starts ``settle_seconds`` after the warm-up (the
    warm-up's spans are exported before it, not in it), and the loaded
    window is counted until ``settle_seconds`` after wrk stops (its own
    spans' exports are in it; the extra seconds' background is subtracted
    like the rest).

    With ``cache_sim``, callgrind also simulates the caches (the last level
    being the core's private L2, :func:`private_cache_option`), and the row
    gains first-level and last-level misses per request and the cycle
    estimate (:func:`cycle_estimate`), background subtracted the same way.
    With ``branch_sim``, it simulates branch prediction: the row gains
    mispredicted branches per request, and the cycle estimate weighs them.
    With ``keep``, the loaded window's callgrind files are copied into
    ``keep/<name>/`` (for ``callgrind_annotate``: where the instructions went).
    """
    out_dir = ctx.path("callgrind")
    out_dir.mkdir(exist_ok=True)
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir}/cg.%p.out",
        *(["--cache-sim=yes", *private_cache_option()] if cache_sim else []),
        *(["--branch-sim=yes"] if branch_sim else []),
    ]
    seen: set[str] = set()
    idle: Counter[str] = Counter()
    idle_elapsed = 1.0
    with warmed_proxy(ctx, name, valgrind, connections, warmup) as (target, pid):
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)
        time.sleep(settle_seconds)  # the warm-up's deferred work (span exports) is done
        if idle_seconds > 0:
            _dump(pid, out_dir, seen)  # start the idle window from zero
            started = time.monotonic()
            time.sleep(idle_seconds)
            idle = _dump(pid, out_dir, seen)
            idle_elapsed = time.monotonic() - started
        started = time.monotonic()
        window = WrkOptions(1, connections, seconds, timeout=10.0)
        result, _ = target.wrk(window)
        time.sleep(settle_seconds)  # ... and the window's own is in its count
        loaded = _dump(pid, out_dir, seen, keep / name if keep is not None else None)
        elapsed = time.monotonic() - started
    requests = max(result.requests, 1)
    scale = elapsed / idle_elapsed
    per_request = {e: (loaded[e] - idle[e] * scale) / requests for e in loaded}
    row: dict[str, object] = {
        "name": name,
        "requests": result.requests,
        "errors": result.error_count,
        "instructions_per_request": per_request["Ir"],
        "background_per_request": idle["Ir"] * scale / requests,
    }
    if cache_sim:
        row["l1_misses_per_request"] = events_total(per_request, L1_MISSES)
        row["ll_misses_per_request"] = events_total(per_request, LL_MISSES)
    if branch_sim:
        row["mispredicts_per_request"] = events_total(per_request, MISPREDICTS)
    if cache_sim or branch_sim:
        row["cycle_estimate_per_request"] = cycle_estimate(per_request)
    return row


MODEL_COLUMNS = (
    ("l1_misses_per_request", "L1 miss/req"),
    ("ll_misses_per_request", "LL miss/req"),
    ("mispredicts_per_request", "mispred/req"),
)
"""The simulated events' columns, each shown when the rows have it."""


def _print_model_table(rows: list[dict[str, object]], baseline: str) -> None:
    """The ``--cache-sim``/``--branch-sim`` columns: misses and mispredictions per request,
    and the cycle estimate with its ratio to ``baseline``."""
    base = float(str(rows[0]["cycle_estimate_per_request"]))
    columns = [(key, title) for key, title in MODEL_COLUMNS if key in rows[0]]
    titles = "".join(f" {title:>11}" for _, title in columns)
    print(f"\n{'scenario':24}{titles} {'cycles(est)/req':>15}  vs {baseline}")
    for row in rows:
        est = float(str(row["cycle_estimate_per_request"]))
        row[f"cycle_ratio_to_{baseline}"] = est / base
        values = "".join(f" {float(str(row[key])):>11,.0f}" for key, _ in columns)
        print(f"{row['name']!s:24}{values} {est:>15,.0f} {est / base:>7.3f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="+", help="edge or sidecar-outbound scenarios; the first is the baseline"
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="measured window (12)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before counting (5)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=6.0,
        help="idle window whose background rate is subtracted (6; 0: none)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=SETTLE_SECONDS,
        help="wait after the warm-up and after the window, so that deferred work "
        f"(span exports) is charged to the requests that caused it ({SETTLE_SECONDS:g})",
    )
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also simulate the caches: misses per request and the cycle estimate (~2x slower)",
    )
    parser.add_argument(
        "--branch-sim",
        action="store_true",
        help="also simulate branch prediction: mispredictions per request, weighed in the "
        "cycle estimate",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="copy each scenario's callgrind files of the measured window into DIR/<scenario>/ "
        "(for callgrind_annotate)",
    )
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if report_unknown(args.scenarios):
        return 2
    missing = [b for b in ("valgrind", "callgrind_control", "wrk") if shutil.which(b) is None]
    if missing:
        print(f"bench: {', '.join(missing)} not found", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-instructions-"))
    with BenchContext(workdir) as ctx:
        ctx.timeout_scale = STARTUP_SLOWDOWN
        ctx.runtime_slowdown = RUNTIME_SLOWDOWN
        ctx.upstream_port = start_upstream(ctx)
        for name in args.scenarios:
            print(f"{name}: measuring under callgrind", flush=True)
            rows.append(
                measure(
                    ctx,
                    name,
                    args.seconds,
                    args.connections,
                    args.warmup,
                    args.idle_seconds,
                    args.settle_seconds,
                    args.cache_sim,
                    args.branch_sim,
                    args.keep,
                )
            )
    baseline = args.scenarios[0]
    base = float(str(rows[0]["instructions_per_request"]))
    print(
        f"\n{'scenario':24} {'requests':>8} {'Ir/request':>11}  vs {baseline}"
        "   (background subtracted)"
    )
    for row in rows:
        ir = float(str(row["instructions_per_request"]))
        row[f"ratio_to_{baseline}"] = ir / base
        flag = f"  ({row['errors']} errors)" if row["errors"] else ""
        bg = float(str(row["background_per_request"]))
        print(
            f"{row['name']!s:24} {row['requests']!s:>8} {ir:>11,.0f} {ir / base:>7.3f}x"
            f"   ({bg:,.0f}){flag}"
        )
    if args.cache_sim or args.branch_sim:
        _print_model_table(rows, baseline)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"scenarios": rows, "seconds": args.seconds}, indent=2))
    print(f"results: {args.json_out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # The edge inherits it: fixed str hashing makes its dict and set layouts, and so
    # its instruction counts, the same from run to run.
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
