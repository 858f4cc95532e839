"""The script's text, arguments and reply decoding (edge/ratelimit/script.py)."""

from __future__ import annotations

import hashlib

import pytest
from redis.exceptions import ResponseError

from edge.ratelimit.script import (
    SHA,
    SOURCE,
    BucketCharge,
    decode_reply,
    script_args,
    split_reply,
)


def test_script_ships_with_the_package() -> None:
    assert "redis.call('TIME')" in SOURCE
    assert hashlib.sha1(SOURCE.encode()).hexdigest() == SHA


def test_arguments_are_all_keys_then_one_string_per_call() -> None:
    first = [BucketCharge("a", 20.0, 10.0, 1.0), BucketCharge("b", 0.5, 3.0, 2.0)]
    second = [BucketCharge("c", 1 / 3, 1.0, -1.0)]
    assert script_args([first, second]) == [
        3,
        "a",
        "b",
        "c",
        "2 20.0 10.0 1.0 0.5 3.0 2.0",
        f"1 {1 / 3!r} 1.0 -1.0",  # repr: no precision lost
    ]


def test_replies_are_split_into_one_line_per_call() -> None:
    assert split_reply(b"1 5 4 5\nE WRONGTYPE x\n0 5 0 5", 3) == [
        b"1 5 4 5",
        b"E WRONGTYPE x",
        b"0 5 0 5",
    ]
    with pytest.raises(ValueError):
        split_reply(b"1 5 4 5", 2)
    with pytest.raises(ValueError):
        split_reply(None, 1)


def test_a_call_the_script_could_not_run_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        decode_reply(b"E WRONGTYPE Operation against a key holding the wrong kind of value", 1)


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
