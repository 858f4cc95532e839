"""The WebSocket load client of :mod:`bench.websocket`: closed-loop echo round trips.

    .venv/bin/python -m bench.ws_load http://127.0.0.1:8080/ [--connections 64]
        [--duration 10] [--size 64] [--warmup 2]

Opens ``--connections`` WebSocket connections to the URL (``http://`` or
``ws://``; plain TCP, no TLS), all at once, each with its own handshake checked
(``101`` and the right ``Sec-WebSocket-Accept``). Once every attempt has
succeeded or failed, each open connection loops: send one masked text frame of
``--size`` bytes (distinct for every message: the connection's and the message's
numbers, padded), wait for its echo, check the echo is that very text in one
final text frame, send the next. Round trips whose echo arrives in the window
that starts ``--warmup`` seconds after the start and lasts ``--duration``
seconds are recorded; at its end each connection finishes its round trip in
flight and closes with a close frame (the server's close answered, or 5 s).

It is one process and one thread (asyncio protocols on uvloop when importable,
the frame codec of :mod:`bench.ws_echo`), so that the bench runs it apart from
itself and from the proxy under test: :mod:`bench.websocket` starts it on the
CPUs the bench keeps for itself, off the proxy's (see ``--pin`` there).

Standard output, for the bench to follow: ``ws_load: connected K/N`` once the
connections are up, ``ws_load: measuring`` and ``ws_load: done`` at the window's
start and end (the bench samples the proxy's CPU time then), and last a line
``RESULT <json>`` (:func:`summarise`): messages and messages/s in the window,
round-trip latency p50/p90/p99/max in ms, and errors by kind:

* ``connect``: the TCP connect failed or took over 10 s;
* ``handshake``: no ``101``, a wrong accept key, or no answer within 10 s;
* ``closed_early``: the other end closed the connection (with a close frame or
  at the TCP level) before the client started closing it, after the window;
* ``mismatch``: an echo that is not the text sent (or not a final text frame),
  counted per message;
* ``protocol``: bytes that are no valid frame (the connection is then dropped);
* ``unanswered``: a message still without its echo 5 s after the window ended.

``mismatch`` counts messages; every other kind counts connections, each at most
once. The result also has the client's own CPU time in the window.
Exit status 0 when it ran (errors or not), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as ``python bench/ws_load.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ws_echo import (
    MAX_HEAD,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    ProtocolError,
    accept_key,
    encode_frame,
    install_fast_loop,
    parse_head,
    set_nodelay,
)

CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
CLOSE_NORMAL = (1000).to_bytes(2, "big")
RESULT_PREFIX = "RESULT "
ERROR_KINDS = ("connect", "handshake", "closed_early", "mismatch", "protocol", "unanswered")


@dataclass(frozen=True)
class LoadOptions:
    """What to load and how hard."""

    host: str
    port: int
    path: str = "/"
    connections: int = 64
    duration: float = 10.0
    warmup: float = 2.0
    size: int = 64


def options_from_url(url: str, **kwargs: Any) -> LoadOptions:
    """:class:`LoadOptions` for ``http://``/``ws://host:port/path`` (port 80 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "ws") or not parts.hostname:
        raise ValueError(f"not an http:// or ws:// URL: {url}")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return LoadOptions(parts.hostname, parts.port or 80, path, **kwargs)


@dataclass
class Run:
    """State a run's connections share: the window and what was recorded in it."""

    size: int
    start: float = 0.0
    window_start: float = math.inf
    window_end: float = math.inf
    """``time.perf_counter()`` bounds of the recorded window (infinite until started)."""
    rtts: array.array[float] = field(default_factory=lambda: array.array("d"))
    """Round-trip times in seconds, of echoes received in the window."""
    errors: Counter[str] = field(default_factory=Counter)


