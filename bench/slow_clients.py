"""Slow clients: what a slowloris attack holds, and what legitimate traffic gets meanwhile.

    .venv/bin/python -m bench.slow_clients [--slow 2000] [--hold 75] [--duration 5]

For each target (nginx and HAProxy proxying the upstream with the bench's
configurations, the meshgate edge with its defaults, and the edge with
``listen.max_connections_per_address``), in one run:

1. wrk loads it for ``--duration`` seconds from 127.0.0.1: req/s and p99
   with no attack;
2. ``--slow`` connections from another address, 127.0.0.2, each send a
   request line and one header, then one more header line every 5 s, never
   ending the head: the slowloris attack, as ``slowhttptest -H`` makes it;
3. wrk loads the target again while those are held: req/s, p99 and errors
   under attack;
4. the attacker goes on trickling until ``--hold`` seconds have passed since
   its connections opened, and how many the target still holds is sampled
   every second: the table gives the count after 10 s and when the last one
   was closed (or that some were still open at the end).

A connection the target closes within half a second of opening is counted as
refused. This is not a timed test: it says what each target does with such
clients, measured in the same run. Results go to ``bench/results/slow_clients.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as ``python bench/slow_clients.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import BenchContext
from bench.proxies import start_upstream
from bench.scenarios import SCENARIOS, EdgeScenario, Scenario, Target
from bench.wrk import WrkOptions, WrkResult

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "slow_clients.json"
ATTACKER_ADDRESS = "127.0.0.2"
"""The slow connections' source: another address than wrk's (all of 127/8 is loopback)."""
TRICKLE_EVERY = 5.0
REFUSED_WITHIN = 0.5

PER_ADDRESS_LIMIT = 256
PER_ADDRESS_TARGET = f"edge per-address {PER_ADDRESS_LIMIT}"
TARGETS: tuple[Scenario, ...] = (
    SCENARIOS["nginx"],
    SCENARIOS["haproxy"],
    SCENARIOS["edge"],
    EdgeScenario(
        PER_ADDRESS_TARGET,
        extra_config={"listen": {"max_connections_per_address": PER_ADDRESS_LIMIT}},
        description="the edge with max_connections_per_address",
    ),
)


@dataclass
class SlowConnection:
    opened: float
    closed: float | None = None


@dataclass
class Slowloris:
    """``count`` slow connections to ``port``, kept on an event loop in a thread of their own."""

    port: int
    count: int
    connections: list[SlowConnection] = field(default_factory=list)
    failed_to_connect: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    def start(self) -> None:
        """Open the connections (at most 1,000 a second) and return once all are tried."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()

    def held(self) -> int:
        return sum(1 for c in self.connections if c.closed is None)

    def refused(self) -> int:
        return sum(
            1
            for c in self.connections
            if c.closed is not None and c.closed - c.opened < REFUSED_WITHIN
        )

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        writers: list[asyncio.StreamWriter] = []
        watchers: list[asyncio.Task[None]] = []
        for i in range(self.count):
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(ATTACKER_ADDRESS, 0)
                )
            except OSError:
                self.failed_to_connect += 1
                continue
            conn = SlowConnection(time.monotonic())
            self.connections.append(conn)
            writer.write(b"GET / HTTP/1.1\r\nHost: bench.test\r\nX-Slow-0: x\r\n")
            writers.append(writer)
            watchers.append(asyncio.create_task(_watch(reader, conn)))
            if i % 1000 == 999:
                await asyncio.sleep(1)
        ready.set()
        line = 0
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), TRICKLE_EVERY)
            except TimeoutError:
                line += 1
                for writer, conn in zip(writers, self.connections, strict=True):
                    if conn.closed is None and not writer.is_closing():
                        writer.write(b"X-Slow-%d: x\r\n" % line)
        for writer in writers:
            writer.close()
        for task in watchers:
            task.cancel()


async def _watch(reader: asyncio.StreamReader, conn: SlowConnection) -> None:
    with contextlib.suppress(OSError):
        await reader.read()  # the target never answers an unfinished head: EOF is the close
    conn.closed = time.monotonic()


def _load(target: Target, duration: float) -> WrkResult:
    return target.wrk(WrkOptions(duration=duration))[0]


def measure(ctx: BenchContext, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    with ctx.scenario_scope():
        target = scenario.start(ctx)
        _load(target, 2)  # warm-up
        before = _load(target, args.duration)
        port = urlsplit(target.url).port
        assert port is not None  # every scenario's URL names its port
        attack = Slowloris(port, args.slow)
        attack.start()
        started = min((c.opened for c in attack.connections), default=time.monotonic())
        try:
            time.sleep(1)
            during = _load(target, args.duration)
            held_at: dict[int, int] = {}
            all_closed: float | None = None
            while (elapsed := time.monotonic() - started) < args.hold:
                held_at[int(elapsed)] = attack.held()
                if attack.held() == 0:
                    all_closed = elapsed
                    break
                time.sleep(1)
            refused = attack.refused()
            held_10s = held_at.get(10, attack.held())
            still = attack.held()
        finally:
            attack.stop()
    return {
        "name": scenario.name,
        "before": before.as_dict(),
        "during": during.as_dict(),
        "slow_opened": len(attack.connections),
        "slow_failed_to_connect": attack.failed_to_connect,
        "slow_refused": refused,
        "slow_held_after_10s": held_10s,
        "slow_all_closed_after_s": all_closed,
        "slow_still_held_at_end": still,
        "held_by_second": held_at,
    }


def _row(r: dict[str, Any], hold: float) -> str:
    before, during = r["before"], r["during"]
    ratio = during["requests_per_sec"] / before["requests_per_sec"]
    closed = r["slow_all_closed_after_s"]
    still = r["slow_still_held_at_end"]
    gone = f"{closed:.0f} s" if closed is not None else f"{still} open at {hold:g} s"
    errors = during["error_count"]
    return (
        f"{r['name']:<26} {before['requests_per_sec']:>9,.0f} {during['requests_per_sec']:>9,.0f}"
        f" {ratio:>6.2f}x {during['latency_ms'].get('p99', 0.0):>8.2f} {errors:>6}"
        f" {r['slow_refused']:>7} {r['slow_held_after_10s']:>7} {gone:>14}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument("--slow", type=int, default=2000, help="slow connections (2000)")
    parser.add_argument("--hold", type=float, default=75.0, help="seconds to keep them (75)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (5)")
    parser.add_argument(
        "--targets",
        default=",".join(t.name for t in TARGETS),
        help="comma-separated, of: " + "; ".join(t.name for t in TARGETS),
    )
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    by_name = {t.name: t for t in TARGETS}
    chosen = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in by_name]
    if unknown:
        print(f"unknown target(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-slow-clients-"))
    with BenchContext(workdir) as ctx:
        ctx.upstream_port = start_upstream(ctx)
        for scenario in (by_name[name] for name in chosen):
            print(f"{scenario.name}: {args.slow} slow connections", flush=True)
            rows.append(measure(ctx, scenario, args))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"targets": rows, "slow": args.slow}, indent=1))
    print(
        f"\n{'target':<26} {'req/s':>9} {'attacked':>9} {'ratio':>7} {'p99 ms':>8} {'errors':>6}"
        f" {'refused':>7} {'at 10 s':>7} {'all closed':>14}"
    )
    for r in rows:
        print(_row(r, args.hold))
    print(
        f"\n(wrk -t1 -c64 from 127.0.0.1, {args.duration:g} s each; {args.slow} slowloris "
        f"connections from {ATTACKER_ADDRESS}, a header line every {TRICKLE_EVERY:g} s)"
    )
    print(f"results: {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
