"""Byte ranges of a stored body: which range a ``Range`` field asks for, and ``If-Range``."""

from __future__ import annotations

import pytest

from edge.cache.ranges import (
    UNSATISFIABLE,
    content_range,
    if_range_holds,
    requested_range,
    unsatisfied_range,
)


@pytest.mark.parametrize(
    ("field", "length", "expected"),
    [
        pytest.param("bytes=0-499", 1000, (0, 499), id="first-500"),
        pytest.param("bytes=500-999", 1000, (500, 999), id="second-500"),
        pytest.param("bytes=500-", 1000, (500, 999), id="open-ended"),
        pytest.param("bytes=-200", 1000, (800, 999), id="last-200"),
        pytest.param("bytes=-5000", 1000, (0, 999), id="suffix-longer-than-body"),
        pytest.param("bytes=900-5000", 1000, (900, 999), id="cut-at-the-end"),
        pytest.param("bytes=999-999", 1000, (999, 999), id="last-byte"),
        pytest.param(" Bytes = 1 - 2 ", 1000, (1, 2), id="case-and-blanks"),
        pytest.param("bytes=0-1,", 1000, (0, 1), id="empty-list-element"),
        pytest.param("bytes=1000-", 1000, UNSATISFIABLE, id="starts-at-the-end"),
        pytest.param("bytes=5000-6000", 1000, UNSATISFIABLE, id="past-the-end"),
        pytest.param("bytes=-0", 1000, UNSATISFIABLE, id="last-zero-bytes"),
        pytest.param("bytes=0-", 0, UNSATISFIABLE, id="empty-body"),
        pytest.param("bytes=-5", 0, UNSATISFIABLE, id="empty-body-suffix"),
        pytest.param("bytes=" + "9" * 40 + "-", 1000, UNSATISFIABLE, id="huge-first"),
        pytest.param("bytes=10-" + "9" * 40, 1000, (10, 999), id="huge-last"),
        pytest.param("bytes=0-1,5-6", 1000, None, id="several-ranges-whole"),
        pytest.param("bytes=5-1", 1000, None, id="last-before-first-invalid"),
        pytest.param("items=0-1", 1000, None, id="other-unit"),
        pytest.param("bytes 0-1", 1000, None, id="no-equals"),
        pytest.param("bytes=", 1000, None, id="no-range"),
        pytest.param("bytes=a-b", 1000, None, id="not-digits"),
        pytest.param("bytes=1²-3", 1000, None, id="unicode-digit"),
        pytest.param("bytes=-", 1000, None, id="dash-alone"),
        pytest.param("bytes=7", 1000, None, id="no-dash"),
    ],
)
def test_the_range_asked_for(
    field: str, length: int, expected: tuple[int, int] | str | None
) -> None:
    assert requested_range(field, length) == expected


@pytest.mark.parametrize(
    ("field", "etag", "last_modified", "holds"),
    [
        (None, None, None, True),
        ('"v1"', '"v1"', None, True),
        ('"v1"', '"v2"', None, False),
        ('"v1"', 'W/"v1"', None, False),  # strong comparison: a weak tag never matches
        ('W/"v1"', 'W/"v1"', None, False),
        ('"v1"', None, "Sun, 06 Nov 1994 08:49:37 GMT", False),
        ("Sun, 06 Nov 1994 08:49:37 GMT", None, "Sun, 06 Nov 1994 08:49:37 GMT", True),
        ("Sun, 06 Nov 1994 08:49:38 GMT", None, "Sun, 06 Nov 1994 08:49:37 GMT", False),
        ("Sun, 06 Nov 1994 08:49:37 GMT", '"v1"', None, False),
    ],
)
def test_if_range_lets_the_range_apply_only_to_the_same_stored_response(
    field: str | None, etag: str | None, last_modified: str | None, holds: bool
) -> None:
    assert if_range_holds(field, etag, last_modified) is holds


def test_content_range_fields() -> None:
    assert content_range(0, 499, 1234) == "bytes 0-499/1234"
    assert unsatisfied_range(1234) == "bytes */1234"
