"""Request heads: framing decisions and serialisation, without sockets."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from mesh.transport.base import UpstreamError
from mesh.transport.h1_head import Framing, authority, serialize_head, streamed_length


def head_lines(head: bytes) -> list[str]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].decode("utf-8", "surrogateescape").split("\r\n")


@pytest.mark.parametrize(
    ("method", "given", "framing", "length", "expected"),
    [
        # No body: nothing for GET, an explicit zero for methods that expect a body.
        ("GET", {}, Framing.NONE, 0, []),
        ("DELETE", {}, Framing.NONE, 0, []),
        ("POST", {}, Framing.NONE, 0, ["Content-Length: 0"]),
        ("PUT", {"Content-Length": "0"}, Framing.NONE, 0, ["Content-Length: 0"]),
        # A stale or lying Content-Length never reaches the wire.
        ("GET", {"Content-Length": "12"}, Framing.NONE, 0, []),
        ("POST", {"Content-Length": "99"}, Framing.LENGTH, 5, ["Content-Length: 5"]),
        # Streamed without a known length: chunked, and only one framing header.
        (
            "POST",
            {"Transfer-Encoding": "gzip"},
            Framing.CHUNKED,
            0,
            ["Transfer-Encoding: chunked"],
        ),
    ],
)
def test_framing_headers(
    method: str, given: dict[str, str], framing: Framing, length: int, expected: list[str]
) -> None:
    headers = CIMultiDict({"Host": "svc", **given})
    lines = head_lines(serialize_head(method, "/p", headers, "10.0.0.1:8080", framing, length))
    framing_lines = [
        line
        for line in lines[1:]
        if line.lower().startswith(("content-length:", "transfer-encoding:"))
    ]
    assert framing_lines == expected


def test_request_line_and_header_order_and_repeats() -> None:
    headers = CIMultiDict([("Host", "svc"), ("Accept", "a"), ("X-Tag", "1"), ("X-Tag", "2")])
    head = serialize_head("GET", "/a?b=c", headers, "ignored:1", Framing.NONE)
    assert head == b"GET /a?b=c HTTP/1.1\r\nHost: svc\r\nAccept: a\r\nX-Tag: 1\r\nX-Tag: 2\r\n\r\n"


def test_host_is_added_when_missing() -> None:
    head = serialize_head("GET", "/", CIMultiDict(), "10.0.0.1:8080", Framing.NONE)
    assert head_lines(head)[1:] == ["Host: 10.0.0.1:8080"]


def test_raw_header_bytes_round_trip() -> None:
    # aiohttp's server decodes header bytes with utf-8/surrogateescape.
    raw = "caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")
    head = serialize_head("GET", "/", CIMultiDict({"X-Name": raw}), "h", Framing.NONE)
    assert b"X-Name: caf\xe9\r\n" in head


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/ HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /", {}),
        ("/", {"X-Evil": "a\r\nInjected: yes"}),
        ("/", {"X-Evil": "a\nInjected: yes"}),
        ("/", {"X-Evil": "a\rb"}),
        ("/", {"X-Evil\r\nInjected": "yes"}),
    ],
)
def test_cr_or_lf_is_refused(target: str, headers: dict[str, str]) -> None:
    with pytest.raises(UpstreamError):
        serialize_head("GET", target, CIMultiDict(headers), "h", Framing.NONE)


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "\r\n"])
def test_cr_or_lf_is_refused_in_the_authority_and_with_framing_headers(bad: str) -> None:
    with pytest.raises(UpstreamError):
        serialize_head("GET", "/", CIMultiDict(), bad, Framing.NONE)
    # Framing headers in the input take the per-header path: checked there too.
    headers = CIMultiDict({"Content-Length": "3", "X-Evil": bad})
    with pytest.raises(UpstreamError):
        serialize_head("POST", "/", headers, "h", Framing.LENGTH, 3)


def test_a_long_header_value_is_written_whole() -> None:
    token = "Bearer " + "a" * 2000
    head = serialize_head("GET", "/", CIMultiDict({"Authorization": token}), "h", Framing.NONE)
    assert head_lines(head) == ["GET / HTTP/1.1", f"Authorization: {token}", "Host: h"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["42"], 42),
        (["0"], 0),
        ([" 7 "], 7),
        (["-1"], None),
        (["4x"], None),
        (["5", "5"], 5),
        (["5", "6"], None),
    ],
)
def test_streamed_length(values: list[str], expected: int | None) -> None:
    headers: CIMultiDict[str] = CIMultiDict([("Content-Length", v) for v in values])
    assert streamed_length(headers) == expected


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("10.0.0.1", 8080, "10.0.0.1:8080"),
        ("svc.internal", 80, "svc.internal"),
        ("::1", 9000, "[::1]:9000"),
        ("[::1]", 9000, "[::1]:9000"),
    ],
)
def test_authority(host: str, port: int, expected: str) -> None:
    assert authority(host, port) == expected


def test_the_header_block_goes_last_as_it_is() -> None:
    headers = CIMultiDict([("Accept", "a")])
    block = "X-User-Id: alice\r\nX-User-Roles: user,ops"
    head = serialize_head("POST", "/", headers, "svc:1", Framing.LENGTH, 3, block)
    assert head_lines(head) == [
        "POST / HTTP/1.1",
        "Accept: a",
        "Host: svc:1",
        "Content-Length: 3",
        "X-User-Id: alice",
        "X-User-Roles: user,ops",
    ]
    assert serialize_head("GET", "/", headers, "svc:1", Framing.NONE, 0, "") == serialize_head(
        "GET", "/", headers, "svc:1", Framing.NONE
    )
