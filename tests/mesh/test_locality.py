"""The locality rule (pure) and the router that applies it per request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mesh.locality import LocalityPolicy, LocalityRouter, Scope, choose
from mesh.snapshot import Instance, ServiceEntry


def inst(id: str, zone: str = "", region: str = "") -> Instance:
    return Instance(id, "users", "10.0.0.1", 80, zone=zone, region=region)


A1 = inst("a1", "eu-1a", "eu-1")
A2 = inst("a2", "eu-1a", "eu-1")
B1 = inst("b1", "eu-1b", "eu-1")
B2 = inst("b2", "eu-1b", "eu-1")
U1 = inst("u1", "us-1a", "us-1")
U2 = inst("u2", "us-1a", "us-1")
N1 = inst("n1")  # nowhere known

HERE = LocalityPolicy("eu-1a", "eu-1")


def ids(instances: tuple[Instance, ...]) -> list[str]:
    return [i.id for i in instances]


@pytest.mark.parametrize(
    ("policy", "instances", "chosen", "scope"),
    [
        pytest.param(HERE, (A1, B1, U1), ["a1"], Scope.ZONE, id="zone-has-one"),
        pytest.param(HERE, (A1, A2, B1, U1, N1), ["a1", "a2"], Scope.ZONE, id="zone-has-two"),
        pytest.param(HERE, (B1, B2, U1), ["b1", "b2"], Scope.REGION, id="zone-empty-region"),
        pytest.param(HERE, (U1, U2, N1), ["u1", "u2", "n1"], Scope.ANY, id="region-empty-any"),
        pytest.param(HERE, (N1,), ["n1"], Scope.ANY, id="unknown-zone-is-never-local"),
        pytest.param(HERE, (), [], Scope.ANY, id="nothing"),
        pytest.param(
            LocalityPolicy("eu-1a"), (B1, U1), ["b1", "u1"], Scope.ANY, id="no-region-tier"
        ),
        pytest.param(
            LocalityPolicy("eu-1a", "eu-1", min_healthy=2),
            (A1, B1, U1),
            ["a1", "b1"],
            Scope.REGION,
            id="min-healthy-zone-too-small",
        ),
        pytest.param(
            LocalityPolicy("eu-1a", "eu-1", min_healthy=2),
            (A1, A2, B1),
            ["a1", "a2"],
            Scope.ZONE,
            id="min-healthy-met",
        ),
        pytest.param(
            LocalityPolicy("eu-1a", "eu-1", min_healthy=3),
            (A1, B1, U1, U2),
            ["a1", "b1", "u1", "u2"],
            Scope.ANY,
            id="min-healthy-region-too-small",
        ),
        pytest.param(
            LocalityPolicy("eu-1a", "eu-1", min_share=0.5),
            (A1, B1, B2, U1),
            ["a1", "b1", "b2"],
            Scope.REGION,
            id="min-share-zone-below",
        ),
        pytest.param(
            LocalityPolicy("eu-1a", "eu-1", min_share=0.5),
            (A1, A2, B1, U1),
            ["a1", "a2"],
            Scope.ZONE,
            id="min-share-exactly-met",
        ),
        pytest.param(
            LocalityPolicy("eu-1a", "eu-1", min_share=0.8),
            (A1, A2, B1, U1, U2),
            ["a1", "a2", "b1", "u1", "u2"],
            Scope.ANY,
            id="min-share-region-below",
        ),
        pytest.param(HERE, (A1, A2), ["a1", "a2"], Scope.ZONE, id="all-local"),
    ],
)
def test_choose(
    policy: LocalityPolicy, instances: tuple[Instance, ...], chosen: list[str], scope: Scope
) -> None:
    got, got_scope = choose(policy, instances)
    assert (ids(got), got_scope) == (chosen, scope)


def test_choose_keeps_the_tuple_when_nothing_is_left_out() -> None:
    everything = (A1, A2)
    assert choose(HERE, everything)[0] is everything
    spread = (U1, N1)
    assert choose(HERE, spread)[0] is spread


class Counts:
    def __init__(self) -> None:
        self.made: list[tuple[str, Scope]] = []
        self.counted: dict[tuple[str, Scope], int] = {}

    def count(self, service: str, scope: Scope) -> Callable[[], None]:
        self.made.append((service, scope))

        def inc() -> None:
            key = (service, scope)
            self.counted[key] = self.counted.get(key, 0) + 1

        return inc


def test_router_remembers_the_choice_for_the_healthy_tuple() -> None:
    counts = Counts()
    router = LocalityRouter(HERE, count=counts.count)
    healthy = ServiceEntry("users", (A1, B1, U1)).healthy
    first = router.narrow("users", healthy, healthy)
    assert ids(first) == ["a1"]
    assert router.narrow("users", healthy, healthy) is first  # no new tuple per request
    assert counts.counted == {("users", Scope.ZONE): 2}
    assert counts.made == [("users", Scope.ZONE)]


def test_router_chooses_again_for_a_new_catalog() -> None:
    counts = Counts()
    router = LocalityRouter(HERE, count=counts.count)
    before = ServiceEntry("users", (A1, B1, U1)).healthy
    router.narrow("users", before, before)
    after = ServiceEntry("users", (B1, U1)).healthy  # the local one went away
    assert ids(router.narrow("users", after, after)) == ["b1"]
    back = ServiceEntry("users", (A1, B1, U1)).healthy
    assert ids(router.narrow("users", back, back)) == ["a1"]
    assert counts.counted == {("users", Scope.ZONE): 2, ("users", Scope.REGION): 1}
    assert counts.made == [("users", Scope.ZONE), ("users", Scope.REGION)]


def test_router_filters_a_subset_on_its_own() -> None:
    """A canary side or the instances left after ejection: the rule applies to them,
    not to the whole healthy set."""
    counts = Counts()
    router = LocalityRouter(HERE, count=counts.count)
    healthy = (A1, B1, U1)
    assert ids(router.narrow("users", healthy, (B1, U1))) == ["b1"]  # a1 ejected
    assert ids(router.narrow("users", healthy, (U1,))) == ["u1"]
    assert counts.counted == {("users", Scope.REGION): 1, ("users", Scope.ANY): 1}


def test_router_leaves_nothing_as_nothing_uncounted() -> None:
    counts = Counts()
    router = LocalityRouter(HERE, count=counts.count)
    assert router.narrow("users", (), ()) == ()
    assert router.narrow("users", (A1,), ()) == ()
    assert counts.counted == {}


def test_router_per_service_policies() -> None:
    counts = Counts()
    strict = LocalityPolicy("eu-1a", "eu-1", min_healthy=2)
    router = LocalityRouter(HERE, {"orders": None, "carts": strict}, counts.count)
    healthy = (A1, B1, U1)
    assert router.narrow("orders", healthy, healthy) is healthy  # locality off for it
    assert router.narrow("orders", healthy, (A1, B1)) == (A1, B1)
    assert ids(router.narrow("carts", healthy, healthy)) == ["a1", "b1"]
    assert ids(router.narrow("users", healthy, healthy)) == ["a1"]
    assert counts.counted == {("carts", Scope.REGION): 1, ("users", Scope.ZONE): 1}


def test_router_with_locality_off_by_default_but_on_for_one_service() -> None:
    router = LocalityRouter(None, {"users": HERE})
    healthy = (A1, B1)
    assert router.narrow("orders", healthy, healthy) is healthy
    assert router.narrow("users", healthy, healthy) == (A1,)


def test_router_forgets_gone_services() -> None:
    router = LocalityRouter(HERE)
    healthy = (A1, B1)
    router.narrow("users", healthy, healthy)
    router.narrow("orders", healthy, healthy)
    router.forget({"orders": object()})
    assert list(router._memo) == ["orders"]
