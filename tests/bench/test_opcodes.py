"""The bytecode probe and the reading of its counts (bench.opcodes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.opcodes import PROBE_DIR, changes, parse_counts, per_request, short_path, total

PROBE_SCRIPT = """
import os, signal

def before():
    return 1

def counted(n):
    total = 0
    for i in range(n):
        total += i
    return total

before()
os.kill(os.getpid(), signal.SIGUSR1)
for _ in range(3):
    counted(5)
os.kill(os.getpid(), signal.SIGUSR2)
before()
"""


def _probe(script: str, probe_dir: Path | None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the probe on its path, switched on when ``probe_dir`` is given."""
    env = {**os.environ, "PYTHONPATH": str(PROBE_DIR)}
    if probe_dir is not None:
        env["MESHGATE_OPCODE_PROBE"] = str(probe_dir)
    else:
        env.pop("MESHGATE_OPCODE_PROBE", None)
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_probe_counts_what_runs_between_the_two_signals(tmp_path: Path) -> None:
    done = _probe(PROBE_SCRIPT, tmp_path)
    assert done.returncode == 0, done.stderr
    [written] = tmp_path.glob("opcodes-*.tsv")
    rows = {line.split("\t")[2]: line.split("\t") for line in written.read_text().splitlines()}
    bytecodes, entries = int(rows["counted"][0]), int(rows["counted"][1])
    assert entries == 3
    assert bytecodes > 0 and bytecodes % 3 == 0  # three identical calls
    assert "before" not in rows  # called before the first signal and after the second only


def test_without_its_variable_the_probe_does_nothing(tmp_path: Path) -> None:
    # The script's own SIGUSR1 would then end it (the default action): nothing installed.
    done = _probe(PROBE_SCRIPT, None)
    assert done.returncode == -10  # killed by SIGUSR1
    assert not list(tmp_path.glob("opcodes-*.tsv"))


def test_counts_are_keyed_by_name_and_place_and_redefinitions_summed() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (
        f"120\t4\tProxy.forward\t{root}/mesh/proxy.py:80\n"
        "30\t2\tobserve\t/x/lib/python3.11/site-packages/prometheus_client/metrics.py:667\n"
        f"10\t1\tProxy.forward\t{root}/mesh/proxy.py:80\n"
    )
    counts = parse_counts(text)
    assert counts == {
        "Proxy.forward  mesh/proxy.py:80": (130.0, 5.0),
        "observe  prometheus_client/metrics.py:667": (30.0, 2.0),
    }
    assert per_request(counts, 10)["Proxy.forward  mesh/proxy.py:80"] == (13.0, 0.5)
    assert total(per_request(counts, 10)) == 16.0
    assert short_path("/elsewhere/x.py") == "/elsewhere/x.py"


def test_changes_are_the_largest_either_way_and_skip_the_unchanged() -> None:
    base = {"a": (10.0, 1.0), "b": (50.0, 1.0), "c": (5.0, 1.0)}
    other = {"a": (10.0, 1.0), "b": (20.0, 1.0), "d": (8.0, 1.0)}
    assert changes(base, other, 10) == [("b", -30.0, 20.0), ("d", 8.0, 8.0), ("c", -5.0, 0.0)]
    assert changes(base, other, 1) == [("b", -30.0, 20.0)]
