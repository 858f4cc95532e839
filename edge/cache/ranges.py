"""A client's byte range answered from a stored response (RFC 9110 §14, §13.1.5; pure).

A GET with ``Range: bytes=...`` of a fresh stored 200 gets the bytes it asks for:

* one range (``0-499``, ``500-``, or the last N bytes, ``-500``) that holds at
  least one byte of the body: a 206 with ``Content-Range: bytes 0-499/1234``
  (a range running past the end is cut at it);
* a range that holds none (it starts at or past the end, or asks for the last
  0 bytes): a 416 with ``Content-Range: bytes */1234``;
* several ranges, a unit other than ``bytes``, or a field that cannot be read:
  the whole body, a 200 (RFC 9110 §14.2 lets a server ignore ``Range``; nginx
  and Envoy also send one range at most);
* an ``If-Range`` the stored response does not meet: the whole body, a 200.
  An entity tag meets it only by strong comparison (a weak tag never does), a
  date only when it is the stored ``Last-Modified`` itself.
"""

from __future__ import annotations

from typing import Final, Literal

from mesh.http.cache_control import digits

UNSATISFIABLE: Final = "unsatisfiable"
_HUGE = 10**18
"""Where a position of more digits than this has is taken to lie: past any body."""


def requested_range(field: str, length: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The first and last positions (both included) of the one range ``Range: field``
    asks of a body of ``length`` bytes; :data:`UNSATISFIABLE` when it holds no byte of
    it; None when the whole body is to be sent (see the module docstring)."""
    unit, equals, ranges = field.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    first_text, dash, last_text = specs[0].partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash:
        return None
    if not first_text:  # the last N bytes
        if not digits(last_text):
            return None
        suffix = _position(last_text)
        if suffix == 0 or length == 0:
            return UNSATISFIABLE
        return max(0, length - suffix), length - 1
    if not digits(first_text) or (last_text and not digits(last_text)):
        return None
    first = _position(first_text)
    last = _position(last_text) if last_text else _HUGE
    if last < first:
        return None  # not a valid range: the field is ignored (RFC 9110 §14.1.1)
    if first >= length:
        return UNSATISFIABLE
    return first, min(last, length - 1)


def if_range_holds(field: str | None, etag: str | None, last_modified: str | None) -> bool:
    """Whether a request's ``If-Range`` (None: it has none) lets its range apply to a
    stored response with these validators."""
    if field is None:
        return True
    field = field.strip()
    if field.startswith(('"', "W/")):
        return etag is not None and not field.startswith("W/") and field == etag.strip()
    return last_modified is not None and field == last_modified.strip()


def content_range(first: int, last: int, length: int) -> str:
    """The ``Content-Range`` of a 206 holding bytes ``first`` to ``last`` of ``length``."""
    return f"bytes {first}-{last}/{length}"


def unsatisfied_range(length: int) -> str:
    """The ``Content-Range`` of a 416 to a request for a body of ``length`` bytes."""
    return f"bytes */{length}"


def _position(text: str) -> int:
    return int(text) if len(text) <= 18 else _HUGE
