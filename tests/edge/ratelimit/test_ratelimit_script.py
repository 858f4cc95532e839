"""The script's text, arguments and reply decoding (edge/ratelimit/script.py)."""

from __future__ import annotations

import hashlib

import pytest

from edge.ratelimit.script import SHA, SOURCE, BucketCharge, decode_reply, script_args


def test_script_ships_with_the_package() -> None:
    assert "redis.call('TIME')" in SOURCE
    assert hashlib.sha1(SOURCE.encode()).hexdigest() == SHA


def test_arguments_are_keys_then_triples() -> None:
    charges = [BucketCharge("a", 20.0, 10.0, 1.0), BucketCharge("b", 0.5, 3.0, 2.0)]
    assert script_args(charges) == [2, "a", "b", 20.0, 10.0, 1.0, 0.5, 3.0, 2.0]


def test_decodes_levels_into_decisions() -> None:
    charges = [BucketCharge("a", 10.0, 5.0, 1.0), BucketCharge("b", 1.0, 1.0, 1.0)]
    reply = decode_reply(b"0 100.5 3.25 100.5 0.5 101.5", 2)
    assert not reply.admitted and reply.now == 100.5
    user, route = reply.decisions(charges)
    assert user.allowed and user.remaining == 3 and user.retry_after_s == 0
    assert user.reset_after_s == pytest.approx(0.175)
    assert not route.allowed
    assert route.retry_after_s == pytest.approx(1.5)  # 1 s before refill restarts, then 0.5 s


@pytest.mark.parametrize("reply", [b"", b"1 2 3", b"2 1 1 1", [1, 2], None, b"1 x 1 1"])
def test_malformed_replies_are_errors(reply: object) -> None:
    with pytest.raises(ValueError):
        decode_reply(reply, 1)
