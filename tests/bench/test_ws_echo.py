"""The WebSocket echo server's frame codec and protocol, and the load client against it,
with no sockets: the codec is fed bytes, the protocols are joined by in-memory transports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.ws_echo import (
    BAD_REQUEST,
    CLOSE_TOO_BIG,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PLAIN_OK,
    EchoProtocol,
    Frame,
    FrameParser,
    ProtocolError,
    accept_key,
    apply_mask,
    echo_frames,
    encode_frame,
    parse_request_head,
)
from bench.ws_load import LoadConnection, LoadOptions, Run, percentile, summarise

MASK = bytes.fromhex("37fa213d")


# -- helpers ----------


def _stream() -> tuple[bytes, list[Frame]]:
    """Masked client frames of every length form, a ping and a close, back to back."""
    texts = [b"a" * 5, b"b" * 126, b"c" * 70_000]
    data = b"".join(encode_frame(OP_TEXT, t, mask=MASK) for t in texts)
    data += encode_frame(OP_PING, b"p", mask=MASK) + encode_frame(OP_CLOSE, b"\x03\xe8", mask=MASK)
    frames = [Frame(True, OP_TEXT, t, masked=True) for t in texts]
    frames += [Frame(True, OP_PING, b"p", True), Frame(True, OP_CLOSE, b"\x03\xe8", True)]
    return data, frames


class MemoryTransport(asyncio.Transport):
    """Writes go to ``deliver`` on the loop's next turn; closing tells both ends."""

    def __init__(self, deliver: Callable[[bytes], None] | None = None) -> None:
        super().__init__()
        self.deliver = deliver
        self.written = bytearray()
        self.closed = False
        self.on_close: list[Callable[[], None]] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            return
        chunk = bytes(data)
        self.written += chunk
        if self.deliver is not None:
            asyncio.get_running_loop().call_soon(self.deliver, chunk)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for callback in self.on_close:
                asyncio.get_running_loop().call_soon(callback)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _join(
    client: asyncio.Protocol, server: asyncio.Protocol, corrupt: bool = False
) -> tuple[MemoryTransport, MemoryTransport]:
    """Connect ``client`` and ``server``; with ``corrupt``, every server write reaching
    the client after the handshake has its last byte flipped (an unmasked frame's payload)."""
    seen = {"handshake": False}

    def to_client(data: bytes) -> None:
        if corrupt and seen["handshake"]:
            data = data[:-1] + bytes([data[-1] ^ 1])
        seen["handshake"] = True
        client.data_received(data)

    to_server = MemoryTransport(server.data_received)
    to_the_client = MemoryTransport(to_client)
    for t in (to_server, to_the_client):
        t.on_close += [lambda: client.connection_lost(None), lambda: server.connection_lost(None)]
    server.connection_made(to_the_client)
    client.connection_made(to_server)
    return to_server, to_the_client


async def _exchange(corrupt: bool) -> Run:
    run = Run(size=40)
    client = LoadConnection(run, 7, LoadOptions("127.0.0.1", 1, connections=1, size=40))
    _join(client, EchoProtocol(), corrupt)
    await asyncio.wait_for(client.opened, 1)
    run.window_start = time.perf_counter()
    run.window_end = run.window_start + 0.05
    client.begin()
    await asyncio.wait_for(client.finished, 5)
    return run


