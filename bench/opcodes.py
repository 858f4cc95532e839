"""Bytecodes per request, by Python function: where the edge's interpreter time goes.

    .venv/bin/python -m bench.opcodes [--seconds 6] [--top 25] edge+notrace edge+trace0 ...

:mod:`bench.instructions` counts machine instructions exactly, but callgrind
sees the interpreter, not the Python functions it runs: most of a feature's
cost shows up as ``_PyEval_EvalFrameDefault``. This tool answers "which
Python functions, and how many bytecodes each, per request": each scenario's
edge starts with :mod:`bench.opcode_probe` on its ``PYTHONPATH``; after a
warm-up, the probe counts every bytecode the event loop's thread runs
(``sys.settrace`` with per-opcode events) while wrk loads the edge for
``--seconds``, and the counts are divided by the requests wrk completed.
The first scenario is the baseline: for each other one the functions whose
bytecodes per request changed most are listed.

A bytecode is not a unit of time (a call or an attribute miss costs far more
than a load), and tracing slows the edge down 10-20 times, so this says
where work is, not what it costs; pair it with ``bench.instructions`` and
``bench.ab``. It counts the event loop's thread only (not the span export
thread) and includes the little background work (health checks, Consul
watches) the window holds. "Entries" count calls and a coroutine's or
generator's resumptions alike.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as ``python bench/opcodes.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BenchContext
from bench.proxies import start_upstream
from bench.scenarios import report_unknown, warmed_proxy
from bench.wrk import WrkOptions

PROBE_DIR = Path(__file__).resolve().parent / "opcode_probe"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "opcodes.json"
SLOWDOWN = 20.0
"""The edge runs up to this much slower while traced (see BenchContext.runtime_slowdown)."""

Counts = dict[str, tuple[float, float]]
"""``"qualname  file:line"`` → (bytecodes, entries), per request or in total."""


def short_path(path: str) -> str:
    """``path`` from the project root or from ``site-packages/`` on, else as it is."""
    marker = "site-packages/"
    if marker in path:
        return path[path.index(marker) + len(marker) :]
    root = f"{Path(__file__).resolve().parent.parent}/"
    return path[len(root) :] if path.startswith(root) else path


def parse_counts(text: str) -> Counts:
    """The probe's file (see :mod:`bench.opcode_probe.sitecustomize`) as :data:`Counts`;
    code objects with the same name and place (a function defined again) are summed."""
    counts: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        bytecodes, entries, name, where = line.split("\t")
        file, _, first = where.rpartition(":")
        key = f"{name}  {short_path(file)}:{first}"
        old = counts.get(key, (0.0, 0.0))
        counts[key] = (old[0] + int(bytecodes), old[1] + int(entries))
    return counts


def per_request(counts: Counts, requests: int) -> Counts:
    n = max(requests, 1)
    return {key: (b / n, e / n) for key, (b, e) in counts.items()}


def total(counts: Counts) -> float:
    return sum(b for b, _ in counts.values())


def changes(base: Counts, other: Counts, top: int) -> list[tuple[str, float, float]]:
    """The ``top`` functions whose bytecodes differ most (either way) from ``base`` to
    ``other``: (key, change, ``other``'s bytecodes)."""
    keys = set(base) | set(other)
    rows = [(k, other.get(k, (0.0, 0.0))[0] - base.get(k, (0.0, 0.0))[0]) for k in keys]
    rows.sort(key=lambda r: abs(r[1]), reverse=True)
    return [(k, d, other.get(k, (0.0, 0.0))[0]) for k, d in rows[:top] if d]


def measure(
    ctx: BenchContext, name: str, seconds: float, connections: int, warmup: float
) -> dict[str, object]:
    """Start scenario ``name`` with the probe in its edge; count one loaded window."""
    out_dir = ctx.path(f"opcodes-{name}")
    out_dir.mkdir(exist_ok=True)
    path = os.pathsep.join(p for p in (str(PROBE_DIR), os.environ.get("PYTHONPATH")) if p)
    probe = ["env", f"PYTHONPATH={path}", f"MESHGATE_OPCODE_PROBE={out_dir}"]
    with warmed_proxy(ctx, name, probe, connections, warmup) as (target, pid):
        os.kill(pid, signal.SIGUSR1)
        window = WrkOptions(1, connections, seconds, timeout=10.0)
        result, _ = target.wrk(window)
        os.kill(pid, signal.SIGUSR2)
        done = out_dir / f"opcodes-{pid}.tsv"
        ctx.wait_for(done.exists, "the probe's counts", timeout=30.0)
        counts = per_request(parse_counts(done.read_text()), result.requests)
    return {
        "name": name,
        "requests": result.requests,
        "errors": result.error_count,
        "bytecodes_per_request": total(counts),
        "functions": {k: {"bytecodes": b, "entries": e} for k, (b, e) in counts.items()},
    }


def _counts(row: dict[str, object]) -> Counts:
    functions = row["functions"]
    assert isinstance(functions, dict)
    return {k: (v["bytecodes"], v["entries"]) for k, v in functions.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.opcodes", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="+", help="edge or sidecar-outbound scenarios; the first is the baseline"
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="counted window (6)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (16)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load first (5)")
    parser.add_argument("--top", type=int, default=25, help="functions listed (25)")
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if report_unknown(args.scenarios):
        return 2
    rows: list[dict[str, object]] = []
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-opcodes-"))
    with BenchContext(workdir) as ctx:
        ctx.runtime_slowdown = SLOWDOWN
        ctx.upstream_port = start_upstream(ctx)
        for name in args.scenarios:
            print(f"{name}: counting bytecodes", flush=True)
            rows.append(measure(ctx, name, args.seconds, args.connections, args.warmup))
    base = rows[0]
    base_total = float(str(base["bytecodes_per_request"]))
    print(f"\n{'scenario':24} {'requests':>8} {'bytecodes/request':>18}  vs {base['name']}")
    for row in rows:
        n = float(str(row["bytecodes_per_request"]))
        errors = f"  ({row['errors']} errors)" if row["errors"] else ""
        print(
            f"{row['name']!s:24} {row['requests']!s:>8} {n:>18,.0f} {n - base_total:>+9,.0f}"
            f"{errors}"
        )
    if len(rows) == 1:
        print(f"\n{base['name']}: the {args.top} functions with the most bytecodes a request")
        listed = sorted(_counts(base).items(), key=lambda kv: kv[1][0], reverse=True)
        for key, (b, e) in listed[: args.top]:
            print(f"{b:>9.1f}  entries {e:5.2f}  {key}")
    for row in rows[1:]:
        print(f"\n{row['name']} against {base['name']}: bytecodes a request, the largest changes")
        for key, change, now in changes(_counts(base), _counts(row), args.top):
            print(f"{change:>+9.1f}  (now {now:7.1f})  {key}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"scenarios": rows, "seconds": args.seconds}, indent=1))
    print(f"results: {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
