"""The workers supervisor: SIGTERM stops all cleanly; a worker dying stops the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from demo.processes import PROJECT_ROOT, wait_until

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from mesh.workers import run_workers, this_worker

    out = Path(sys.argv[1])

    def work(index):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        seat = this_worker()
        (out / f"seat-{index}").write_text(f"{seat.index} {seat.count} {seat.directory}")
        (out / f"worker-{index}").write_text(
            f"{os.getpid()} {os.getpgid(0)} {os.environ['PROMETHEUS_MULTIPROC_DIR']}"
        )
        while not stop:
            time.sleep(0.02)
        return 0

    sys.exit(run_workers(2, work, name="test worker"))
    """
)


def start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[tuple[int, int, str]]]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=PROJECT_ROOT)
    wait_until(lambda: len(list(tmp_path.glob("worker-*"))) == 2, 15, "two workers")
    time.sleep(0.1)
    workers = []
    for path in sorted(tmp_path.glob("worker-*")):
        pid, pgid, metrics_dir = path.read_text().split()
        workers.append((int(pid), int(pgid), metrics_dir))
    return proc, workers


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_every_worker_and_exits_0(tmp_path: Path) -> None:
    proc, workers = start(tmp_path)
    pids = {pid for pid, _, _ in workers}
    assert len(pids) == 2 and proc.pid not in pids
    # Own process groups: a terminal's Ctrl-C reaches them through the supervisor only.
    assert all(pgid == pid for pid, pgid, _ in workers)
    metrics_dir = workers[0][2]
    assert {d for _, _, d in workers} == {metrics_dir} and os.path.isdir(metrics_dir)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not any(alive(pid) for pid in pids)
    assert not os.path.exists(metrics_dir)  # removed on the way out


def test_each_worker_knows_its_seat_and_the_admin_directory(tmp_path: Path) -> None:
    proc, _ = start(tmp_path)
    seats = [(tmp_path / f"seat-{i}").read_text().split() for i in range(2)]
    assert [(int(index), int(count)) for index, count, _ in seats] == [(0, 2), (1, 2)]
    directory = seats[0][2]
    assert seats[1][2] == directory and os.path.isdir(directory)
    # Only this user may reach the workers' admin sockets.
    assert os.stat(os.path.dirname(directory)).st_mode & 0o777 == 0o700
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not os.path.exists(directory)


def test_a_worker_dying_stops_the_others_and_exits_1(tmp_path: Path) -> None:
    proc, workers = start(tmp_path)
    (victim, _, _), (survivor, _, _) = workers
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(15) == 1
    wait_until(lambda: not alive(survivor), 5, "the other worker to stop")
