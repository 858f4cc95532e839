"""The running event loop, without a system call per request.

``asyncio.get_running_loop()`` makes a ``getpid()`` system call on every
call (CPython 3.11's C implementation compares the loop's process with the
caller's, so that a forked child never uses its parent's loop). The edge
asked for the loop several times per request (the upstream transport, the
rate limiter's batches, filters answering themselves): one system call
each, about 0.2 µs plus what entering the kernel costs the code after it.

:func:`running_loop` remembers the loop asyncio returned, for the thread
that asked, and hands it back while that loop is still running in that
thread; a fork forgets it (``os.register_at_fork``), which keeps asyncio's
guarantee.
"""

from __future__ import annotations

import asyncio
import os
from threading import get_ident

_cached: tuple[int, asyncio.AbstractEventLoop] | None = None
"""(thread id, the loop running in that thread) from the last asyncio look-up."""


def running_loop() -> asyncio.AbstractEventLoop:
    """The event loop running in this thread, as ``asyncio.get_running_loop()``.

    Raises RuntimeError when no loop is running in this thread (asyncio's).
    """
    global _cached
    cached = _cached
    if cached is not None and cached[0] == get_ident() and cached[1].is_running():
        return cached[1]
    loop = asyncio.get_running_loop()
    _cached = (get_ident(), loop)
    return loop


def _forget() -> None:
    global _cached
    _cached = None


os.register_at_fork(after_in_child=_forget)
