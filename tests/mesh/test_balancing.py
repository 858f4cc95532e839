"""Load-balancing selectors: round robin, power of two choices, in-flight counts, and
their weighted forms."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from mesh.balancing import Balancer, InFlight, LeastInFlight, RoundRobin
from mesh.snapshot import Instance, ServiceEntry


def _instances(*ids: str) -> list[Instance]:
    return [
        Instance(id=i, service="users", address="10.0.0.1", port=9000 + n)
        for n, i in enumerate(ids)
    ]


ABC = _instances("a", "b", "c")


# --- InFlight -------------------------------------------------------------------------------


def test_in_flight_acquire_release() -> None:
    counts = InFlight()
    assert counts.get("a") == 0
    counts.acquire("a")
    counts.acquire("a")
    counts.acquire("b")
    assert (counts.get("a"), counts.get("b")) == (2, 1)
    counts.release("a")
    assert counts.get("a") == 1
    counts.release("a")
    assert counts.get("a") == 0
    assert counts.get("b") == 1


def test_in_flight_release_never_goes_negative() -> None:
    counts = InFlight()
    counts.release("ghost")
    assert counts.get("ghost") == 0
    counts.acquire("ghost")
    assert counts.get("ghost") == 1


# --- RoundRobin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "exclude", "picks", "expected"),
    [
        pytest.param(0, (), 7, ["a", "b", "c", "a", "b", "c", "a"], id="cycles-in-order"),
        pytest.param(1, (), 4, ["b", "c", "a", "b"], id="start-offset"),
        pytest.param(5, (), 3, ["c", "a", "b"], id="start-beyond-length-wraps"),
        pytest.param(0, ("b",), 4, ["a", "c", "a", "c"], id="exclude-one"),
        pytest.param(0, {"a", "c"}, 3, ["b", "b", "b"], id="exclude-all-but-one"),
    ],
)
def test_round_robin(
    start: int, exclude: tuple[str, ...] | set[str], picks: int, expected: list[str]
) -> None:
    rr = RoundRobin(start)
    got = []
    for _ in range(picks):
        choice = rr.pick(ABC, exclude)
        assert choice is not None
        got.append(choice.id)
    assert got == expected


@pytest.mark.parametrize(
    ("instances", "exclude"),
    [
        pytest.param([], (), id="no-instances"),
        pytest.param(ABC, ("a", "b", "c"), id="all-excluded"),
    ],
)
def test_round_robin_none_left(instances: list[Instance], exclude: tuple[str, ...]) -> None:
    assert RoundRobin().pick(instances, exclude) is None


def test_round_robin_spreads_evenly_when_instances_change() -> None:
    rr = RoundRobin()
    counts = Counter(rr.pick(ABC).id for _ in range(30))  # type: ignore[union-attr]
    assert counts == {"a": 10, "b": 10, "c": 10}
    two = ABC[:2]
    counts = Counter(rr.pick(two).id for _ in range(10))  # type: ignore[union-attr]
    assert counts == {"a": 5, "b": 5}


def test_round_robin_retry_skips_the_tried_instance() -> None:
    rr = RoundRobin()
    first = rr.pick(ABC)
    assert first is not None
    second = rr.pick(ABC, exclude={first.id})
    assert second is not None
    assert second.id != first.id


# --- LeastInFlight (P2C) --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_p2c_with_two_instances_always_takes_the_less_loaded(seed: int) -> None:
    counts = InFlight()
    for _ in range(3):
        counts.acquire("a")
    counts.acquire("b")
    p2c = LeastInFlight(counts, random.Random(seed))
    assert {p2c.pick(ABC[:2]).id for _ in range(50)} == {"b"}  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(5))
def test_p2c_never_picks_the_most_loaded_of_three(seed: int) -> None:
    counts = InFlight()
    loads = {"a": 0, "b": 5, "c": 10}
    for iid, n in loads.items():
        for _ in range(n):
            counts.acquire(iid)
    p2c = LeastInFlight(counts, random.Random(seed))
    picks = Counter(p2c.pick(ABC).id for _ in range(600))  # type: ignore[union-attr]
    assert picks["c"] == 0
    # "a" wins whenever it is one of the two sampled: 2 of the 3 pairs.
    assert 350 < picks["a"] < 450
    assert picks["a"] + picks["b"] == 600


def test_p2c_is_deterministic_for_a_seed() -> None:
    counts = InFlight()

    def run() -> list[str]:
        p2c = LeastInFlight(counts, random.Random(42))
        return [p2c.pick(ABC).id for _ in range(20)]  # type: ignore[union-attr]

    assert run() == run()


def test_p2c_tracks_load_as_it_changes() -> None:
    counts = InFlight()
    p2c = LeastInFlight(counts, random.Random(1))
    two = ABC[:2]
    counts.acquire("a")
    assert p2c.pick(two).id == "b"  # type: ignore[union-attr]
    counts.acquire("b")
    counts.acquire("b")
    assert p2c.pick(two).id == "a"  # type: ignore[union-attr]
    counts.release("b")
    counts.release("b")
    counts.release("a")
    counts.acquire("a")
    assert p2c.pick(two).id == "b"  # type: ignore[union-attr]


def test_p2c_spreads_equal_load() -> None:
    p2c = LeastInFlight(InFlight(), random.Random(7))
    picks = Counter(p2c.pick(ABC).id for _ in range(300))  # type: ignore[union-attr]
    assert set(picks) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("instances", "exclude", "expected"),
    [
        pytest.param([], (), None, id="no-instances"),
        pytest.param(ABC, ("a", "b", "c"), None, id="all-excluded"),
        pytest.param(ABC[:1], (), "a", id="single"),
        pytest.param(ABC, ("a", "c"), "b", id="single-left-after-exclude"),
    ],
)
def test_p2c_small_candidate_sets(
    instances: list[Instance], exclude: tuple[str, ...], expected: str | None
) -> None:
    counts = InFlight()
    counts.acquire("b")  # load does not matter when there is no choice
    choice = LeastInFlight(counts, random.Random(0)).pick(instances, exclude)
    assert (choice.id if choice else None) == expected


@pytest.mark.parametrize("seed", range(5))
def test_p2c_exclude_is_respected(seed: int) -> None:
    counts = InFlight()
    counts.acquire("b")
    counts.acquire("c")
    p2c = LeastInFlight(counts, random.Random(seed))
    # "a" is the least loaded but excluded (already tried).
    picks = {p2c.pick(ABC, exclude={"a"}).id for _ in range(50)}  # type: ignore[union-attr]
    assert "a" not in picks
    assert picks <= {"b", "c"}


# --- Balancer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "selector_type"),
    [
        pytest.param("round_robin", RoundRobin, id="round-robin"),
        pytest.param("least_request", LeastInFlight, id="least-request"),
    ],
)
def test_balancer_creates_one_selector_per_service(
    algorithm: str, selector_type: type[object]
) -> None:
    balancer = Balancer(algorithm)  # type: ignore[arg-type]
    users = balancer.selector("users")
    assert isinstance(users, selector_type)
    assert balancer.selector("users") is users
    orders = balancer.selector("orders")
    assert isinstance(orders, selector_type)
    assert orders is not users


def test_balancer_round_robin_state_is_per_service() -> None:
    balancer = Balancer("round_robin")
    users = balancer.selector("users")
    first = users.pick(ABC)
    assert first is not None
    # Picking for another service does not advance the users cycle.
    for _ in range(5):
        balancer.selector("orders").pick(ABC)
    second = users.pick(ABC)
    assert second is not None
    assert ABC.index(second) == (ABC.index(first) + 1) % 3


def test_balancer_least_request_uses_the_shared_in_flight() -> None:
    counts = InFlight()
    balancer = Balancer("least_request", counts)
    assert balancer.in_flight is counts
    counts.acquire("a")
    assert balancer.selector("users").pick(ABC[:2]).id == "b"  # type: ignore[union-attr]


def test_balancer_default_in_flight() -> None:
    assert isinstance(Balancer("round_robin").in_flight, InFlight)


# --- weights --------------------------------------------------------------------------------


def _weighted(**weights: int) -> tuple[Instance, ...]:
    """Instances named and weighted as given, in a service entry (which marks them)."""
    instances = tuple(
        Instance(id=name, service="users", address="10.0.0.1", port=9000 + n, weight=w)
        for n, (name, w) in enumerate(weights.items())
    )
    return ServiceEntry("users", instances).instances


def _picks(selector: RoundRobin | LeastInFlight, instances: Sequence[Instance], n: int) -> str:
    got = []
    for _ in range(n):
        choice = selector.pick(instances)
        assert choice is not None
        got.append(choice.id)
    return "".join(got)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        # nginx's own example: weights 5, 1, 1 give "a a b a c a a".
        pytest.param({"a": 5, "b": 1, "c": 1}, "aabacaa" * 3, id="nginx-5-1-1"),
        pytest.param({"a": 2, "b": 1}, "aba" * 4, id="2-1"),
        pytest.param({"a": 1, "b": 3}, "babb" * 3, id="1-3"),
    ],
)
def test_smooth_weighted_round_robin_sequence(weights: dict[str, int], expected: str) -> None:
    assert _picks(RoundRobin(), _weighted(**weights), len(expected)) == expected


def test_smooth_weighted_round_robin_shares_follow_weights_exactly() -> None:
    instances = _weighted(a=1, b=2, c=3, d=4)
    counts = Counter(_picks(RoundRobin(7), instances, 1000))
    assert counts == {"a": 100, "b": 200, "c": 300, "d": 400}


def test_smooth_weighted_round_robin_retry_skips_the_excluded_and_keeps_their_turns() -> None:
    rr = RoundRobin()
    instances = _weighted(a=3, b=1)
    assert rr.pick(instances, {"a"}) == instances[1]
    # "a" kept its score while excluded; the next cycle is shared as the weights say.
    assert _picks(rr, instances, 4) == "aaba"
    assert rr.pick(instances, {"a", "b"}) is None


def test_smooth_weighted_round_robin_forgets_instances_that_left() -> None:
    rr = RoundRobin()
    _picks(rr, _weighted(a=3, b=1, c=1), 5)
    instances = _weighted(a=3, b=1)
    _picks(rr, instances, 4)
    assert set(rr._current) == {"a", "b"}


def test_equal_weights_take_the_plain_cycle() -> None:
    instances = _weighted(a=4, b=4, c=4)
    assert not any(i.weighted for i in instances)
    assert _picks(RoundRobin(1), instances, 6) == "bcabca"


class _Draws(random.Random):
    """random() returns the values given, in turn (to choose the draws of a test)."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self._values = list(values)

    def random(self) -> float:
        return self._values.pop(0)


