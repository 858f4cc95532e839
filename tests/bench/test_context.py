"""BenchContext: which checkout's code the processes it starts run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.context import BenchContext
from demo.processes import PROJECT_ROOT


def _fake_checkout(root: Path) -> Path:
    """A directory whose ``python -m meshgate`` prints where it was loaded from."""
    package = root / "meshgate"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("print('meshgate from', __file__, flush=True)\n")
    return root


def _output_of(ctx: BenchContext, name: str) -> str:
    """The log of process ``name`` once it holds the line the process prints."""
    log = ctx.path(f"{name}.log")
    deadline = time.monotonic() + 30
    while "meshgate from" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the process printed nothing"
        time.sleep(0.05)
    return log.read_text()


def test_processes_run_in_this_checkout_by_default(tmp_path: Path) -> None:
    with BenchContext(tmp_path) as ctx:
        assert ctx.source_root == PROJECT_ROOT
        ctx.spawn("cwd", [sys.executable, "-c", "import os; print('meshgate from', os.getcwd())"])
        text = _output_of(ctx, "cwd")
    assert f"meshgate from {PROJECT_ROOT}" in text


def test_meshgate_runs_the_code_of_another_source_root(tmp_path: Path) -> None:
    other = _fake_checkout(tmp_path / "other")
    (tmp_path / "work").mkdir()
    with BenchContext(tmp_path / "work") as ctx:
        ctx.source_root = other
        ctx.meshgate("edge", "edge", {})
        text = _output_of(ctx, "edge")
    assert f"meshgate from {other / 'meshgate' / '__main__.py'}" in text
