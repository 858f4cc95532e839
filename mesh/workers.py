"""Several worker processes on the same ports (``SO_REUSEPORT``), under one small supervisor.

:func:`run_workers` forks ``count`` workers, each running ``work()`` (which
binds its listeners with ``reuse_port``, so the kernel spreads connections
over them) and returns its exit status. The supervisor only watches:

* SIGTERM or SIGINT is passed to every worker as SIGTERM; each drains as a
  single process would; the supervisor waits for all and exits 0 if all did;
* SIGHUP is passed to every worker as it is (the edge reloads its
  configuration, :mod:`mesh.config.reload`); a worker ignores it until it has set
  up its own handling, rather than dying of it while it starts;
* a worker that exits on its own is a failure: the others are stopped the
  same way and the supervisor exits 1, for the service manager to restart
  the whole set (no silent respawning, so a crash loop is visible);
* workers are in their own process group (a terminal's Ctrl-C reaches them
  once, through the supervisor) and get SIGTERM if the supervisor dies.

Metrics: before forking, the supervisor points prometheus-client's
multiprocess mode at a fresh temporary directory, removed at exit; every
worker's admin listener (also on ``reuse_port``) answers ``/metrics`` with
all workers' values aggregated (see :mod:`mesh.telemetry.exposition`).

Admin: the admin port is shared too, so a request reaches one worker. Each
worker learns its :class:`WorkerSeat` (:func:`this_worker`): its index and the
private directory (mode 0700, beside the metrics one) where every worker's
admin listener also answers on a Unix socket of its own, so that a worker can
ask the others (:mod:`mesh.admin_workers`: a cache purge reaches every store).

Fork before any thread or event loop exists: call this from the command
line entry point, not from async code.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from mesh.telemetry.exposition import enable_multiprocess

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSeat:
    """One worker's place in the set: ``index`` of ``count``, and the directory of
    the workers' admin sockets."""

    index: int
    count: int
    directory: str

    def socket_path(self, index: int) -> str:
        """Where worker ``index``'s admin listener answers (a Unix socket)."""
        return os.path.join(self.directory, f"admin-{index}.sock")

    @property
    def others(self) -> list[int]:
        """The other workers' indexes, in order."""
        return [i for i in range(self.count) if i != self.index]


_seat: WorkerSeat | None = None


def this_worker() -> WorkerSeat | None:
    """This process's seat when :func:`run_workers` forked it; None in a single process."""
    return _seat


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_status(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def run_workers(count: int, work: Callable[[int], int], name: str = "worker") -> int:
    """Run ``work(index)`` in ``count`` forked processes until they stop; return an exit code."""
    global _seat
    run_dir = tempfile.mkdtemp(prefix="meshgate-workers-")  # mode 0700: this user's only
    metrics_dir = os.path.join(run_dir, "metrics")
    admin_dir = os.path.join(run_dir, "admin")
    os.mkdir(metrics_dir)
    os.mkdir(admin_dir)
    enable_multiprocess(metrics_dir)
    workers: dict[int, int] = {}
    stopping = False

    def stop_all() -> None:
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            log.info(
                "%s received: stopping %d %ss", signal.Signals(signum).name, len(workers), name
            )
        stopping = True
        stop_all()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    failed = False
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    for s in previous:
                        signal.signal(s, signal.SIG_DFL)
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)
                    os.setpgid(0, 0)
                    _die_with_parent()
                    _seat = WorkerSeat(index, count, admin_dir)
                    code = work(index)
                except BaseException:
                    log.exception("%s %d failed", name, index)
                finally:
                    logging.shutdown()
                    os._exit(code)
            workers[pid] = index
        log.info("%d %ss started: %s", count, name, ", ".join(map(str, workers)))
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = workers.pop(pid, -1)
            code = _exit_status(status)
            if not stopping:
                log.error(
                    "%s %d (pid %d) exited with %d: stopping the others", name, index, pid, code
                )
                failed = stopping = True
                stop_all()
            elif code != 0:
                failed = True
                log.warning("%s %d (pid %d) exited with %d while stopping", name, index, pid, code)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if failed else 0
