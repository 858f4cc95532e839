"""Outlier detection (mesh/resilience/outliers.py): ejection, its cap, readmission, with an
injected clock and no jitter."""

from __future__ import annotations

from mesh.resilience.breaker import BreakerSettings, BreakerState
from mesh.resilience.ejection import MAX_AVOIDANCE_S
from mesh.resilience.outcome import CallError, CallOutcome
from mesh.resilience.outliers import OutlierDetector, OutlierPolicy
from mesh.snapshot import Instance

SETTINGS = BreakerSettings(consecutive_failures=3, open_base_s=5, open_jitter=0, half_open_trials=2)
ERROR = CallOutcome.response(500)
OK = CallOutcome.response(200)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def instances(*ids: str, service: str = "users") -> tuple[Instance, ...]:
    return tuple(
        Instance(id=i, service=service, address="10.0.0.1", port=n) for n, i in enumerate(ids)
    )


def detector(share: float = 0.5) -> tuple[OutlierDetector, Clock, list[tuple[str, str, str]]]:
    clock = Clock()
    seen: list[tuple[str, str, str]] = []
    found = OutlierDetector(
        SETTINGS,
        share,
        clock=clock,
        random_unit=lambda: 0.0,
        on_transition=lambda s, i, old, new: seen.append((s, i, new.value)),
    )
    return found, clock, seen


def call(
    outliers: OutlierDetector, instance: str, outcome: CallOutcome, service: str = "users"
) -> bool:
    """One call to ``instance``: False when its breaker took none."""
    breaker, permit = outliers.admit(service, instance)
    if permit is None:
        return False
    breaker.record(permit, outcome)
    return True


def test_with_nothing_ejected_the_instances_are_handed_back_as_they_are() -> None:
    outliers, _, _ = detector()
    pool = instances("a", "b")
    for _ in range(5):
        call(outliers, "a", OK)
    call(outliers, "b", ERROR)  # one failure ejects nothing
    assert outliers.eligible("users", pool) is pool


def test_consecutive_failures_eject_an_instance_for_the_open_period() -> None:
    outliers, clock, seen = detector()
    pool = instances("a", "b", "c", "d")
    for _ in range(3):
        assert call(outliers, "b", ERROR)
    assert seen == [("users", "b", "open")]
    assert [i.id for i in outliers.eligible("users", pool)] == ["a", "c", "d"]
    assert outliers.ejections == {"users": 1}
    assert outliers.ejected_count("users") == 1
    assert not call(outliers, "b", OK)  # open: takes no call
    clock.now += 4.9
    assert len(outliers.eligible("users", pool)) == 3
    clock.now += 0.1
    assert outliers.eligible("users", pool) is pool  # half-open: eligible for trials


def test_a_success_between_failures_starts_the_count_again() -> None:
    outliers, _, seen = detector()
    for outcome in (ERROR, ERROR, OK, ERROR, ERROR):
        call(outliers, "a", outcome)
    assert seen == []


def test_backpressure_is_not_a_failure() -> None:
    outliers, _, seen = detector()
    busy = CallOutcome.response(503, retry_after_s=1.0)
    for _ in range(10):
        call(outliers, "a", busy)
    assert seen == []
    for _ in range(3):
        call(outliers, "a", CallOutcome.failed(CallError.CONNECT))
    assert seen == [("users", "a", "open")]


def test_trials_bring_an_instance_back_or_eject_it_for_longer() -> None:
    outliers, clock, seen = detector()
    pool = instances("a", "b")
    for _ in range(3):
        call(outliers, "a", ERROR)
    clock.now += 5
    # Half-open: two trial calls at once, no third.
    breaker, first = outliers.admit("users", "a")
    _, second = outliers.admit("users", "a")
    assert first is not None and second is not None
    assert outliers.admit("users", "a")[1] is None
    breaker.record(first, OK)
    breaker.record(second, ERROR)  # a trial failed: out again, for twice as long
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 10
    assert outliers.ejections == {"users": 2}
    clock.now += 10
    assert call(outliers, "a", OK) and call(outliers, "a", OK)
    assert breaker.state is BreakerState.CLOSED
    assert outliers.eligible("users", pool) is pool
    assert [new for _, _, new in seen] == ["open", "half_open", "open", "half_open", "closed"]


def test_at_most_the_share_is_ejected_the_earliest_first() -> None:
    outliers, clock, _ = detector(share=0.5)
    pool = instances("a", "b", "c", "d")
    for instance in ("c", "a", "b"):  # three tripped, one second apart
        for _ in range(3):
            call(outliers, instance, ERROR)
        clock.now += 1
    # Half of four: c and a, the first two out; b is readmitted by the cap.
    assert [i.id for i in outliers.eligible("users", pool)] == ["b", "d"]


def test_when_none_would_be_left_every_instance_is_called() -> None:
    outliers, _, _ = detector(share=1.0)
    pool = instances("a", "b")
    for instance in ("a", "b"):
        for _ in range(3):
            call(outliers, instance, ERROR)
    assert outliers.eligible("users", pool) is pool


def test_services_are_judged_apart() -> None:
    outliers, _, _ = detector()
    for _ in range(3):
        call(outliers, "a", ERROR, service="orders")
    assert outliers.eligible("users", instances("a", "b")) == instances("a", "b")
    orders = instances("a", "b", service="orders")
    assert [i.id for i in outliers.eligible("orders", orders)] == ["b"]


