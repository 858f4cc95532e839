"""X-Request-Id: a well-formed client id is kept, anything else is replaced."""

from __future__ import annotations

import re

import pytest

from mesh.http.request_id import HEADER, accept_or_generate

_GENERATED = re.compile(r"^[0-9a-f]{32}$")


def test_header_name() -> None:
    assert HEADER == "X-Request-Id"


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("abcdefgh", id="min-length-8"),
        pytest.param("a" * 128, id="max-length-128"),
        pytest.param("0f8fad5b-d9cb-469f-a165-70867728950e", id="uuid"),
        pytest.param("req.1:2_3-4", id="dot-colon-underscore-dash"),
        pytest.param("ABCDEFGH12345678", id="upper-case-and-digits"),
    ],
)
def test_well_formed_id_is_kept(incoming: str) -> None:
    assert accept_or_generate(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("abcdefg", id="too-short-7"),
        pytest.param("a" * 129, id="too-long-129"),
        pytest.param("abcd efgh", id="space"),
        pytest.param("abcdefgh\r\nX-Evil: 1", id="crlf-header-splitting"),
        pytest.param("abcdefgh/../", id="slash"),
        pytest.param("abcdefgh\"'<>", id="quotes-and-angle-brackets"),
        pytest.param("idé-12345678", id="non-ascii"),
        pytest.param("\nabcdefgh", id="leading-newline"),
    ],
)
def test_malformed_id_is_replaced_by_a_random_one(incoming: str | None) -> None:
    out = accept_or_generate(incoming)
    assert out != incoming
    assert _GENERATED.match(out)


@pytest.mark.parametrize("incoming", ["abcdefgh\n", "a" * 128 + "\n"], ids=["min", "max"])
def test_trailing_newline_is_not_accepted(incoming: str) -> None:
    out = accept_or_generate(incoming)
    assert "\n" not in out
    assert _GENERATED.match(out)


def test_generated_ids_are_valid_and_unique() -> None:
    ids = {accept_or_generate(None) for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert _GENERATED.match(value)
        # A generated id is itself well-formed, so the next hop keeps it.
        assert accept_or_generate(value) == value
