"""Canary decisions: which side a request goes to, and which instances that side has."""

from __future__ import annotations

import pytest

from mesh.canary import CANARY, STABLE, Canary
from mesh.snapshot import Instance


def _instance(name: str, *tags: str) -> Instance:
    return Instance(name, "orders", "127.0.0.1", 1, tags=tags)


STABLE_1, STABLE_2 = _instance("s1", "v1"), _instance("s2")
CANARY_1 = _instance("c1", "canary", "v2")
ALL = (STABLE_1, CANARY_1, STABLE_2)


@pytest.mark.parametrize(
    ("weight", "roll", "side"),
    [
        (10, 0.0, CANARY),
        (10, 0.0999, CANARY),
        (10, 0.1, STABLE),
        (10, 0.99, STABLE),
        (0, 0.0, STABLE),  # 0 %: never, whatever the roll
        (100, 0.9999, CANARY),  # 100 %: always
        (12.5, 0.124, CANARY),
    ],
)
def test_the_roll_against_the_weight(weight: float, roll: float, side: str) -> None:
    assert Canary("canary", weight).side(None, roll) == side


def test_the_shares_follow_the_weight() -> None:
    rolls = [i / 1000 for i in range(1000)]
    sides = [Canary("canary", 25).side(None, r) for r in rolls]
    assert sides.count(CANARY) == 250


@pytest.mark.parametrize(
    ("value", "roll", "side"),
    [
        ("always", 0.99, CANARY),
        (" Always ", 0.99, CANARY),
        ("never", 0.0, STABLE),
        ("maybe", 0.0, CANARY),  # anything else: the weight decides
        ("maybe", 0.99, STABLE),
    ],
)
def test_the_header_names_a_side(value: str, roll: float, side: str) -> None:
    assert Canary("canary", 50, header="X-Canary").side(value, roll) == side


def test_each_side_has_its_instances() -> None:
    canary = Canary("canary", 10)
    assert canary.instances(ALL, CANARY) == (CANARY_1,)
    assert canary.instances(ALL, STABLE) == (STABLE_1, STABLE_2)


def test_a_side_without_healthy_instances_falls_back_to_the_other() -> None:
    canary = Canary("canary", 10)
    assert canary.instances((STABLE_1, STABLE_2), CANARY) == (STABLE_1, STABLE_2)
    assert canary.instances((CANARY_1,), STABLE) == (CANARY_1,)
    assert canary.instances((), CANARY) == ()
