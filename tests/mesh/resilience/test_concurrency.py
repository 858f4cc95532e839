"""Requests in flight per service and the refusal over a limit (mesh/resilience/concurrency.py)."""

from __future__ import annotations

from mesh.resilience.concurrency import ServiceConcurrency


def test_a_service_at_its_limit_refuses_until_one_leaves() -> None:
    refused: list[str] = []
    counts = ServiceConcurrency(2, on_overflow=refused.append)
    assert counts.enter("users") is None
    assert counts.enter("users") is None
    assert counts.enter("users") == 2  # the limit, and not counted as in flight
    assert counts.active == {"users": 2}
    assert (counts.overflows, refused) == ({"users": 1}, ["users"])
    counts.leave("users")
    assert counts.enter("users") is None
    assert counts.active == {"users": 2}


def test_services_are_counted_apart_and_a_service_may_have_its_own_limit() -> None:
    counts = ServiceConcurrency(1, {"legacy": 3})
    assert counts.enter("users") is None
    assert counts.enter("users") == 1
    assert [counts.enter("legacy") for _ in range(4)] == [None, None, None, 3]
    assert counts.enter("orders") is None  # users and legacy at their limits: not orders'
    assert (counts.limit("users"), counts.limit("legacy")) == (1, 3)


def test_without_a_limit_every_request_is_admitted_and_counted() -> None:
    counts = ServiceConcurrency(None, {"legacy": 1})
    assert all(counts.enter("users") is None for _ in range(1000))
    assert counts.active["users"] == 1000 and counts.limit("users") is None
    assert counts.enter("legacy") is None
    assert counts.enter("legacy") == 1


def test_the_last_to_leave_removes_the_service_and_view_shows_what_is_known() -> None:
    counts = ServiceConcurrency(1, {"legacy": 5})
    counts.enter("users")
    counts.enter("users")
    counts.leave("users")
    assert counts.active == {}
    assert counts.view() == {
        "legacy": {"limit": 5, "active": 0, "overflows": 0},
        "users": {"limit": 1, "active": 0, "overflows": 1},
    }


def test_new_limits_keep_the_requests_in_flight_counted() -> None:
    counts = ServiceConcurrency(4)
    for _ in range(3):
        counts.enter("users")
    counts.configure(2, {})
    # Three in flight, the new limit two: refused until two have left.
    assert counts.enter("users") == 2
    counts.leave("users")
    assert counts.enter("users") == 2
    counts.leave("users")
    assert counts.enter("users") is None
    counts.configure(None, {"users": 1})
    assert counts.enter("users") == 1
    assert counts.enter("orders") is None