class TestWebSocketFrameCodec:
    """RFC 6455 framing: lengths, masks, frames split across reads and several in one."""

    def test_accept_key_is_the_rfc_example(self) -> None:
        assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    def test_rfc_examples_parse(self) -> None:
        """RFC 6455 §5.7: unmasked and masked "Hello", a fragmented one, a ping."""
        parser = FrameParser()
        unmasked = bytes.fromhex("810548656c6c6f")
        masked = bytes.fromhex("818537fa213d7f9f4d5158")
        fragments = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
        ping = bytes.fromhex("890548656c6c6f")
        frames = parser.feed(unmasked + masked + fragments + ping)
        assert frames == [
            Frame(True, OP_TEXT, b"Hello"),
            Frame(True, OP_TEXT, b"Hello", masked=True),
            Frame(False, OP_TEXT, b"Hel"),
            Frame(True, OP_CONTINUATION, b"lo"),
            Frame(True, OP_PING, b"Hello"),
        ]
        assert parser.pending == 0

    def test_encoding_matches_the_rfc_examples(self) -> None:
        assert encode_frame(OP_TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
        assert encode_frame(OP_TEXT, b"Hello", mask=MASK) == bytes.fromhex("818537fa213d7f9f4d5158")
        assert encode_frame(OP_TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")

    # -- lengths ----------

    @pytest.mark.parametrize(
        ("size", "header"),
        [
            (0, bytes.fromhex("8200")),
            (125, bytes.fromhex("827d")),
            (126, bytes.fromhex("827e007e")),
            (65535, bytes.fromhex("827effff")),
            (65536, bytes.fromhex("827f0000000000010000")),
            (300_000, bytes.fromhex("827f00000000000493e0")),
        ],
    )
    def test_lengths_take_the_shortest_form(self, size: int, header: bytes) -> None:
        payload = bytes(i % 251 for i in range(size))
        frame = encode_frame(OP_BINARY, payload)
        assert frame[: len(header)] == header
        assert len(frame) == len(header) + size
        assert FrameParser().feed(frame) == [Frame(True, OP_BINARY, payload)]

    @pytest.mark.parametrize("size", [126, 1000, 65535, 65536, 200_000])
    def test_masked_16_and_64_bit_lengths_round_trip(self, size: int) -> None:
        payload = bytes(i % 256 for i in range(size))
        frame = encode_frame(OP_BINARY, payload, mask=MASK)
        head = 4 if size < 65536 else 10
        assert frame[1] & 0x80 and frame[head : head + 4] == MASK  # mask bit, then the key
        assert frame[head + 4 :] != payload  # the payload travels masked
        assert FrameParser().feed(frame) == [Frame(True, OP_BINARY, payload, masked=True)]

    def test_mask_is_its_own_inverse(self) -> None:
        for size in (0, 1, 3, 4, 5, 64, 1001):
            data = bytes(range(256)) * 4
            data = data[:size]
            assert apply_mask(MASK, apply_mask(MASK, data)) == data
        assert apply_mask(MASK, b"\0\0\0\0\0") == MASK + MASK[:1]

    # -- frames split across reads, several in one read ----------

    @pytest.mark.parametrize("chunk", [1, 2, 3, 7, 10, 127, 4096, 1 << 20])
    def test_frames_split_across_reads(self, chunk: int) -> None:
        data, expected = _stream()
        parser = FrameParser()
        frames: list[Frame] = []
        for i in range(0, len(data), chunk):
            frames += parser.feed(data[i : i + chunk])
        assert frames == expected
        assert parser.pending == 0

    def test_every_split_point_of_the_headers(self) -> None:
        """A cut inside the first byte pair, the extended length or the mask key."""
        for size in (5, 300, 70_000):
            frame = encode_frame(OP_BINARY, b"z" * size, mask=MASK)
            for cut in range(1, min(15, len(frame))):
                parser = FrameParser()
                assert parser.feed(frame[:cut]) == []
                assert parser.feed(frame[cut:]) == [Frame(True, OP_BINARY, b"z" * size, True)]

    def test_several_frames_and_a_partial_one_in_one_read(self) -> None:
        first, second, third = (encode_frame(OP_TEXT, b"%d" % i * 40, mask=MASK) for i in range(3))
        parser = FrameParser()
        frames = parser.feed(first + second + third[:5])
        assert [f.payload for f in frames] == [b"0" * 40, b"1" * 40]
        assert parser.pending == 5
        assert [f.payload for f in parser.feed(third[5:])] == [b"2" * 40]

    # -- refused frames ----------

    @pytest.mark.parametrize(
        "data",
        [
            bytes.fromhex("c100"),  # RSV1 set
            bytes.fromhex("8300"),  # reserved data opcode 3
            bytes.fromhex("8b00"),  # reserved control opcode 0xB
            bytes.fromhex("097e0100"),  # a fragmented ping
            bytes.fromhex("897e007e"),  # a ping of 126 bytes
        ],
    )
    def test_protocol_errors(self, data: bytes) -> None:
        with pytest.raises(ProtocolError):
            FrameParser().feed(data)

    def test_oversized_payload_is_refused_from_its_header(self) -> None:
        parser = FrameParser(max_payload=1000)
        with pytest.raises(ProtocolError) as caught:
            parser.feed(encode_frame(OP_BINARY, b"x" * 1001)[:4])  # header only
        assert caught.value.code == CLOSE_TOO_BIG


class TestWebSocketEchoServer:
    """What the echo server answers: echo_frames and EchoProtocol fed bytes."""

    def test_echo_frames(self) -> None:
        frames = [
            Frame(True, OP_TEXT, b"hi", True),
            Frame(False, OP_BINARY, b"\x00\x01", True),
            Frame(True, OP_CONTINUATION, b"\x02", True),
            Frame(True, OP_PING, b"pp", True),
            Frame(True, OP_PONG, b"ignored", True),
        ]
        out, close = echo_frames(frames)
        assert not close
        assert out == (
            encode_frame(OP_TEXT, b"hi")
            + encode_frame(OP_BINARY, b"\x00\x01", fin=False)
            + encode_frame(OP_CONTINUATION, b"\x02")
            + encode_frame(OP_PONG, b"pp")
        )
        out, close = echo_frames(
            [Frame(True, OP_CLOSE, b"\x03\xe8bye", True), Frame(True, OP_TEXT, b"late", True)]
        )
        assert close and out == encode_frame(OP_CLOSE, b"\x03\xe8bye")

    def test_request_head(self) -> None:
        head = parse_request_head(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
            b"Upgrade: WebSocket\r\nSec-WebSocket-Key: k==\r\nX-A: 1\r\nX-A: 2"
        )
        assert (head.method, head.target) == ("GET", "/ws")
        assert head.websocket_key == "k=="
        assert head.headers["x-a"] == "1, 2"
        plain = parse_request_head(b"GET / HTTP/1.1\r\nConnection: upgrade\r\nSec-WebSocket-Key: k")
        assert plain.websocket_key is None  # no Upgrade header: nginx's probe through its proxy
        with pytest.raises(ValueError):
            parse_request_head(b"GARBAGE")

    def test_echo_protocol_handshake_and_frames_in_pieces(self) -> None:
        """The handshake and the first frames in one read, the rest split; then a close."""
        proto = EchoProtocol()
        transport = MemoryTransport()
        proto.connection_made(transport)
        handshake = (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        big = b"B" * 70_000
        data = (
            handshake
            + encode_frame(OP_TEXT, b"one", mask=MASK)
            + encode_frame(OP_PING, b"?", mask=MASK)
            + encode_frame(OP_BINARY, big, mask=MASK)
            + encode_frame(OP_CLOSE, b"\x03\xe8", mask=MASK)
        )
        for i in range(0, len(data), 999):
            proto.data_received(data[i : i + 999])
        response, _, frames = bytes(transport.written).partition(b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response
        assert b"Upgrade: websocket" in response and b"Connection: Upgrade" in response
        assert FrameParser().feed(frames) == [
            Frame(True, OP_TEXT, b"one"),
            Frame(True, OP_PONG, b"?"),
            Frame(True, OP_BINARY, big),
            Frame(True, OP_CLOSE, b"\x03\xe8"),
        ]
        assert transport.closed

    @pytest.mark.parametrize(
        ("request_bytes", "answer"),
        [
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", PLAIN_OK),
            (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", BAD_REQUEST),
        ],
    )
    def test_echo_protocol_plain_requests(self, request_bytes: bytes, answer: bytes) -> None:
        proto = EchoProtocol()
        transport = MemoryTransport()
        proto.connection_made(transport)
        proto.data_received(request_bytes)
        assert bytes(transport.written) == answer and transport.closed


class TestWebSocketLoadClient:
    """The load client against the echo protocol, joined in memory."""

    async def test_load_client_round_trips_and_closes(self) -> None:
        run = await _exchange(corrupt=False)
        assert len(run.rtts) > 10
        assert not run.errors

    async def test_load_client_counts_echoes_that_differ(self) -> None:
        run = await _exchange(corrupt=True)
        assert run.errors["mismatch"] > 10 and not run.rtts

    def test_percentiles_and_summary(self) -> None:
        ordered = [i / 1000 for i in range(1, 101)]  # 1..100 ms
        assert percentile(ordered, 50) == 0.05 and percentile(ordered, 99) == 0.099
        assert percentile([], 50) != percentile([], 50)  # NaN
        options = LoadOptions("h", 1, connections=2, duration=2.0, size=8)
        errors = Run(8).errors
        summary = summarise(options, 2, ordered, errors, 0.5, "asyncio")
        assert summary["messages"] == 100 and summary["messages_per_sec"] == 50.0
        assert summary["latency_ms"] == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
        assert summary["errors"] == 0
        errors["closed_early"] += 1
        errors["mismatch"] += 2
        failed = summarise(options, 2, [], errors, 0.0, "asyncio")
        assert failed["errors"] == 3 and failed["latency_ms"]["p50"] is None