class LoadConnection(asyncio.Protocol):
    """One WebSocket connection of the closed loop (see the module docstring)."""

    def __init__(self, run: Run, number: int, options: LoadOptions) -> None:
        self.run = run
        self.number = number
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._accept = accept_key(key)
        self._request = (
            f"GET {options.path} HTTP/1.1\r\n"
            f"Host: {options.host}:{options.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode("ascii")
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        """Done once the handshake succeeded; its exception says why it did not."""
        self.opened.add_done_callback(_retrieve)
        self.finished: asyncio.Future[None] = loop.create_future()
        """Done once the connection is closed, however."""
        self.transport: asyncio.Transport | None = None
        self._head: bytearray | None = bytearray()
        self._head_rest = b""
        """Bytes that came after the handshake's head in the same read (frames)."""
        self._parser = FrameParser()
        self._pad = b"x" * run.size
        self._rng = random.Random()
        self.sequence = 0
        self.expected: bytes | None = None
        """The text whose echo is awaited; None between round trips."""
        self.sent_at = 0.0
        self.closing = False
        self.failed = False

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.transport = transport
        set_nodelay(transport)
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            if not self._handshake(data):
                return
            if not self._head_rest:
                return
            data, self._head_rest = self._head_rest, b""
        try:
            frames = self._parser.feed(data)
        except ProtocolError:
            self._fail("protocol")
            return
        for frame in frames:
            if frame.opcode == OP_TEXT:
                self._echoed(frame.payload, frame.fin)
            elif frame.opcode == OP_PING:
                self._write(encode_frame(OP_PONG, frame.payload, mask=self._mask()))
            elif frame.opcode == OP_CLOSE:
                if not self.closing:
                    self._fail("closed_early")
                elif self.transport is not None:
                    self.transport.close()
                return
            elif frame.opcode != OP_PONG:
                self._mismatch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        elif not self.closing:
            self._fail("closed_early")
        if not self.finished.done():
            self.finished.set_result(None)

    # -- the loop ------------------------------------------------------------------

    def begin(self) -> None:
        """Send the first message (the run's window is set)."""
        self._send()

    def _send(self) -> None:
        self.sequence += 1
        text = (b"%x:%x:" % (self.number, self.sequence) + self._pad)[: self.run.size]
        self.expected = text
        frame = encode_frame(OP_TEXT, text, mask=self._mask())
        self.sent_at = time.perf_counter()
        self._write(frame)

    def _echoed(self, payload: bytes, fin: bool) -> None:
        now = time.perf_counter()
        run = self.run
        if payload != self.expected or not fin:
            self._mismatch()
        elif run.window_start <= now < run.window_end:
            run.rtts.append(now - self.sent_at)
        self.expected = None
        if self.closing:
            return
        if now < run.window_end:
            self._send()
        else:
            self.close()

    def close(self) -> None:
        """Start the closing handshake (idempotent)."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self._write(encode_frame(OP_CLOSE, CLOSE_NORMAL, mask=self._mask()))

    def abort(self) -> None:
        """Drop the connection now."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # -- helpers -------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bool:
        assert self._head is not None
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._refused("response head too large")
            return False
        start, headers = parse_head(bytes(self._head[:end]))
        self._head_rest = bytes(self._head[end + 4 :])
        self._head = None
        if len(start) < 2 or start[1] != "101":
            self._refused(f"answered {' '.join(start)!r}, not 101")
            return False
        if headers.get("sec-websocket-accept") != self._accept:
            self._refused("wrong Sec-WebSocket-Accept")
            return False
        self.opened.set_result(None)
        return True

    def _refused(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(why))
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, kind: str) -> None:
        """Count ``kind`` once for this connection, unless it was closing already (its
        last echo received), and drop it."""
        if not self.failed and not self.closing:
            self.failed = True
            self.run.errors[kind] += 1
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _mismatch(self) -> None:
        self.run.errors["mismatch"] += 1

    def _mask(self) -> bytes:
        return self._rng.getrandbits(32).to_bytes(4, "little")

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a future's exception as seen (one nobody waits for any more, after a timeout)."""
    if not future.cancelled():
        future.exception()


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``ordered`` (sorted ascending); NaN when
    empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(
    options: LoadOptions,
    connected: int,
    rtts: Iterable[float],
    errors: Counter[str],
    client_cpu_s: float,
    event_loop: str,
) -> dict[str, Any]:
    """The run's result document (what the ``RESULT`` line carries)."""
    ordered = sorted(rtts)
    messages = len(ordered)
    latency = {
        f"p{p}": round(percentile(ordered, p) * 1000, 3) if ordered else None for p in (50, 90, 99)
    }
    latency["max"] = round(ordered[-1] * 1000, 3) if ordered else None
    kinds = {kind: errors.get(kind, 0) for kind in ERROR_KINDS}
    return {
        "host": options.host,
        "port": options.port,
        "path": options.path,
        "connections": options.connections,
        "connected": connected,
        "size": options.size,
        "warmup_s": options.warmup,
        "duration_s": options.duration,
        "messages": messages,
        "messages_per_sec": messages / options.duration if options.duration > 0 else 0.0,
        "latency_ms": latency,
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
        "client_cpu_s": round(client_cpu_s, 4),
        "client_cpu_us_per_message": (
            round(client_cpu_s * 1e6 / messages, 2) if messages else None
        ),
        "event_loop": event_loop,
    }


