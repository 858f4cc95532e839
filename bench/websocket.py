"""WebSocket echo round trips straight to the upstream, through nginx, HAProxy and the
meshgate edge, side by side in one run.

    .venv/bin/python -m bench.websocket [--connections 64] [--duration 10] [--size 64]
                                        [--warmup 2] [--targets direct,nginx,haproxy,edge]

One WebSocket echo server (:mod:`bench.ws_echo`: one Python process on uvloop) is
this run's upstream (``ctx.upstream_port``). Then, for each target in turn, the
bench starts the target's own processes, runs the load client
(:mod:`bench.ws_load`, a process of its own) against it and stops them:

* ``direct``: the client talks to the echo server itself, no proxy: the ceiling of
  the harness;
* ``nginx``: nginx, one worker, ``proxy_pass`` with ``proxy_http_version 1.1``,
  the client's ``Upgrade`` passed on, ``Connection: upgrade``, one-hour read timeout;
* ``haproxy``: HAProxy in http mode (``nbthread 1``, the bench's config) with
  ``timeout tunnel 1h``;
* ``edge``: the meshgate edge as ``bench.scenarios``' ``edge`` starts it, with
  Consul: route ``/`` to ``bench-upstream``, an instance registered in Consul
  with no check, at the echo server's port; once the echo server answers 101
  the edge joins the two connections byte for byte (``mesh/tunnel.py``).

The client opens ``--connections`` WebSocket connections at once; each then
loops: one masked text frame of ``--size`` bytes, wait for its echo, check it is
the text sent, next. Round trips whose echo comes in the ``--duration`` seconds
after ``--warmup`` seconds are recorded. Every target gets the same client, the
same echo server and the same settings.

Reading the table:

* **msgs/s** is round trips completed in the window ÷ its length: with one
  message in flight per connection, it is ``connections`` ÷ the mean round trip.
  **vs nginx** and **vs haproxy** divide it by those targets' msgs/s *of the same
  run* (``-`` when that target did not run cleanly): absolute figures move with
  whatever else the machine is doing, ratios much less.
* **p50/p99** are round-trip times (client send to echo received), ms; the JSON
  has p90 and the max too.
* **errors** adds up connections that could not connect or complete the handshake,
  closed before the end of the window, or sent bytes that were no frame; echoes
  that differ from what was sent (per message); and messages unanswered 5 s after
  the window. A target with any error (or that failed to start) is marked ``!``,
  with the breakdown under the table, and the command exits 1: its msgs/s is not
  comparable.
* **CPU µs/msg** is user + system CPU time of the target's own processes (nginx,
  HAProxy, the edge; not the client, the echo server or Consul) over the window,
  per round trip (``bench/cpu.py``); none for ``direct``. The JSON also has the
  echo server's and the client's.
* **harness** is the CPU time the client and the echo server used over the
  window, in cores (100 % = one core busy): near the number of CPUs they may use
  (one, pinned on a 2-core machine), they were the limit, not the target; the
  target's msgs/s is then a lower bound of what it can do, and its CPU µs/msg is
  the better comparison.

Pinning (``--pin``, on with 2+ CPUs, as in ``bench.run``): the proxy under test
runs alone on the first CPU; the bench, and so everything it starts (the client,
the echo server, Consul), on the others. On a 2-core machine the client and the
echo server, both Python, share one core in every target, ``direct`` included:
a proxy that kept up with them would reach ``direct``'s msgs/s, and ``direct``
is the most this harness can show, not what the echo server could do alone.
With ``--no-pin`` every process floats on every CPU.

Results go to ``bench/results/websocket.json`` (git-ignored). Exit status: 0 when
every target ran clean, 1 when one failed or had errors, 2 on bad usage, 130 when
interrupted. Every process started is stopped at the end, also on failure, Ctrl-C
or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python bench/websocket.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BenchContext
from bench.cpu import pin_tree, reserve_proxy_cpu, tree_cpu_seconds
from bench.proxies import start_haproxy, start_nginx_ws_proxy
from bench.scenarios import EdgeScenario, Scenario, Target, scenario
from bench.session import EXIT_USAGE, BenchRun
from bench.ws_load import RESULT_PREFIX
from demo.processes import PROJECT_ROOT, ManagedProcess, free_port

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "websocket.json"
HAPROXY_TUNNEL_TIMEOUT = "1h"
CLIENT_GRACE_SECONDS = 60.0
"""How long past its warm-up and window the client may take (connecting, closing)
before the bench kills it."""


@scenario("direct", "the client straight to the echo server, no proxy: the harness's ceiling")
def direct(ctx: BenchContext) -> Target:
    return Target(f"http://127.0.0.1:{ctx.upstream_port}/")


@scenario("nginx", "nginx (1 worker) proxying the upgrade: Upgrade/Connection set, HTTP/1.1")
def nginx_ws(ctx: BenchContext) -> Target:
    return Target(f"{start_nginx_ws_proxy(ctx)}/")


@scenario("haproxy", f"HAProxy (nbthread 1, http mode), timeout tunnel {HAPROXY_TUNNEL_TIMEOUT}")
def haproxy_ws(ctx: BenchContext) -> Target:
    return Target(f"{start_haproxy(ctx, tunnel_timeout=HAPROXY_TUNNEL_TIMEOUT)}/")


EDGE = EdgeScenario(
    "edge",
    description="meshgate edge → echo server (bench-upstream in Consul at the echo "
    "server's port), tunnelled once it answers 101",
)

TARGETS: tuple[Scenario, ...] = (direct, nginx_ws, haproxy_ws, EDGE)
BASELINES = ("nginx", "haproxy")
"""The ``vs`` columns: msgs/s over these targets' msgs/s in the same run."""


