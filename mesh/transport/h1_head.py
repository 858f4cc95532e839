"""HTTP/1.1 request heads for the fast transport: framing decisions and serialisation.

Pure functions, no I/O. The transport owns the message framing: whatever
``Content-Length`` / ``Transfer-Encoding`` the caller's headers carry, the
head written on the wire describes the body that is actually sent.
"""

from __future__ import annotations

import enum

from multidict import CIMultiDict, istr

from mesh.transport.base import UpstreamError

# Methods whose requests are expected to carry a body: RFC 9110 §8.6 asks for
# "Content-Length: 0" on them when there is none, and some servers (and
# proxies in front of them) answer 411 without it.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})
# istr look-up keys: their case-folded form is computed once, not per request.
_CONTENT_LENGTH = istr("Content-Length")
_TRANSFER_ENCODING = istr("Transfer-Encoding")
_HOST = istr("Host")
_header_line = ": ".join
"""``"name: value"`` from a ``(name, value)`` item."""


class Framing(enum.Enum):
    """How the request body is delimited on the wire."""

    NONE = "none"
    """No body; no framing header unless the method expects a body (then ``Content-Length: 0``)."""
    LENGTH = "length"
    """``Content-Length: n`` followed by exactly n bytes."""
    CHUNKED = "chunked"
    """``Transfer-Encoding: chunked``: the length is not known up front."""


# Module constants: an Enum class attribute look-up goes through the metaclass.
_LENGTH = Framing.LENGTH
_CHUNKED = Framing.CHUNKED


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
    block: str = "",
) -> bytes:
    """The request line and header block, ending with the blank line.

    ``authority`` becomes the Host header when ``headers`` has none (HTTP/1.1
    requires one). Framing headers in ``headers`` are replaced by the ones
    ``framing``/``length`` call for. No ``Connection`` header is written:
    HTTP/1.1 connections are persistent by default, which is what the pool wants.

    ``block`` (rendered header lines joined by CRLF, see
    :attr:`mesh.exchange.Exchange.upstream_header_block`) goes after the other
    headers as it is: its writer vouches for its names and values.

    Raises UpstreamError (before anything is sent) when a header or the target
    contains CR or LF, which would let a caller smuggle extra headers or a
    second request onto the connection.
    """
    lines = [f"{method} {target} HTTP/1.1"]
    # Each "name: value" line is built by str.join in C (map, no bytecode per
    # header): every request pays this, and its cost grows with the header count.
    if _CONTENT_LENGTH in headers or _TRANSFER_ENCODING in headers:
        lines += [
            f"{name}: {value}" for name, value in headers.items() if name.lower() not in _FRAMING
        ]
    else:
        lines += map(_header_line, headers.items())
    if _HOST not in headers:
        lines.append("Host: " + authority)
    if framing is _LENGTH:
        lines.append(f"Content-Length: {length}")
    elif framing is _CHUNKED:
        lines.append("Transfer-Encoding: chunked")
    elif method in _BODY_METHODS:
        lines.append("Content-Length: 0")
    # The lines joined with nothing between them hold a CR or LF only if a
    # header or the target does. ``in`` finds one character with memchr, a
    # fraction of an instruction per byte: counting CRs and LFs in the joined
    # head cost ~5 per byte, ~8k instructions per request with a bearer token.
    probe = "".join(lines)
    if "\n" in probe or "\r" in probe:
        raise UpstreamError("request target or a header contains CR or LF")
    # Two empty lines at the end: the last header's CRLF and the blank line.
    lines += (block, "", "") if block else ("", "")
    # surrogateescape round-trips the raw bytes aiohttp's server decoded the
    # incoming headers from (it decodes with utf-8/surrogateescape too).
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def authority(host: str, port: int) -> str:
    """The Host header value for ``host:port`` (IPv6 literals bracketed, :80 omitted)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port == 80 else f"{host}:{port}"
