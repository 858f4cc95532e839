"""Request-path normalisation: one canonical path for every decision and for the upstream.

The rules (RFC 3986 §6.2.2 plus what proxies such as Envoy do with
``normalize_path`` and ``merge_slashes``):

* percent-encodings of unreserved characters are decoded (``%2e`` → ``.``,
  ``%7E`` → ``~``); every other encoding is kept, its hex upper-cased;
* encoded ``/`` (``%2F``), encoded ``\\`` (``%5C``), a literal ``\\`` and NUL
  (``%00``) are rejected: they mean different paths to different servers;
* runs of ``/`` are merged into one;
* ``.`` and ``..`` segments are removed; ``..`` never climbs above ``/``.

So ``/api/users/../orders/echo`` and ``/api/users/%2e%2e/orders/echo`` both
become ``/api/orders/echo``, ``//api//users/echo`` becomes ``/api/users/echo``,
and ``/api/users%2F..%2Forders`` or ``/api/users/%00`` are refused with 400.
"""

from __future__ import annotations

import re
from functools import lru_cache

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_FORBIDDEN_ENCODED = frozenset({"2F", "5C", "00"})
# Characters that need no work at all: the fast path skips the full algorithm.
_PLAIN = re.compile(r"(?:/[A-Za-z0-9\-_~!$&'()*+,;=:@]+(?:\.[A-Za-z0-9\-_~!$&'()*+,;=:@]+)*)+/?|/")


class PathRejected(ValueError):
    """The path cannot be normalised safely; ``reason`` is shown to the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def split_target(raw_target: str) -> tuple[str, str]:
    """``/a/b?x=1`` → (``/a/b``, ``x=1``); a fragment, if any, is dropped."""
    target = raw_target.split("#", 1)[0]
    path, _, query = target.partition("?")
    return path, query


@lru_cache(maxsize=4096)
def normalise_path(raw_path: str) -> str:
    """Return the canonical form of ``raw_path`` (no query). Raises PathRejected.

    The result always starts with ``/``. It is still percent-encoded (only
    unreserved characters were decoded), so it can be sent upstream as is.
    """
    if _PLAIN.fullmatch(raw_path) and "//" not in raw_path:
        return raw_path
    if not raw_path.startswith("/"):
        if raw_path == "*" or not raw_path:
            raise PathRejected("the request target must be an absolute path")
        raise PathRejected("the request target must start with '/'")
    if "\\" in raw_path:
        raise PathRejected("backslash in path")
    if "\x00" in raw_path:
        raise PathRejected("NUL in path")
    decoded = _PCT.sub(_decode_unreserved, raw_path)
    if "%" in decoded and _has_bad_percent(decoded):
        raise PathRejected("malformed percent-encoding in path")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = decoded.endswith("/") or decoded.endswith("/.") or decoded.endswith("/..")
    out = "/" + "/".join(segments)
    if trailing and segments:
        out += "/"
    return out


def _decode_unreserved(match: re.Match[str]) -> str:
    hexpair = match.group(1).upper()
    if hexpair in _FORBIDDEN_ENCODED:
        names = {"2F": "encoded '/' (%2F)", "5C": "encoded '\\' (%5C)", "00": "encoded NUL (%00)"}
        raise PathRejected(f"{names[hexpair]} in path")
    char = chr(int(hexpair, 16))
    return char if char in _UNRESERVED else f"%{hexpair}"


def _has_bad_percent(value: str) -> bool:
    i = value.find("%")
    while i != -1:
        if not _PCT.match(value, i):
            return True
        i = value.find("%", i + 1)
    return False