@pytest.mark.parametrize(
    ("draws", "expected"),
    [
        # Weights a=1, b=3 laid end to end: a holds [0, 1), b [1, 4).
        pytest.param((0.1, 0.5), "a", id="first-a-then-b-tie-first-wins"),
        pytest.param((0.5, 0.5), "b", id="first-b-then-a"),
        pytest.param((0.25, 0.0), "b", id="edge-of-a-is-b"),
    ],
)
def test_weighted_p2c_draws_weight_proportionally(
    draws: tuple[float, float], expected: str
) -> None:
    picked = LeastInFlight(InFlight(), _Draws(*draws)).pick(_weighted(a=1, b=3))
    assert picked is not None and picked.id == expected


def test_weighted_p2c_compares_load_relative_to_weight() -> None:
    counts = InFlight()
    for _ in range(2):
        counts.acquire("a")  # a: 2 in flight for weight 1 = 2 per unit
    for _ in range(5):
        counts.acquire("b")  # b: 5 for weight 4 = 1.25 per unit
    instances = _weighted(a=1, b=4)
    for seed in range(20):
        picked = LeastInFlight(counts, random.Random(seed)).pick(instances)
        assert picked is not None and picked.id == "b"
    counts.release("a")  # a: 1 per unit, now the less loaded
    for seed in range(20):
        picked = LeastInFlight(counts, random.Random(seed)).pick(instances)
        assert picked is not None and picked.id == "a"


