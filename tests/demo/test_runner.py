"""How ``meshgate demo`` notices Ctrl-C and SIGTERM (real signals to this process), and
refuses a bad port range before starting anything."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from demo.processes import PORT_RANGE_ENV, free_port
from demo.runner import _stop_on_signals, run_demo


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_wait_and_the_old_handler_comes_back(signum: int) -> None:
    before = signal.getsignal(signum)
    with _stop_on_signals() as stop:
        assert not stop.wait(0.01)
        threading.Timer(0.1, os.kill, (os.getpid(), signum)).start()
        polls = 0
        while not stop.wait(0.05):  # as the demo's loop polls (every 0.5 s)
            polls += 1
            assert polls < 100, "the signal was not noticed"
        assert stop.wait(0.01)  # and stays set
    assert signal.getsignal(signum) == before


def test_a_storm_of_signals_never_blocks_the_main_loop() -> None:
    """A handler that took a lock the main thread holds would hang here (the old
    threading.Event did, inside Event.wait); a flag cannot."""
    with _stop_on_signals() as stop:
        done = threading.Event()

        def storm() -> None:
            for _ in range(2000):
                os.kill(os.getpid(), signal.SIGTERM)
            done.set()

        threading.Thread(target=storm).start()
        deadline = time.monotonic() + 10
        while not done.is_set():
            stop.wait(0.0001)
            assert time.monotonic() < deadline
        assert stop.requested


def test_a_bad_port_range_is_named_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    edge_port = free_port()
    monkeypatch.setenv(PORT_RANGE_ENV, "9000")
    assert run_demo(edge_port=edge_port, workdir=str(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"meshgate demo: {PORT_RANGE_ENV}='9000': expected LOW-HIGH within 1024-65535\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing was written, nothing started
