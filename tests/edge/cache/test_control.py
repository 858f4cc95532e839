"""Cache-Control as a shared cache reads it."""

from __future__ import annotations

import pytest

from edge.cache.control import ResponseControl, request_no_store, response_control
from mesh.http.cache_control import MAX_DELTA_SECONDS


def test_response_control_reads_every_directive_it_acts_on() -> None:
    control = response_control(
        [
            "public, private, no-store, no-cache, must-revalidate, proxy-revalidate",
            "max-age=10, s-maxage=20, stale-while-revalidate=30, stale-if-error=40",
        ]
    )
    assert control == ResponseControl(
        no_store=True,
        no_cache=True,
        private=True,
        public=True,
        must_revalidate=True,
        proxy_revalidate=True,
        max_age=10,
        s_maxage=20,
        stale_while_revalidate=30,
        stale_if_error=40,
    )


def test_nothing_said_is_all_defaults() -> None:
    assert response_control([]) == ResponseControl()
    assert response_control(["immutable"]) == ResponseControl()


@pytest.mark.parametrize(
    ("value", "max_age"),
    [("max-age=abc", 0), ("max-age", 0), ("max-age=-5", 0), ("max-age=1.5", 0), ("max-age=²", 0)],
)
def test_an_unreadable_max_age_makes_the_response_stale(value: str, max_age: int) -> None:
    assert response_control([value]).max_age == max_age


def test_a_huge_delta_is_capped() -> None:
    assert response_control(["max-age=99999999999999999999"]).max_age == MAX_DELTA_SECONDS


def test_an_unreadable_stale_window_is_ignored_not_zero() -> None:
    control = response_control(["stale-while-revalidate=x, stale-if-error"])
    assert (control.stale_while_revalidate, control.stale_if_error) == (None, None)


def test_qualified_private_and_no_cache_count_as_unqualified() -> None:
    control = response_control(['private="Set-Cookie", no-cache="X-Foo"'])
    assert control.private and control.no_cache


@pytest.mark.parametrize(
    ("value", "shared"),
    [
        ("max-age=60", False),
        ("public", True),
        ("s-maxage=0", True),
        ("must-revalidate", True),
        ("proxy-revalidate", False),
    ],
)
def test_shared_is_what_rfc_9111_3_5_allows(value: str, shared: bool) -> None:
    assert response_control([value]).shared is shared


@pytest.mark.parametrize(
    ("value", "forbids"),
    [
        ("max-age=60", False),
        ("no-cache", True),
        ("must-revalidate", True),
        ("proxy-revalidate", True),
        ("s-maxage=5", False),  # the route's windows only: see edge.cache.freshness
    ],
)
def test_forbids_stale(value: str, forbids: bool) -> None:
    assert response_control([value]).forbids_stale is forbids


def test_request_no_store() -> None:
    assert request_no_store(["no-store"])
    assert request_no_store(["max-age=0", "No-Store"])
    assert not request_no_store(["no-cache, max-age=0"])
    assert not request_no_store([])