def test_weighted_p2c_idle_shares_follow_weights() -> None:
    p2c = LeastInFlight(InFlight(), random.Random(42))
    counts = Counter(_picks(p2c, _weighted(a=1, b=2, c=5), 8000))
    # Expected 1000, 2000, 5000: a binomial sd is under 45, and these bounds are 4 sd.
    assert 820 <= counts["a"] <= 1180, counts
    assert 1820 <= counts["b"] <= 2180, counts
    assert 4820 <= counts["c"] <= 5180, counts


@pytest.mark.parametrize("seed", range(5))
def test_weighted_p2c_respects_exclude(seed: int) -> None:
    p2c = LeastInFlight(InFlight(), random.Random(seed))
    instances = _weighted(a=1, b=5, c=2)
    for _ in range(50):
        picked = p2c.pick(instances, {"b"})
        assert picked is not None and picked.id in {"a", "c"}
    assert p2c.pick(instances, {"a", "b"}) == instances[2]
    assert p2c.pick(instances, {"a", "b", "c"}) is None


# --- Balancer.hashed ------------------------------------------------------------------------


def test_balancer_hashed_maps_a_key_to_one_instance_and_keeps_the_tables_per_service() -> None:
    balancer = Balancer("round_robin")
    instances = tuple(ABC)
    first = balancer.hashed("users", "user-7").pick(instances)
    assert first is not None
    for _ in range(20):
        assert balancer.hashed("users", "user-7").pick(instances) == first
    assert balancer._tables["users"].builds == 1
    balancer.hashed("orders", "user-7").pick(instances)
    assert balancer._tables["orders"].builds == 1
    assert balancer.hashed("users", "user-7").pick(()) is None
