"""HTTP/1.1 request heads for the fast transport: framing decisions and serialisation.

Pure functions, no I/O. The transport owns the message framing: whatever
``Content-Length`` / ``Transfer-Encoding`` the caller's headers carry, the
head written on the wire describes the body that is actually sent.
"""

from __future__ import annotations

import enum

from multidict import CIMultiDict

from mesh.transport.base import UpstreamError

# Methods whose requests are expected to carry a body: RFC 9110 §8.6 asks for
# "Content-Length: 0" on them when there is none, and some servers (and
# proxies in front of them) answer 411 without it.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class Framing(enum.Enum):
    """How the request body is delimited on the wire."""

    NONE = "none"
    """No body; no framing header unless the method expects a body (then ``Content-Length: 0``)."""
    LENGTH = "length"
    """``Content-Length: n`` followed by exactly n bytes."""
    CHUNKED = "chunked"
    """``Transfer-Encoding: chunked``: the length is not known up front."""


def streamed_length(headers: CIMultiDict[str]) -> int | None:
    """The body length a streamed request announced, or None when it is unknown.

    A Content-Length that is not a plain non-negative integer (or several that
    disagree) is treated as unknown, so the body goes out chunked rather than
    with a framing the upstream would misread.
    """
    values = headers.getall("Content-Length", ())
    if not values or any(v != values[0] for v in values):
        return None
    value = values[0].strip()
    return int(value) if value.isdigit() else None


def serialize_head(
    method: str,
    target: str,
    headers: CIMultiDict[str],
    authority: str,
    framing: Framing,
    length: int = 0,
) -> bytes:
    """The request line and header block, ending with the blank line.

    ``authority`` becomes the Host header when ``headers`` has none (HTTP/1.1
    requires one). Framing headers in ``headers`` are replaced by the ones
    ``framing``/``length`` call for. No ``Connection`` header is written:
    HTTP/1.1 connections are persistent by default, which is what the pool wants.

    Raises UpstreamError (before anything is sent) when a header or the target
    contains CR or LF, which would let a caller smuggle extra headers or a
    second request onto the connection.
    """
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    lines = 1
    # The common case (a GET without framing headers) skips the per-name check.
    if "Content-Length" in headers or "Transfer-Encoding" in headers:
        for name, value in headers.items():
            if name.lower() not in _FRAMING:
                parts += (name, ": ", value, "\r\n")
                lines += 1
    else:
        for name, value in headers.items():
            parts += (name, ": ", value, "\r\n")
            lines += 1
    if "Host" not in headers:
        parts += ("Host: ", authority, "\r\n")
        lines += 1
    if framing is Framing.LENGTH:
        parts += ("Content-Length: ", str(length), "\r\n")
        lines += 1
    elif framing is Framing.CHUNKED:
        parts.append("Transfer-Encoding: chunked\r\n")
        lines += 1
    elif method in _BODY_METHODS:
        parts.append("Content-Length: 0\r\n")
        lines += 1
    parts.append("\r\n")
    lines += 1
    head = "".join(parts)
    # Every CR and LF must be one this function wrote: two counts over one
    # string are cheaper than scanning each header value separately.
    if head.count("\n") != lines or head.count("\r") != lines:
        raise UpstreamError("request target or a header contains CR or LF")
    # surrogateescape round-trips the raw bytes aiohttp's server decoded the
    # incoming headers from (it decodes with utf-8/surrogateescape too).
    return head.encode("utf-8", "surrogateescape")


def authority(host: str, port: int) -> str:
    """The Host header value for ``host:port`` (IPv6 literals bracketed, :80 omitted)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port == 80 else f"{host}:{port}"