async def _open(run: Run, number: int, options: LoadOptions) -> LoadConnection | None:
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: LoadConnection(run, number, options), options.host, options.port
            ),
            CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError):
        run.errors["connect"] += 1
        return None
    try:
        await asyncio.wait_for(asyncio.shield(conn.opened), CONNECT_TIMEOUT)
    except (ConnectionError, TimeoutError):
        run.errors["handshake"] += 1
        conn.abort()
        return None
    return conn


def _say(line: str) -> None:
    print(f"ws_load: {line}", flush=True)


async def run_load(options: LoadOptions, event_loop: str) -> dict[str, Any]:
    """Run the load described by ``options``; return :func:`summarise`'s document."""
    run = Run(options.size)
    opened = await asyncio.gather(*(_open(run, i, options) for i in range(options.connections)))
    conns = [c for c in opened if c is not None]
    _say(f"connected {len(conns)}/{options.connections}")
    loop = asyncio.get_running_loop()
    cpu: dict[str, float] = {}

    def window_opens() -> None:
        cpu["start"] = time.process_time()
        _say("measuring")

    window_closed = loop.create_future()

    def window_closes() -> None:
        cpu["end"] = time.process_time()
        _say("done")
        window_closed.set_result(None)

    run.start = time.perf_counter()
    run.window_start = run.start + options.warmup
    run.window_end = run.window_start + options.duration
    loop.call_later(options.warmup, window_opens)
    loop.call_later(options.warmup + options.duration, window_closes)
    for conn in conns:
        conn.begin()
    await window_closed
    pending = [c.finished for c in conns if not c.finished.done()]
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
    for conn in conns:
        if conn.finished.done():
            continue
        if conn.expected is not None and not conn.failed:
            run.errors["unanswered"] += 1
        conn.abort()
    client_cpu = cpu.get("end", 0.0) - cpu.get("start", 0.0)
    return summarise(options, len(conns), run.rtts, run.errors, client_cpu, event_loop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_load", description=__doc__)
    parser.add_argument("url", help="http://host:port/path (or ws://) of a WebSocket echo")
    parser.add_argument("--connections", type=int, default=64, help="connections (64)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds recorded (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before (2)")
    parser.add_argument("--size", type=int, default=64, help="bytes per message (64)")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.duration <= 0 or args.warmup < 0 or args.size < 1:
        print("ws_load: --connections, --duration and --size must be positive", file=sys.stderr)
        return 2
    try:
        options = options_from_url(
            args.url,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            size=args.size,
        )
    except ValueError as exc:
        print(f"ws_load: {exc}", file=sys.stderr)
        return 2
    event_loop = "uvloop" if install_fast_loop() else "asyncio"
    result = asyncio.run(run_load(options, event_loop))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
