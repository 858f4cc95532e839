"""Counts the bytecodes each Python function runs, in the main thread, between two signals.

Loaded by :mod:`bench.opcodes` through ``PYTHONPATH`` (Python imports a
``sitecustomize`` module at start-up when it finds one), and inert unless
``MESHGATE_OPCODE_PROBE`` names a directory. Then ``SIGUSR1`` starts
counting (``sys.settrace`` with per-opcode events, in the thread that runs
signal handlers: the event loop's) and ``SIGUSR2`` stops and writes
``<dir>/opcodes-<pid>.tsv``: one line per code object, ``bytecodes``,
``entries`` (calls, and a coroutine's or generator's resumptions),
qualified name and ``file:first line``, most bytecodes first.

Only frames entered after ``SIGUSR1`` are counted (a frame already running,
such as the event loop's own, is not), and other threads are not traced.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from types import FrameType
from typing import Any

_PROBE_DIR = os.environ.get("MESHGATE_OPCODE_PROBE")
_bytecodes: Counter[Any] = Counter()
_entries: Counter[Any] = Counter()


def _trace(frame: FrameType, event: str, arg: object) -> Any:
    frame.f_trace_opcodes = True
    if event == "opcode":
        _bytecodes[frame.f_code] += 1
    elif event == "call":
        _entries[frame.f_code] += 1
    return _trace


def _start(signum: int, frame: object) -> None:
    _bytecodes.clear()
    _entries.clear()
    sys.settrace(_trace)


def _stop(signum: int, frame: object) -> None:
    sys.settrace(None)
    path = os.path.join(_PROBE_DIR or ".", f"opcodes-{os.getpid()}.tsv")
    with open(path + ".part", "w", encoding="utf-8") as out:
        for code, n in _bytecodes.most_common():
            where = f"{code.co_filename}:{code.co_firstlineno}"
            out.write(f"{n}\t{_entries[code]}\t{code.co_qualname}\t{where}\n")
    os.replace(path + ".part", path)  # whole, or not there yet


if _PROBE_DIR:
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
