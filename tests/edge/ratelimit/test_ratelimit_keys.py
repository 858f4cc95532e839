"""Bucket key names and hash tags (edge/ratelimit/keys.py)."""

from __future__ import annotations

import pytest

from edge.ratelimit.keys import bucket_key, check_prefix, slot_of
from edge.ratelimit.limiter import LimitPolicy, LimitRequest
from edge.ratelimit.rate import parse_rate

USER = LimitPolicy("per-user", parse_rate("10/s"))
USER_ROUTE = LimitPolicy("per-user-route", parse_rate("1/s"))
ROUTE = LimitPolicy("per-route", parse_rate("100/s"))


def test_format_is_readable_after_the_tag() -> None:
    key = bucket_key(LimitRequest(USER, "alice", partition="user:alice"))
    assert key.startswith("mg:rl:{") and key.endswith("}:per-user:alice")
    assert bucket_key(LimitRequest(USER, "alice"), prefix="x").startswith("x:{")


def test_same_bucket_same_key_whoever_asks() -> None:
    a = bucket_key(LimitRequest(USER, "alice", partition="user:alice"))
    b = bucket_key(LimitRequest(USER, "alice", partition="user:alice", cost=3))
    assert a == b


def test_a_callers_limits_share_a_slot() -> None:
    limits = [
        LimitRequest(USER, "alice", partition="user:alice"),
        LimitRequest(USER_ROUTE, "alice|/orders", partition="user:alice"),
        LimitRequest(USER_ROUTE, "alice|/pay{ments}", partition="user:alice"),
    ]
    assert len({slot_of(bucket_key(limit)) for limit in limits}) == 1


def test_unpartitioned_buckets_spread_and_odd_identities_are_safe() -> None:
    slots = {slot_of(bucket_key(LimitRequest(ROUTE, f"/r{i}"))) for i in range(50)}
    assert len(slots) > 40
    weird = [bucket_key(LimitRequest(USER, "x", partition=p)) for p in ("}", "{}", "", "a}b{")]
    assert all(k.count("{") >= 1 and k.index("}") == k.index("{") + 17 for k in weird)


@pytest.mark.parametrize("prefix", ["", "a{b", "a}"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError):
        check_prefix(prefix)
