"""Targeted cache control (RFC 9213): which field decides, and how its members read."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from edge.cache.control import ResponseControl
from edge.cache.targeted import DEFAULT_FIELDS, targeted_control
from mesh.http.cache_control import MAX_DELTA_SECONDS

TARGETS = ("meshgate-cache-control", "cdn-cache-control")


def control(*headers: tuple[str, str], fields: tuple[str, ...] = TARGETS) -> ResponseControl | None:
    return targeted_control(CIMultiDict(headers), fields)


def test_the_default_target_list_is_meshgates_own_field() -> None:
    assert DEFAULT_FIELDS == ("Meshgate-Cache-Control",)


def test_no_targeted_field_leaves_the_decision_to_cache_control() -> None:
    assert control(("Cache-Control", "max-age=60")) is None
    assert control(("CDN-Cache-Control", "max-age=60"), fields=()) is None
    # A targeted field not on the list changes nothing (RFC 9213 §2.2).
    assert control(("Other-Cache-Control", "max-age=60")) is None


def test_the_first_field_on_the_list_with_a_valid_value_decides() -> None:
    both = (("CDN-Cache-Control", "max-age=10"), ("Meshgate-Cache-Control", "max-age=20"))
    assert control(*both) == ResponseControl(max_age=20)
    assert control(*both, fields=("cdn-cache-control", "meshgate-cache-control")) == (
        ResponseControl(max_age=10)
    )


@pytest.mark.parametrize(
    "invalid",
    [
        "Max-Age=20",  # keys are lower case in a Structured Field
        "max-age=20;",  # a parameter without a name
        "max-age=20, ,",  # an empty member
        "max-age=\u00e9",  # not ASCII
        "",  # empty: not a value
    ],
)
def test_an_invalid_or_empty_field_is_passed_over_for_the_next(invalid: str) -> None:
    found = control(("Meshgate-Cache-Control", invalid), ("CDN-Cache-Control", "max-age=10"))
    assert found == ResponseControl(max_age=10)
    assert control(("Meshgate-Cache-Control", invalid)) is None


def test_field_lines_are_combined_into_one_dictionary() -> None:
    found = control(("Meshgate-Cache-Control", "max-age=20"), ("Meshgate-Cache-Control", "public"))
    assert found == ResponseControl(max_age=20, public=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no-store", ResponseControl(no_store=True)),
        ("no-store=?0, max-age=5", ResponseControl(max_age=5)),  # false: not set
        (
            'private="Set-Cookie", no-cache="Authorization"',
            ResponseControl(private=True, no_cache=True),
        ),
        ('public="x", max-age=5', ResponseControl(max_age=5)),  # only true sets a flag
        (
            "public, must-revalidate, proxy-revalidate, s-maxage=30",
            ResponseControl(public=True, must_revalidate=True, proxy_revalidate=True, s_maxage=30),
        ),
        ("max-age=3.5", ResponseControl(max_age=0)),  # a Decimal: stale, not fresh
        ("max-age=soon", ResponseControl(max_age=0)),  # a Token
        ('max-age="60"', ResponseControl(max_age=0)),  # a String
        ("max-age=-1", ResponseControl(max_age=0)),
        ("max-age", ResponseControl(max_age=0)),  # Boolean true: no seconds given
        ("max-age=999999999999999", ResponseControl(max_age=MAX_DELTA_SECONDS)),
        (
            "max-age=5, stale-while-revalidate=30, stale-if-error=60",
            ResponseControl(max_age=5, stale_while_revalidate=30, stale_if_error=60),
        ),
        ("max-age=5, stale-if-error=1.5", ResponseControl(max_age=5)),  # ignored
        ("max-age=5;x=1, ext=(a b), other", ResponseControl(max_age=5)),  # parameters, extensions
    ],
)
def test_members_map_to_directives(value: str, expected: ResponseControl) -> None:
    assert control(("Meshgate-Cache-Control", value)) == expected
