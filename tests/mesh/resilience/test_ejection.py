"""Outlier ejection: the cap, its ordering rule, avoidance, and panic mode."""

from __future__ import annotations

import pytest

from mesh.resilience.ejection import Eligibility, max_ejections, select_eligible

ABCD = ("a", "b", "c", "d")


@pytest.mark.parametrize(
    ("count", "share", "expected"),
    [
        (0, 0.5, 0),
        (1, 0.5, 1),  # at least one (Envoy)
        (2, 0.5, 1),
        (3, 0.5, 1),
        (4, 0.5, 2),
        (5, 0.5, 2),
        (10, 0.1, 1),
        (5, 0.1, 1),  # floor would be 0
        (100, 0.29, 29),  # 0.29 * 100 == 28.999999999999996
        (7, 1.0, 7),
        (7, 0.0, 0),
    ],
)
def test_max_ejections(count: int, share: float, expected: int) -> None:
    assert max_ejections(count, share) == expected


def test_nothing_excluded() -> None:
    result = select_eligible(ABCD, ejected_at={}, avoid_until={}, now=0.0)
    assert result == Eligibility(
        eligible=ABCD,
        ejected=frozenset(),
        readmitted=frozenset(),
        avoided=frozenset(),
        panic=False,
    )


def test_ejections_within_the_cap() -> None:
    result = select_eligible(ABCD, ejected_at={"b": 3.0, "d": 1.0}, avoid_until={}, now=5.0)
    assert result.eligible == ("a", "c")
    assert result.ejected == {"b", "d"}
    assert result.readmitted == frozenset()
    assert not result.panic


@pytest.mark.parametrize(
    ("ejected_at", "kept_out", "readmitted"),
    [
        # earliest ejections stay out, the most recent ones come back
        ({"a": 3.0, "b": 1.0, "c": 2.0}, {"b", "c"}, {"a"}),
        ({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, {"a", "b"}, {"c", "d"}),
        ({"d": 0.0, "c": 0.5, "b": 9.0}, {"c", "d"}, {"b"}),
        # ties go to the order of the instances
        ({"a": 1.0, "b": 1.0, "c": 1.0}, {"a", "b"}, {"c"}),
        ({"d": 1.0, "c": 1.0, "b": 1.0}, {"b", "c"}, {"d"}),
    ],
)
def test_cap_keeps_the_earliest_ejections(
    ejected_at: dict[str, float], kept_out: set[str], readmitted: set[str]
) -> None:
    result = select_eligible(ABCD, ejected_at=ejected_at, avoid_until={}, now=10.0)
    assert result.ejected == kept_out
    assert result.readmitted == readmitted
    assert set(result.eligible) == set(ABCD) - kept_out
    assert not result.panic


def test_eligible_keeps_the_instance_order() -> None:
    instances = ("z", "y", "x", "w", "v")
    result = select_eligible(instances, ejected_at={"y": 1.0}, avoid_until={"w": 9.0}, now=0.0)
    assert result.eligible == ("z", "x", "v")


def test_share_zero_disables_ejection() -> None:
    result = select_eligible(
        ABCD, ejected_at={"a": 1.0, "b": 2.0}, avoid_until={}, now=0.0, max_ejection_share=0.0
    )
    assert result.eligible == ABCD
    assert result.readmitted == {"a", "b"}


@pytest.mark.parametrize(
    ("until", "avoided"),
    [(10.001, True), (10.0, False), (9.0, False)],
)
def test_avoidance_edge(until: float, avoided: bool) -> None:
    result = select_eligible(ABCD, ejected_at={}, avoid_until={"c": until}, now=10.0)
    assert ("c" in result.avoided) is avoided
    assert ("c" in result.eligible) is not avoided


def test_avoidance_is_not_capped() -> None:
    result = select_eligible(
        ABCD, ejected_at={}, avoid_until={"a": 5.0, "b": 5.0, "c": 5.0}, now=0.0
    )
    assert result.eligible == ("d",)
    assert result.avoided == {"a", "b", "c"}
    assert not result.panic


def test_ejected_and_avoided_is_reported_as_ejected() -> None:
    result = select_eligible(ABCD, ejected_at={"a": 1.0}, avoid_until={"a": 9.0}, now=0.0)
    assert result.ejected == {"a"}
    assert result.avoided == frozenset()


def test_readmitted_instance_can_still_be_avoided() -> None:
    result = select_eligible(
        ("a", "b"), ejected_at={"a": 1.0, "b": 2.0}, avoid_until={"a": 9.0}, now=0.0
    )
    # b is readmitted by the cap, a ejected; b is fine, so no panic
    assert result.eligible == ("b",)
    result = select_eligible(
        ("a", "b"), ejected_at={"a": 1.0, "b": 2.0}, avoid_until={"b": 9.0}, now=0.0
    )
    assert result.readmitted == {"b"}
    assert result.avoided == {"b"}
    assert result.panic
    assert result.eligible == ("a", "b")


@pytest.mark.parametrize(
    ("instances", "ejected_at", "avoid_until"),
    [
        (("a",), {"a": 1.0}, {}),  # the only instance ejected
        (("a",), {}, {"a": 5.0}),  # the only instance avoided
        (("a", "b"), {"a": 1.0}, {"b": 5.0}),  # one of each
        (ABCD, {"a": 1.0, "b": 2.0}, {"c": 5.0, "d": 5.0}),
        (ABCD, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, {}),  # with share 1.0
    ],
)
def test_panic_mode_returns_every_instance(
    instances: tuple[str, ...], ejected_at: dict[str, float], avoid_until: dict[str, float]
) -> None:
    result = select_eligible(
        instances,
        ejected_at=ejected_at,
        avoid_until=avoid_until,
        now=0.0,
        max_ejection_share=1.0 if len(ejected_at) == len(instances) else 0.5,
    )
    assert result.panic
    assert result.eligible == instances
    assert result.ejected | result.avoided == set(instances)  # what panic overrode


def test_unknown_ids_and_stale_entries_are_ignored() -> None:
    result = select_eligible(
        ("a", "b"),
        ejected_at={"gone": 1.0},
        avoid_until={"gone": 99.0, "a": 1.0},
        now=2.0,
    )
    assert result.eligible == ("a", "b")
    assert result.ejected == result.avoided == result.readmitted == frozenset()


def test_no_instances() -> None:
    result = select_eligible((), ejected_at={}, avoid_until={}, now=0.0)
    assert result.eligible == ()
    assert not result.panic


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        select_eligible(("a", "a"), ejected_at={}, avoid_until={}, now=0.0)


@pytest.mark.parametrize("share", [-0.1, 1.1, float("nan")])
def test_share_out_of_range_is_rejected(share: float) -> None:
    with pytest.raises(ValueError, match="max_ejection_share"):
        select_eligible(ABCD, ejected_at={}, avoid_until={}, now=0.0, max_ejection_share=share)


def test_accepts_any_sequence() -> None:
    result = select_eligible(["a", "b"], ejected_at={"a": 0.0}, avoid_until={}, now=0.0)
    assert result.eligible == ("b",)
