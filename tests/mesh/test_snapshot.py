"""Snapshots and the store: equality, change-only publishing, listeners, freshness."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from mesh.snapshot import EMPTY, Instance, ServiceEntry, Snapshot, SnapshotStore, make_snapshot


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _inst(iid: str, healthy: bool = True, port: int = 9000) -> Instance:
    return Instance(id=iid, service="users", address="10.0.0.1", port=port, healthy=healthy)


def _snap(*instances: Instance, source: str = "test") -> Snapshot:
    return make_snapshot({"users": ServiceEntry("users", tuple(instances))}, source)


# --- Instance / ServiceEntry / Snapshot -----------------------------------------------------


def test_instance_authority_and_meta_dict() -> None:
    inst = Instance(
        id="u1",
        service="users",
        address="10.0.0.7",
        port=15000,
        meta=(("a", "1"), ("b", "2")),
    )
    assert inst.authority == "10.0.0.7:15000"
    assert inst.meta_dict() == {"a": "1", "b": "2"}


def test_service_entry_healthy_filters_in_order() -> None:
    entry = ServiceEntry("users", (_inst("a"), _inst("b", healthy=False), _inst("c")))
    assert [i.id for i in entry.healthy] == ["a", "c"]


def test_service_entry_marks_whether_weights_differ() -> None:
    heavy = Instance(id="b", service="users", address="10.0.0.1", port=9001, weight=3)
    entry = ServiceEntry("users", (_inst("a"), heavy))
    assert [i.weighted for i in entry.instances] == [True, True]
    assert entry.instances[1].weight == 3
    plain = (_inst("a"), _inst("b", port=9001))
    assert ServiceEntry("users", plain).instances is plain  # nothing to change: same tuple
    assert not any(i.weighted for i in plain)


def test_service_entry_clears_a_stale_weighted_flag() -> None:
    stale = Instance(id="a", service="users", address="10.0.0.1", port=9000, weighted=True)
    assert ServiceEntry("users", (stale,)).instances[0].weighted is False


def test_service_entry_equality_and_hash() -> None:
    one = ServiceEntry("users", (_inst("a"),))
    same = ServiceEntry("users", (_inst("a"),))
    _ = one.healthy  # the cached property must not affect equality
    assert one == same
    assert hash(one) == hash(same)
    assert one != ServiceEntry("orders", (_inst("a"),))
    assert one != ServiceEntry("users", (_inst("a", healthy=False),))
    assert one != "users"


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(_snap(_inst("a")), _snap(_inst("a")), True, id="equal"),
        pytest.param(
            _snap(_inst("a"), source="consul"),
            _snap(_inst("a"), source="static"),
            True,
            id="source-ignored",
        ),
        pytest.param(_snap(_inst("a")), _snap(_inst("b")), False, id="different-instance"),
        pytest.param(
            _snap(_inst("a")), _snap(_inst("a", healthy=False)), False, id="health-change"
        ),
        pytest.param(_snap(_inst("a")), _snap(_inst("a", port=1)), False, id="port-change"),
        pytest.param(_snap(), EMPTY, False, id="service-without-instances-vs-empty"),
        pytest.param(make_snapshot({}, "consul"), EMPTY, True, id="empty-vs-empty"),
    ],
)
def test_same_content(left: Snapshot, right: Snapshot, same: bool) -> None:
    assert left.same_content(right) is same
    assert right.same_content(left) is same


def test_snapshot_lookup_and_immutability() -> None:
    services = {"users": ServiceEntry("users", (_inst("a"),))}
    snap = make_snapshot(services, "consul")
    services["orders"] = ServiceEntry("orders", ())  # the caller's dict is copied
    assert snap.service("users") == ServiceEntry("users", (_inst("a"),))
    assert snap.service("orders") is None
    assert isinstance(snap.services, MappingProxyType)
    assert snap.source == "consul"
    assert EMPTY.service("users") is None


# --- SnapshotStore.publish ------------------------------------------------------------------


def test_store_starts_empty_and_not_ready() -> None:
    store = SnapshotStore(FakeClock())
    assert store.current is EMPTY
    assert not store.ready.is_set()
    assert store.swaps == 0


def test_first_publish_swaps_even_when_empty() -> None:
    store = SnapshotStore(FakeClock())
    seen: list[Snapshot] = []
    store.subscribe(seen.append)
    first = make_snapshot({}, "consul")
    assert store.publish(first) is True
    assert store.current is first
    assert store.ready.is_set()
    assert seen == [first]
    assert store.swaps == 1


@pytest.mark.parametrize(
    ("sequence", "swapped"),
    [
        pytest.param(["a", "a"], [True, False], id="equal-dropped"),
        pytest.param(["a", "b", "b", "a"], [True, True, False, True], id="change-back"),
        pytest.param(["a", "a-sick", "a-sick", "a"], [True, True, False, True], id="health"),
        pytest.param(["a", "a-other-source"], [True, False], id="source-only-change-dropped"),
    ],
)
def test_publish_drops_equal_snapshots(sequence: list[str], swapped: list[bool]) -> None:
    build = {
        "a": lambda: _snap(_inst("a")),
        "b": lambda: _snap(_inst("b")),
        "a-sick": lambda: _snap(_inst("a", healthy=False)),
        "a-other-source": lambda: _snap(_inst("a"), source="other"),
    }
    store = SnapshotStore(FakeClock())
    seen: list[Snapshot] = []
    store.subscribe(seen.append)
    results = [store.publish(build[name]()) for name in sequence]
    assert results == swapped
    assert store.swaps == sum(swapped)
    assert len(seen) == sum(swapped)
    # current is the last snapshot that was actually swapped in.
    assert store.current is seen[-1]


def test_dropped_publish_keeps_the_current_object() -> None:
    store = SnapshotStore(FakeClock())
    first = _snap(_inst("a"))
    store.publish(first)
    assert store.publish(_snap(_inst("a"))) is False
    assert store.current is first


def test_listeners_called_once_per_change_in_order() -> None:
    store = SnapshotStore(FakeClock())
    calls: list[tuple[str, Snapshot]] = []
    store.subscribe(lambda s: calls.append(("first", s)))
    store.subscribe(lambda s: calls.append(("second", s)))
    one, two = _snap(_inst("a")), _snap(_inst("b"))
    store.publish(one)
    store.publish(_snap(_inst("a")))
    store.publish(two)
    assert calls == [("first", one), ("second", one), ("first", two), ("second", two)]


def test_listener_sees_the_new_current() -> None:
    store = SnapshotStore(FakeClock())
    observed: list[bool] = []
    store.subscribe(lambda s: observed.append(store.current is s))
    store.publish(_snap(_inst("a")))
    assert observed == [True]


# --- freshness ------------------------------------------------------------------------------


def test_in_sync_flag() -> None:
    store = SnapshotStore(FakeClock())
    states = [store.in_sync]
    store.mark_synced()
    states.append(store.in_sync)
    store.mark_out_of_sync()
    states.append(store.in_sync)
    store.publish(_snap(_inst("a")))
    states.append(store.in_sync)
    assert states == [False, True, False, True]


def test_age_none_before_first_sync() -> None:
    store = SnapshotStore(FakeClock())
    assert store.age() is None
    assert store.in_sync is False
    store.mark_out_of_sync()
    assert store.age() is None


def test_age_zero_while_in_sync_and_growing_after() -> None:
    clock = FakeClock(100.0)
    store = SnapshotStore(clock)
    store.mark_synced()
    assert store.age() == 0.0
    clock.now = 150.0
    assert store.age() == 0.0
    store.mark_out_of_sync()
    assert not store.in_sync
    # Measured from the last sync (at 100), not from when it was lost.
    assert store.age() == 50.0
    clock.now = 160.5
    assert store.age() == 60.5
    store.mark_synced()
    assert store.age() == 0.0
    store.mark_out_of_sync()
    clock.now = 170.5
    assert store.age() == 10.0


@pytest.mark.parametrize("changed", [True, False], ids=["changed", "unchanged"])
def test_publish_marks_synced_even_when_dropped(changed: bool) -> None:
    clock = FakeClock(10.0)
    store = SnapshotStore(clock)
    store.publish(_snap(_inst("a")))
    store.mark_out_of_sync()
    clock.now = 20.0
    assert store.age() == 10.0
    store.publish(_snap(_inst("b" if changed else "a")))
    assert store.in_sync
    assert store.age() == 0.0
    store.mark_out_of_sync()
    clock.now = 25.0
    assert store.age() == 5.0


def test_ready_is_set_by_publish_not_by_mark_synced() -> None:
    store = SnapshotStore(FakeClock())
    store.mark_synced()
    assert not store.ready.is_set()
    store.publish(_snap(_inst("a")))
    assert store.ready.is_set()
