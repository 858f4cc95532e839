"""HTTP dates in their three forms."""

from __future__ import annotations

import pytest

from mesh.http.dates import http_date


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime, no zone: GMT
    ],
)
def test_http_dates_in_every_form(value: str) -> None:
    assert http_date(value) == 784111777.0


@pytest.mark.parametrize(
    "value", [None, "", "0", "-1", "yesterday", "Sun, 99 Nov 1994 08:49:37 GMT"]
)
def test_unreadable_dates_are_none(value: str | None) -> None:
    assert http_date(value) is None
