"""CPU time spent by a set of processes and their descendants (Linux ``/proc``), and
which CPUs they run on.

Throughput on a shared 2-core machine moves by ±15 % between runs, because wrk,
the proxy and whatever else runs compete for the same cores. The CPU time the
proxy itself spends per request is far steadier, so the bench reports both:
what a feature costs is best read as extra CPU microseconds per request.

:func:`parse_stat` is a pure function over one ``/proc/<pid>/stat`` line, so it
is tested without reading ``/proc``.

Pinning, shared by ``bench.run`` and ``bench.ab``: :func:`reserve_proxy_cpu`
keeps the bench (and so wrk, the upstream, Consul and Redis, which it starts)
off one CPU, :func:`pin_tree` puts the proxies under test on it, and
:func:`allowed_cpus` reads back where processes may run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_PROC = Path("/proc")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat(line: str) -> tuple[int, int, int]:
    """``(pid, ppid, utime + stime in clock ticks)`` from one ``/proc/<pid>/stat`` line.

    The command name (field 2) is in parentheses and may itself contain spaces
    and parentheses, so fields are counted from the *last* ``)``.
    """
    pid = int(line[: line.index(" ")])
    rest = line[line.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return pid, int(rest[1]), int(rest[11]) + int(rest[12])


def _all_stats() -> list[tuple[int, int, int]]:
    stats = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats.append(parse_stat((entry / "stat").read_text()))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
    return stats


def _tree(roots: Iterable[int], stats: list[tuple[int, int, int]]) -> set[int]:
    """``roots`` (those alive) and every living descendant."""
    children: dict[int, list[int]] = {}
    alive = set()
    for pid, ppid, _ in stats:
        children.setdefault(ppid, []).append(pid)
        alive.add(pid)
    seen: set[int] = set()
    todo = [p for p in roots if p in alive]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return seen


def cpu_split(available: set[int]) -> tuple[int, set[int]] | None:
    """(the proxy's CPU, the others') from the CPUs this process may use; None with one."""
    if len(available) < 2:
        return None
    proxy = min(available)
    return proxy, available - {proxy}


def reserve_proxy_cpu() -> tuple[int, set[int]] | None:
    """:func:`cpu_split` of the CPUs this process may use, with this process moved onto
    the others: so is everything it starts from now on (wrk, the upstream, Consul,
    Redis), and the proxy's CPU is left to the processes pinned there
    (:func:`pin_tree`). None, and nothing moved, with one CPU."""
    split = cpu_split(os.sched_getaffinity(0))
    if split is not None:
        os.sched_setaffinity(0, split[1])
    return split


def allowed_cpus(pids: Iterable[int]) -> set[int]:
    """Every CPU one of ``pids`` may run on (processes that exited meanwhile are skipped)."""
    cpus: set[int] = set()
    for pid in pids:
        try:
            cpus |= os.sched_getaffinity(pid)
        except OSError:
            continue
    return cpus


def pin_tree(roots: Iterable[int], cpus: set[int]) -> int:
    """Restrict ``roots``, their descendants and every thread of each to ``cpus``.

    Each thread has its own affinity (a thread started later inherits its
    creator's), so every task under ``/proc/<pid>/task`` is set. Returns how
    many threads were pinned; ones that exit meanwhile are skipped.
    """
    pinned = 0
    for pid in _tree(roots, _all_stats()):
        try:
            tids = [int(t.name) for t in (_PROC / str(pid) / "task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
                pinned += 1
            except OSError:
                continue
    return pinned


def tree_cpu_seconds(roots: Iterable[int]) -> float:
    """User + system CPU seconds of ``roots`` and every living descendant.

    Children that already exited are not counted (their time goes to the
    parent's *c*utime only once waited for), which is fine for the long-lived
    worker processes measured here.
    """
    stats = _all_stats()
    ticks = {pid: t for pid, _, t in stats}
    return sum(ticks[p] for p in _tree(roots, stats)) / _TICKS_PER_SECOND
