"""A minimal, fast WebSocket (RFC 6455) echo server, and the frame codec it and the
load client (:mod:`bench.ws_load`) share.

    .venv/bin/python -m bench.ws_echo --port 8765 [--host 127.0.0.1]

The upstream of :mod:`bench.websocket`: one process, one thread, asyncio
protocols on uvloop when it is importable. What it does with a connection:

* a request with ``Upgrade: websocket`` and a ``Sec-WebSocket-Key`` gets ``101
  Switching Protocols`` with the matching ``Sec-WebSocket-Accept``; from then on
  every data frame (text, binary or continuation) is sent back unmasked with the
  same opcode and FIN bit, a ping is answered with a pong carrying its payload, a
  pong is ignored, and a close frame is echoed before the connection is closed;
* any other ``GET`` gets ``200 ok`` and the connection is closed (so readiness
  probes, through a proxy or not, see the server serving);
* anything else (another method, a head over 64 KiB, a protocol error in the
  frames) closes the connection, with a 400 or a close frame where one fits.

It checks neither that client frames are masked nor that text is UTF-8: it is
a benchmark's upstream, kept cheap, not a conformance reference.

The codec (:class:`FrameParser`, :func:`encode_frame`, :func:`apply_mask`,
:func:`accept_key`, :func:`parse_head`) is pure: it is fed bytes and
returns frames or bytes, so it is tested without sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

if __package__ in (None, ""):  # run as ``python bench/ws_echo.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

MAX_PAYLOAD = 64 * 1024 * 1024
"""Largest frame payload :class:`FrameParser` accepts by default."""
MAX_HEAD = 64 * 1024
"""Largest HTTP request (or response) head read before the connection is refused."""
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009


class ProtocolError(ValueError):
    """Bytes that are no valid frame; ``code`` is the close code to answer with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame, its payload already unmasked."""

    fin: bool
    opcode: int
    payload: bytes
    masked: bool = False


def accept_key(key: str | bytes) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``: base64(sha1(key + GUID))."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw.strip() + WS_GUID).digest()).decode("ascii")


def apply_mask(mask: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """``data`` XOR-ed with the 4-byte ``mask`` repeated (masking and unmasking alike)."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * ((n + 3) // 4))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame carrying ``payload``: unmasked (a server's) without ``mask``, masked
    with the given 4 bytes (a client's) with it. Lengths take the 7-, 16- or 64-bit form
    RFC 6455 §5.2 requires (the shortest that fits)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((first, mask_bit | n))
    elif n < 0x10000:
        head = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + apply_mask(mask, payload)


class FrameParser:
    """Frames out of a byte stream fed in pieces of any size.

    :meth:`feed` returns every frame completed by the bytes given so far (none, one
    or several) and keeps the rest of an incomplete one for the next call. Raises
    :class:`ProtocolError` on a reserved bit or opcode, a fragmented or oversized
    control frame, or a payload over ``max_payload`` (code 1009), as soon as the
    frame's header shows it; the parser is unusable afterwards.
    """

    __slots__ = ("_buf", "max_payload")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            opcode = first & 0x0F
            fin = bool(first & 0x80)
            _check_header(first, opcode, fin, length, self.max_payload)
            masked = bool(second & 0x80)
            if masked:
                head += 4
            if end - pos < head + length:
                break
            start = pos + head
            if masked:
                payload = apply_mask(bytes(buf[start - 4 : start]), buf[start : start + length])
            else:
                payload = bytes(buf[start : start + length])
            frames.append(Frame(fin, opcode, payload, masked))
            pos = start + length
        if pos:
            del buf[:pos]
        return frames


def _check_header(first: int, opcode: int, fin: bool, length: int, max_payload: int) -> None:
    if first & 0x70:
        raise ProtocolError("reserved bits set (no extension was negotiated)")
    if opcode in CONTROL_OPCODES:
        if not fin or length > 125:
            raise ProtocolError("control frame fragmented or longer than 125 bytes")
    elif opcode not in DATA_OPCODES:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    if length > max_payload:
        raise ProtocolError(f"payload of {length} bytes over {max_payload}", CLOSE_TOO_BIG)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """An HTTP/1.1 request head: its request line's parts and headers (names lower case;
    a repeated header's values joined with ``", "``)."""

    method: str
    target: str
    headers: dict[str, str]

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of header ``name``, lower case."""
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}

    @property
    def websocket_key(self) -> str | None:
        """The ``Sec-WebSocket-Key`` when this asks to switch to WebSocket, else None."""
        if "websocket" not in self.tokens("upgrade") or "upgrade" not in self.tokens("connection"):
            return None
        return self.headers.get("sec-websocket-key")


def parse_head(head: bytes) -> tuple[list[str], dict[str, str]]:
    """An HTTP/1.1 head (up to, not including, the blank line): its start line split
    in (at most) three at spaces, and its headers (names lower case, a repeated
    header's values joined with ``", "``; lines without a colon skipped)."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return lines[0].split(" ", 2), headers


def parse_request_head(head: bytes) -> RequestHead:
    """A request head (see :func:`parse_head`). Raises ValueError when the request line
    is not three parts."""
    start, headers = parse_head(head)
    if len(start) != 3:
        raise ValueError(f"malformed request line {start!r}")
    return RequestHead(start[0], start[1], headers)


def handshake_response(key: str) -> bytes:
    """The ``101 Switching Protocols`` answering ``Sec-WebSocket-Key: key``."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode("ascii")


PLAIN_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nok\n"
)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def echo_frames(frames: Sequence[Frame]) -> tuple[bytes, bool]:
    """What the server sends back for ``frames``, and whether to close after it (a
    close frame was among them: frames after it are ignored)."""
    out: list[bytes] = []
    for frame in frames:
        opcode = frame.opcode
        if opcode in DATA_OPCODES:
            out.append(encode_frame(opcode, frame.payload, fin=frame.fin))
        elif opcode == OP_PING:
            out.append(encode_frame(OP_PONG, frame.payload))
        elif opcode == OP_CLOSE:
            out.append(encode_frame(OP_CLOSE, frame.payload))
            return b"".join(out), True
    return b"".join(out), False


class EchoProtocol(asyncio.Protocol):
    """One connection: the HTTP handshake, then the echo (see the module docstring)."""

    __slots__ = ("_head", "_parser", "_transport")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._head: bytearray | None = bytearray()
        self._parser = FrameParser()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self._transport = transport
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._head is not None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD:
                    self._refuse(BAD_REQUEST)
                return
            head, rest = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            self._head = None
            try:
                request = parse_request_head(head)
            except ValueError:
                self._refuse(BAD_REQUEST)
                return
            key = request.websocket_key
            if key is None:
                self._refuse(PLAIN_OK if request.method == "GET" else BAD_REQUEST)
                return
            transport.write(handshake_response(key))
            if not rest:
                return
            data = rest
        try:
            out, close = echo_frames(self._parser.feed(data))
        except ProtocolError as exc:
            transport.write(encode_frame(OP_CLOSE, exc.code.to_bytes(2, "big")))
            transport.close()
            return
        if out:
            transport.write(out)
        if close:
            transport.close()

    def _refuse(self, response: bytes) -> None:
        assert self._transport is not None
        self._transport.write(response)
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def install_fast_loop() -> bool:
    """Use uvloop when it is importable (as ``mesh.server.install_fast_loop`` does);
    True when it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle on ``transport``'s socket (asyncio does by default; said explicitly)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ws_echo: listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_echo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    fast = install_fast_loop()
    print(f"ws_echo: {'uvloop' if fast else 'asyncio'} event loop", flush=True)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