def start_echo(ctx: BenchContext) -> ManagedProcess:
    """The WebSocket echo server, in the run's shared scope, once it serves; its port
    becomes ``ctx.upstream_port`` (what every target proxies to)."""
    port = free_port()
    proc = ctx.spawn("ws-echo", [ctx.python, "-m", "bench.ws_echo", "--port", str(port)])
    ctx.wait_serving(f"http://127.0.0.1:{port}/", [proc], timeout=15)
    ctx.upstream_port = port
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def run_client(
    ctx: BenchContext,
    name: str,
    url: str,
    args: argparse.Namespace,
    upstream_pid: int,
) -> dict[str, Any]:
    """Run :mod:`bench.ws_load` against ``url``; return its result document with the CPU
    seconds the current scope's processes (``proxy_cpu_s``, None without any) and the
    echo server (``upstream_cpu_s``) spent in its window.

    The client runs in its own session (Ctrl-C reaches the bench, which stops it),
    with stderr in ``<workdir>/ws_load-<name>.log``; it is killed after its warm-up,
    window and :data:`CLIENT_GRACE_SECONDS`. Raises RuntimeError when it gives no result.
    """
    argv = [
        ctx.python,
        "-m",
        "bench.ws_load",
        url,
        "--connections",
        str(args.connections),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--size",
        str(args.size),
    ]
    log_path = ctx.path(f"ws_load-{name}.log")
    proxy_pids = ctx.scope_pids
    samples: dict[str, tuple[float, float]] = {}
    result: dict[str, Any] | None = None

    def sample() -> tuple[float, float]:
        return tree_cpu_seconds(proxy_pids), tree_cpu_seconds([upstream_pid])

    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    ctx.on_close(lambda: _stop(proc))
    watchdog = threading.Timer(args.warmup + args.duration + CLIENT_GRACE_SECONDS, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ws_load: measuring"):
                samples["start"] = sample()
            elif line.startswith("ws_load: done"):
                samples["end"] = sample()
            elif line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
            elif line.startswith("ws_load: "):
                print(f"  {name}: {line[len('ws_load: ') :].rstrip()}", flush=True)
        proc.wait()
    finally:
        watchdog.cancel()
        _stop(proc)
    if result is None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ws_load exited {proc.returncode} without a result\n{tail}")
    if "start" in samples and "end" in samples:
        (p0, u0), (p1, u1) = samples["start"], samples["end"]
        result["proxy_cpu_s"] = round(p1 - p0, 4) if proxy_pids else None
        result["upstream_cpu_s"] = round(u1 - u0, 4)
    return result


def measure(
    ctx: BenchContext,
    target: Scenario,
    args: argparse.Namespace,
    echo: ManagedProcess,
    proxy_cpu: int | None,
    progress: str,
) -> dict[str, Any]:
    """Start ``target``, load it, stop it; its row (``failure`` set if it did not run)."""
    row: dict[str, Any] = {"name": target.name, "description": target.description}
    print(f"{progress} {target.name}: starting", flush=True)
    with ctx.scenario_scope():
        try:
            started = target.start(ctx)
            if proxy_cpu is not None and ctx.scope_pids:
                pin_tree(ctx.scope_pids, {proxy_cpu})
            row["url"] = started.url
            print(
                f"{progress} {target.name}: {args.connections} connections, "
                f"warm-up {args.warmup:g} s, measuring {args.duration:g} s",
                flush=True,
            )
            row.update(run_client(ctx, target.name, started.url, args, echo.pid))
        except Exception as exc:  # one broken target must not lose the others' numbers
            row["failure"] = f"{type(exc).__name__}: {exc}"
            print(f"{progress} {target.name}: FAILED\n{row['failure']}", file=sys.stderr)
            return row
    messages = row["messages"]
    for key, out in (
        ("proxy_cpu_s", "cpu_us_per_message"),
        ("upstream_cpu_s", "upstream_cpu_us_per_message"),
    ):
        seconds = row.get(key)
        row[out] = round(seconds * 1e6 / messages, 2) if seconds is not None and messages else None
    upstream_cpu = row.get("upstream_cpu_s")
    row["harness_cores"] = (
        round((row["client_cpu_s"] + upstream_cpu) / args.duration, 3)
        if upstream_cpu is not None
        else None
    )
    errors = f", {row['errors']} ERRORS" if row["errors"] else ""
    print(
        f"{progress} {target.name}: {row['messages_per_sec']:,.0f} msgs/s, "
        f"p99 {_ms(row['latency_ms']['p99'])} ms{errors}",
        flush=True,
    )
    return row


def flagged(row: dict[str, Any]) -> bool:
    """A row whose msgs/s is not comparable: it failed, had errors or completed nothing."""
    return "failure" in row or bool(row["errors"]) or not row["messages"]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Set ``ratio_to_<baseline>`` on every clean row (None where not comparable)."""
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        for baseline in BASELINES:
            base = by_name.get(baseline)
            ok = not flagged(row) and base is not None and not flagged(base)
            row[f"ratio_to_{baseline}"] = (
                row["messages_per_sec"] / base["messages_per_sec"] if ok and base else None
            )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results table, with the reason under it for every flagged row."""
    lines = [
        f"{'target':<9} {'msgs/s':>9} {'vs nginx':>9} {'vs haproxy':>10} {'p50 ms':>8}"
        f" {'p99 ms':>8} {'errors':>6} {'CPU µs/msg':>10} {'harness':>7}",
        f"{'-' * 9} {'-' * 9} {'-' * 9} {'-' * 10} {'-' * 8} {'-' * 8} {'-' * 6} {'-' * 10}"
        f" {'-' * 7}",
    ]
    notes = []
    for row in rows:
        mark = "!" if flagged(row) else " "
        if "failure" in row:
            lines.append(f"{row['name']:<8}{mark} {'failed':>9}")
            notes.append(f"! {row['name']}: {row['failure'].splitlines()[0]}")
            continue
        latency = row["latency_ms"]
        cpu = row.get("cpu_us_per_message")
        harness = row.get("harness_cores")
        lines.append(
            f"{row['name']:<8}{mark} {row['messages_per_sec']:>9,.0f}"
            f" {_ratio(row['ratio_to_nginx']):>9} {_ratio(row['ratio_to_haproxy']):>10}"
            f" {_ms(latency['p50']):>8} {_ms(latency['p99']):>8} {row['errors']:>6}"
            f" {'-' if cpu is None else f'{cpu:.1f}':>10}"
            f" {'-' if harness is None else f'{harness:.0%}':>7}"
        )
        if row["errors"]:
            kinds = ", ".join(f"{k} {v}" for k, v in row["error_kinds"].items() if v)
            notes.append(f"! {row['name']}: {kinds}")
        elif not row["messages"]:
            notes.append(f"! {row['name']}: no round trip completed")
    return "\n".join([*lines, "", *notes] if notes else lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.websocket",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=64, help="WebSocket connections (64)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds recorded (10)")
    parser.add_argument("--size", type=int, default=64, help="bytes of text per message (64)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of load before recording (2)"
    )
    parser.add_argument(
        "--targets",
        default=",".join(t.name for t in TARGETS),
        help="comma-separated, run in this order, of: " + ", ".join(t.name for t in TARGETS),
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the proxy under test alone on one CPU, and the client, the echo server "
        "and Consul on the others (default: on with 2 or more CPUs)",
    )
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON, help=f"({DEFAULT_JSON})")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="configs and logs (default: a temporary directory, removed after a clean run)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    by_name = {t.name: t for t in TARGETS}
    chosen = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in by_name]
    if unknown or not chosen:
        print(f"websocket: unknown target(s): {', '.join(unknown) or '(none)'}", file=sys.stderr)
        return EXIT_USAGE
    if args.connections < 1 or args.duration <= 0 or args.warmup < 0 or args.size < 1:
        print(
            "websocket: --connections, --duration and --size must be positive, --warmup >= 0",
            file=sys.stderr,
        )
        return EXIT_USAGE
    split = reserve_proxy_cpu() if args.pin is not False else None
    if args.pin and split is None:
        print("websocket: --pin needs at least two CPUs", file=sys.stderr)
        return EXIT_USAGE
    proxy_cpu: int | None = None
    meta: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "connections": args.connections,
        "size": args.size,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg())},
        "baselines": list(BASELINES),
    }
    if split is not None:
        proxy_cpu, others = split
        meta["pinning"] = {"proxy_cpu": proxy_cpu, "other_cpus": sorted(others)}
        print(f"websocket: proxy under test on CPU {proxy_cpu}, the rest on {sorted(others)}")
    run = BenchRun("websocket", args.workdir)
    rows: list[dict[str, Any]] = []
    with run.interruptible(), BenchContext(run.workdir) as ctx:
        try:
            echo = start_echo(ctx)
        except Exception as exc:
            run.fatal = f"the echo server did not start: {exc}"
        else:
            for i, name in enumerate(chosen, 1):
                progress = f"[{i}/{len(chosen)}]"
                rows.append(measure(ctx, by_name[name], args, echo, proxy_cpu, progress))
                time.sleep(0.5)  # let the stopped processes' CPU settle
        print("websocket: stopping processes", flush=True)

    if run.fatal:
        print(f"websocket: {run.fatal}", file=sys.stderr)
    if rows:
        add_ratios(rows)
        meta["machine"]["loadavg_at_end"] = list(os.getloadavg())
        meta["interrupted"] = run.interrupted
        print()
        print(format_table(rows))
        print(
            f"\n({args.connections} connections, {args.size}-byte text frames, one in flight "
            f"per connection; {args.duration:g} s after {args.warmup:g} s of warm-up; shared "
            f"machine, load average at start {meta['machine']['loadavg_at_start'][0]:.2f})"
        )
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({**meta, "targets": rows}, indent=1))
        print(f"results: {args.json_out}")

    return run.finish(flagged=any(flagged(r) for r in rows))


if __name__ == "__main__":
    sys.exit(main())
