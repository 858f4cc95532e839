"""The pure decisions of mirroring: which requests, which bodies, the shadow's Host."""

from __future__ import annotations

import random

import pytest

from edge.mirror.policy import BodyPlan, MirrorPolicy, body_plan, shadow_host


def policy(percent: float, max_body_size: int = 1024) -> MirrorPolicy:
    return MirrorPolicy("orders-v2", percent, max_body_size, None, 10)


@pytest.mark.parametrize(
    ("percent", "roll", "chosen"),
    [
        (0, 0.0, False),  # 0 %: never, not even the smallest roll
        (100, 0.9999999, True),  # 100 %: always, even the largest
        (10, 0.0999, True),
        (10, 0.1, False),  # the boundary belongs to the unchosen side
        (12.5, 0.124, True),
        (12.5, 0.126, False),
    ],
)
def test_chosen_within_the_percent(percent: float, roll: float, chosen: bool) -> None:
    assert policy(percent).chosen(roll) is chosen


def test_the_share_chosen_follows_the_percent() -> None:
    rng = random.Random(7)
    p = policy(10)
    chosen = sum(p.chosen(rng.random()) for _ in range(100_000))
    assert 9_500 < chosen < 10_500


@pytest.mark.parametrize(
    ("has_body", "length", "plan"),
    [
        (False, None, BodyPlan.NONE),  # GET without a body
        (False, 0, BodyPlan.NONE),  # Content-Length: 0
        (True, 1, BodyPlan.BUFFER),
        (True, 1024, BodyPlan.BUFFER),  # exactly the limit
        (True, 1025, BodyPlan.SKIP),  # one byte over
        (True, None, BodyPlan.SKIP),  # chunked: its length is unknown
    ],
)
def test_body_plan(has_body: bool, length: int | None, plan: BodyPlan) -> None:
    assert body_plan(has_body, length, 1024) is plan


@pytest.mark.parametrize(
    ("host", "shadow"),
    [
        ("orders.example.com", "orders.example.com-shadow"),
        ("orders:8080", "orders-shadow:8080"),
        ("127.0.0.1:8080", "127.0.0.1-shadow:8080"),
        ("[::1]:8080", "[::1]-shadow:8080"),
        ("[::1]", "[::1]-shadow"),
        ("::1", "::1-shadow"),  # a bare IPv6 literal has no port to keep apart
        ("orders:", "orders:-shadow"),  # not a port
    ],
)
def test_shadow_host(host: str, shadow: str) -> None:
    assert shadow_host(host) == shadow