def test_instances_gone_from_the_catalog_are_forgotten() -> None:
    outliers, _, _ = detector()
    for _ in range(3):
        call(outliers, "a", ERROR)
    call(outliers, "b", ERROR)
    assert set(outliers.view()["users"]["instances"]) == {"a", "b"}
    outliers.forget(instances("b"))
    assert set(outliers.view()["users"]["instances"]) == {"b"}
    assert outliers.ejected_count("users") == 0
    pool = instances("a", "b")  # a registered again: a fresh breaker, no ejection
    assert outliers.eligible("users", pool) is pool
    outliers.forget(())
    assert outliers.services() == []


def test_the_view_shows_instances_out_of_good_standing_only() -> None:
    outliers, _, _ = detector()
    call(outliers, "healthy", OK)
    for _ in range(3):
        call(outliers, "broken", ERROR)
    view = outliers.view()["users"]
    assert view["ejections"] == 1
    assert list(view["instances"]) == ["broken"]
    broken = view["instances"]["broken"]
    assert (broken["state"], broken["ejected"], broken["retry_after_s"]) == ("open", True, 5.0)


def test_an_instance_asking_for_less_load_is_avoided_for_the_time_it_names() -> None:
    outliers, clock, seen = detector()
    pool = instances("a", "b", "c")
    outliers.avoid("users", "a", 2.0)
    outliers.avoid("users", "b", 10_000.0)  # capped at MAX_AVOIDANCE_S
    assert [i.id for i in outliers.eligible("users", pool)] == ["c"]
    assert outliers.view()["users"]["avoided"] == {"a": 2.0, "b": MAX_AVOIDANCE_S}
    assert seen == []  # no breaker counted it
    clock.now += 2
    assert [i.id for i in outliers.eligible("users", pool)] == ["a", "c"]
    clock.now += MAX_AVOIDANCE_S
    assert outliers.eligible("users", pool) is pool
    assert outliers.view() == {}


def test_avoidance_of_every_instance_sends_to_all() -> None:
    outliers, _, _ = detector()
    pool = instances("a", "b")
    outliers.avoid("users", "a", 5)
    outliers.avoid("users", "b", 5)
    assert outliers.eligible("users", pool) is pool


def test_avoidance_of_an_instance_gone_from_the_catalog_is_forgotten() -> None:
    outliers, _, _ = detector()
    outliers.avoid("users", "a", 5)
    outliers.forget(instances("b"))
    assert outliers.view() == {}


def test_a_service_may_have_a_policy_of_its_own_or_none() -> None:
    lenient = OutlierPolicy(BreakerSettings(consecutive_failures=10, open_jitter=0), 0.5)
    outliers = OutlierDetector(
        SETTINGS, 0.5, services={"orders": lenient, "legacy": None}, random_unit=lambda: 0.0
    )
    assert not outliers.judges("legacy") and outliers.judges("orders")
    for service, failures in (("users", 3), ("orders", 9)):
        for _ in range(failures):
            call(outliers, "a", ERROR, service=service)
    assert outliers.ejections == {"users": 1}  # orders' instance needs a tenth
    call(outliers, "a", ERROR, service="orders")
    assert outliers.ejections == {"users": 1, "orders": 1}
    assert not outliers.timed
    slow = OutlierPolicy(
        BreakerSettings(slow_call_threshold_s=1.0, slow_call_rate_threshold=0.5), 0.5
    )
    assert OutlierDetector(SETTINGS, 0.5, services={"orders": slow}).timed


def test_an_ejection_told_keeps_the_instance_out_for_its_time_then_lets_it_back() -> None:
    outliers, clock, seen = detector()
    pool = instances("a", "b", "c", "d")
    outliers.eject_for("users", "b", 5.0)
    assert outliers.eligible("users", pool) == (pool[0], pool[2], pool[3])
    assert outliers.ejected_count("users") == 1
    assert outliers.view()["users"]["ejected_when_told"] == {"b": 5.0}
    assert seen == []  # no breaker of this detector's moved
    clock.now += 4.9
    assert pool[1] not in outliers.eligible("users", pool)
    clock.now += 0.1
    assert outliers.eligible("users", pool) == pool  # back, with no trial of its own
    assert outliers.ejected_count("users") == 0


def test_ejections_told_count_against_the_share_with_the_detectors_own() -> None:
    outliers, clock, _ = detector(share=0.5)
    pool = instances("a", "b", "c", "d")
    outliers.eject_for("users", "a", 30.0)
    clock.now += 1
    for _ in range(3):  # c's breaker opens: a second ejection, within 2 of 4
        call(outliers, "c", ERROR)
    assert outliers.eligible("users", pool) == (pool[1], pool[3])
    clock.now += 1
    outliers.eject_for("users", "d", 30.0)  # a third would pass the share: the latest waits
    assert outliers.eligible("users", pool) == (pool[1], pool[3])


def test_an_ejection_told_is_capped_and_forgotten_with_its_instance() -> None:
    outliers, clock, _ = detector()
    pool = instances("a", "b")
    outliers.eject_for("users", "a", 10 * MAX_AVOIDANCE_S)
    clock.now += MAX_AVOIDANCE_S
    assert outliers.eligible("users", pool) == pool
    outliers.eject_for("users", "a", 60.0)
    outliers.forget(pool[1:])  # a left the catalog
    assert outliers.ejected_count("users") == 0
    assert "users" not in outliers.view()
