"""One run of a bench tool: its work directory, SIGTERM taken as Ctrl-C, its exit status.

    run = BenchRun("websocket", args.workdir)
    with run.interruptible(), BenchContext(run.workdir) as ctx:
        ...                      # Ctrl-C or SIGTERM: BenchContext stops every process
    ...                          # print what was measured, even if interrupted
    return run.finish(flagged=any_target_failed)

The work directory is a new temporary one unless the user named one; a run's own is
removed after a clean run and kept (and printed) when anything went wrong, so its
logs and generated configs can be read.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

EXIT_FLAGGED = 1
"""A target failed, or measured with errors: its figures are not comparable."""
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class BenchRun:
    """See the module docstring. ``tool`` prefixes every line it prints."""

    def __init__(self, tool: str, workdir: Path | None) -> None:
        self.tool = tool
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"meshgate-{tool}-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.interrupted = False
        self.fatal: str | None = None
        """Why the run could not measure at all (set by the tool; printed by it)."""
        print(f"{tool}: work directory {self.workdir}", flush=True)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """SIGTERM raises KeyboardInterrupt inside; either ends the block quietly, with
        :attr:`interrupted` set (context managers inside have stopped their processes)."""
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            yield
        except KeyboardInterrupt:
            self.interrupted = True
            print(f"\n{self.tool}: interrupted; all processes stopped", file=sys.stderr)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def finish(self, *, flagged: bool) -> int:
        """The exit status; the run's own work directory removed after a clean run."""
        trouble = self.interrupted or self.fatal is not None or flagged
        if self._own_workdir and not trouble:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif trouble:
            print(f"{self.tool}: logs and configs kept in {self.workdir}", file=sys.stderr)
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FLAGGED if trouble else 0
