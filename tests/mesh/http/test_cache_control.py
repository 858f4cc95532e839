"""Cache-Control field values split into directives."""

from __future__ import annotations

import pytest

from mesh.http.cache_control import MAX_DELTA_SECONDS, delta_seconds, digits, directives


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {}),
        (["max-age=60"], {"max-age": "60"}),
        (["Public, MAX-AGE=60"], {"public": None, "max-age": "60"}),
        (["max-age = 60 , no-cache"], {"max-age": "60", "no-cache": None}),
        # Several lines are one list; the first value of a directive wins.
        (["max-age=60", "max-age=5, s-maxage=7"], {"max-age": "60", "s-maxage": "7"}),
        # Quoted arguments: unquoted, commas and escapes inside them kept.
        (
            ['private="Set-Cookie, X-Foo", max-age=1'],
            {"private": "Set-Cookie, X-Foo", "max-age": "1"},
        ),
        (['no-cache="a\\"b"'], {"no-cache": 'a"b'}),
        ([" , ,max-age=3,, "], {"max-age": "3"}),
        (['max-age="30"'], {"max-age": "30"}),
    ],
)
def test_directives(values: list[str], expected: dict[str, str | None]) -> None:
    assert directives(values) == expected


@pytest.mark.parametrize(
    ("argument", "seconds"),
    [("60", 60), (None, 0), ("", 0), ("abc", 0), ("-5", 0), ("1.5", 0), ("²", 0), ("٣", 0)],
)
def test_delta_seconds_unreadable_is_zero(argument: str | None, seconds: int) -> None:
    assert delta_seconds(argument) == seconds


def test_delta_seconds_capped() -> None:
    assert delta_seconds("99999999999999999999") == MAX_DELTA_SECONDS


def test_digits_are_ascii_only() -> None:
    assert digits("0123")
    assert not digits("")
    assert not digits("²")
    assert not digits("1 ")
