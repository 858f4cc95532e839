"""Idle keep-alive connections per upstream address: LIFO, bounded, expiring.

LIFO keeps the most recently used connections busy, so the ones at the
bottom of a stack go idle long enough to expire and the pool shrinks after a
burst. Because the stack is ordered by last use, expiry only ever has to look
at its ends: no per-connection timers on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from mesh.transport.h1_connection import H1Connection

Key = tuple[str, int, str]
"""(host, port, TLS key): the TLS key is "" for plain HTTP, else the ``PeerTls.key``
the connection was verified for."""


class IdlePool:
    """Idle connections keyed by (host, port, TLS key).

    Guarantees: :meth:`take` only returns a connection that is still open and
    has been idle for less than ``keepalive_s``; a stack never holds more than
    ``max_idle_per_host`` connections (the oldest is closed to make room);
    idle connections older than ``keepalive_s`` are closed by a periodic sweep
    even when nobody asks for them.
    """

    def __init__(self, max_idle_per_host: int, keepalive_s: float) -> None:
        self._max_idle = max_idle_per_host
        self._keepalive = keepalive_s
        self._stacks: dict[Key, deque[H1Connection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(len(stack) for stack in self._stacks.values())

    def idle_count(self, key: Key) -> int:
        """How many idle connections are kept for ``key``."""
        stack = self._stacks.get(key)
        return len(stack) if stack is not None else 0

    def take(self, key: Key, now: float) -> H1Connection | None:
        """The most recently used live connection for ``key``, or None."""
        stack = self._stacks.get(key)
        while stack:
            conn = stack.pop()
            if now - conn.idle_since >= self._keepalive:
                # Everything below is older still.
                conn.close()
                while stack:
                    stack.pop().close()
                break
            if conn.usable:
                return conn
            conn.close()
        return None

    def put(self, conn: H1Connection, now: float) -> None:
        """Keep ``conn`` (which must be idle and reusable) for a later :meth:`take`."""
        if self._max_idle <= 0 or self._keepalive <= 0:
            conn.close()
            return
        conn.idle_since = now
        stack = self._stacks.get(conn.key)
        if stack is None:
            stack = self._stacks[conn.key] = deque()
        elif len(stack) >= self._max_idle:
            stack.popleft().close()
        stack.append(conn)
        if self._sweeper is None:
            self._arm_sweeper()

    def discard(self, conn: H1Connection) -> None:
        """Forget ``conn`` (the server closed it while idle)."""
        stack = self._stacks.get(conn.key)
        if stack is not None:
            with contextlib.suppress(ValueError):
                stack.remove(conn)
            if not stack:
                del self._stacks[conn.key]

    def close_all(self) -> None:
        """Close every idle connection and stop the sweep."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        stacks, self._stacks = self._stacks, {}
        for stack in stacks.values():
            for conn in stack:
                conn.close()

    def _arm_sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        # Half the keep-alive: a connection outlives its idle time by at most 50%.
        self._sweeper = loop.call_later(max(self._keepalive / 2, 0.01), self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = None
        deadline = loop.time() - self._keepalive
        for key in list(self._stacks):
            stack = self._stacks[key]
            while stack and stack[0].idle_since <= deadline:
                stack.popleft().close()
            if not stack:
                del self._stacks[key]
        if self._stacks:
            self._arm_sweeper()
