"""Compressing responses on their way to the client (gzip), and when not to.

:class:`ResponseCompression` decides, for one response whose status and headers
are known, whether its body is gzipped, and edits those headers to match:

* only for a client whose ``Accept-Encoding`` takes gzip (RFC 9110 §12.5.3:
  ``gzip`` or ``x-gzip`` with a non-zero weight, or ``*`` when gzip is not
  named; ``gzip;q=0`` refuses it);
* only a body worth it: a configured content type, at least ``min_size``
  bytes when its length is declared (a body of unknown length is streamed,
  and compressed);
* never a body already encoded (``Content-Encoding``), a part of one (206,
  ``Content-Range``), one the service forbids changing
  (``Cache-Control: no-transform``), a body-less answer (HEAD, 1xx, 204,
  304), or ``text/event-stream``, whose events must reach the client as they
  are sent (zlib holds bytes back until it has enough to compress);
* every response that could be compressed gets ``Vary: Accept-Encoding``,
  compressed or not, so a cache never serves one client's encoding to
  another; a compressed one's strong ``ETag`` becomes weak (the bytes differ,
  as nginx does).

The bytes are compressed with zlib at the configured level, in the event loop
as nginx does: a whole small body at once (its ``Content-Length`` the
compressed one's), a streamed body chunk by chunk as it arrives (sent chunked:
it stays streamed). Compressing in a thread instead (aiohttp's writer sends
any chunk over 4 KiB to one) cost more than the compression itself when
measured on one core (``bench/README.md``, "Compression").
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from multidict import CIMultiDict

from mesh.exchange import merge_vary

GZIP: Final = "gzip"
NEVER_COMPRESSED: Final = frozenset({"text/event-stream"})
"""Content types that are never compressed, whatever is configured."""
_BODYLESS_STATUS = frozenset({204, 304})
_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's window bits for a gzip header and trailer."""
_MEMO_MAX = 256
"""``Accept-Encoding`` values remembered (clients send few distinct ones)."""


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a request with this ``Accept-Encoding`` takes a gzipped answer."""
    if not accept_encoding:
        return False
    named: float | None = None
    wildcard: float | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        weight = _weight(params)
        if coding in ("gzip", "x-gzip"):
            named = weight if named is None else max(named, weight)
        elif coding == "*":
            wildcard = weight
    if named is not None:
        return named > 0
    return wildcard is not None and wildcard > 0


def _weight(params: str) -> float:
    """The ``q`` of a coding's parameters (1 without one; 0 when it cannot be read)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def media_type(content_type: str | None) -> str:
    """``text/html; charset=utf-8`` → ``text/html``; "" when absent."""
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is not a content-type pattern this module matches, or None.

    Patterns are ``type/subtype``, ``type/*`` or ``type/*+suffix`` (e.g.
    ``application/*+json``)."""
    kind, slash, subtype = pattern.partition("/")
    if not slash or not kind or not subtype or "*" in kind or " " in pattern or ";" in pattern:
        return f"{pattern!r} is not a media type (type/subtype, type/* or type/*+suffix)"
    if "*" in subtype and not (subtype == "*" or (subtype.startswith("*+") and len(subtype) > 2)):
        return f"{pattern!r}: a wildcard subtype is * or *+suffix"
    if media_type(pattern) in NEVER_COMPRESSED or (kind == "text" and subtype == "*"):
        return (
            f"{pattern!r} would take in text/event-stream, which is never compressed "
            "(each event must reach the client when it is sent): list text types one by one"
        )
    return None


class ContentTypes:
    """Media types matched by exact name, ``type/*`` or ``type/*+suffix``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[str] = set()
        kinds: set[str] = set()
        suffixes: set[str] = set()
        for pattern in (p.lower() for p in patterns):
            kind, _, subtype = pattern.partition("/")
            if subtype == "*":
                kinds.add(kind)
            elif subtype.startswith("*+"):
                suffixes.add(subtype[1:])  # "+json"
            else:
                exact.add(pattern)
        self._exact = frozenset(exact)
        self._kinds = frozenset(kinds)
        self._suffixes = tuple(suffixes)

    def __contains__(self, media: str) -> bool:
        if media in NEVER_COMPRESSED:
            return False
        if media in self._exact:
            return True
        kind, _, subtype = media.partition("/")
        return kind in self._kinds or (bool(self._suffixes) and subtype.endswith(self._suffixes))


def weak_etag(value: str) -> str:
    """A strong ``ETag`` made weak (``"x"`` → ``W/"x"``); a weak one as it is."""
    return value if value.startswith("W/") else f"W/{value}"


class ResponseCompression:
    """The decision of one configuration; see the module docstring."""

    def __init__(
        self,
        content_types: Iterable[str],
        min_size: int,
        on_compress: Callable[[], None] | None = None,
        level: int = 6,
    ) -> None:
        """``on_compress`` is called once for every response that is compressed; ``level``
        is zlib's, 1 (fastest) to 9 (smallest)."""
        self.content_types = ContentTypes(content_types)
        self.min_size = min_size
        self.level = level
        self._on_compress = on_compress
        self._accepts: dict[str, bool] = {}

    def _accepts_gzip(self, accept_encoding: str | None) -> bool:
        if not accept_encoding:
            return False
        known = self._accepts.get(accept_encoding)
        if known is None:
            if len(self._accepts) >= _MEMO_MAX:
                self._accepts.clear()
            known = self._accepts[accept_encoding] = accepts_gzip(accept_encoding)
        return known

    def compressible(self, status: int, headers: Mapping[str, str], size: int | None) -> bool:
        """Whether a response with this status, headers and declared length (None: not
        declared) may be compressed, whoever asks; bodyless methods aside."""
        if status < 200 or status in _BODYLESS_STATUS or status == 206:
            return False
        if size is not None and (size == 0 or size < self.min_size):
            return False
        encoding = headers.get("Content-Encoding")
        if encoding is not None and encoding.strip().lower() != "identity":
            return False
        if "Content-Range" in headers:
            return False
        cache_control = headers.get("Cache-Control")
        if cache_control is not None and "no-transform" in cache_control.lower():
            return False
        return media_type(headers.get("Content-Type")) in self.content_types

    def decide(
        self,
        method: str,
        accept_encoding: str | None,
        status: int,
        headers: CIMultiDict[str],
        size: int | None,
        *,
        sent: bool = True,
    ) -> bool:
        """True when the body is to be gzipped (the caller turns the writer's compression
        on and sends no ``Content-Length``). Edits ``headers``: ``Vary`` whenever the
        response could be compressed, a weak ``ETag`` when it is. ``sent`` False: the
        body is not sent after all (the edge's cache answers 304 with the headers the
        answer would have had), so no compression is counted."""
        if not self.compressible(status, headers, size):
            return False
        headers["Vary"] = merge_vary(headers.get("Vary"), "Accept-Encoding")
        if method == "HEAD" or not self._accepts_gzip(accept_encoding):
            return False
        etag = headers.get("ETag")
        if etag is not None:
            headers["ETag"] = weak_etag(etag)
        if sent and self._on_compress is not None:
            self._on_compress()
        return True

    def compressor(self) -> zlib._Compress:
        """A gzip stream for one body: ``compress(chunk)`` for each piece, then ``flush()``."""
        return zlib.compressobj(self.level, zlib.DEFLATED, _GZIP_WBITS)

    def gzip(self, body: bytes) -> bytes:
        """A whole body gzipped."""
        compressor = self.compressor()
        return compressor.compress(body) + compressor.flush()
