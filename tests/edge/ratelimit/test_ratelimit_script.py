"""The script's text, arguments and reply decoding (edge/ratelimit/script.py)."""

from __future__ import annotations

import hashlib

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from edge.ratelimit.script import (
    SHA,
    SOURCE,
    BucketCharge,
    ReplyDecoder,
    bucket_spec,
    call_argv,
    charges_call,
    decode_reply,
    evalsha_args,
    pack_evalsha,
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


def test_packed_evalsha_is_what_redis_py_would_send() -> None:
    calls = [
        (["mg:rl:{a}:p:k1", "mg:rl:{a}:p:k2"], "2 20.0 10.0 1.0 0.5 3.0 2.0"),
        (["mg:rl:{b}:p:route=caf\u00e9"], "1 1.0 1.0 -1.0"),  # a non-ASCII key
    ]
    args = evalsha_args(calls)
    assert args == [3, *calls[0][0], *calls[1][0], calls[0][1], calls[1][1]]
    connection = Connection()
    expected = b"".join(connection.pack_command("EVALSHA", SHA, *args))
    assert pack_evalsha(calls) == expected
    assert pack_evalsha(calls, "latin-1") == b"".join(
        Connection(encoding="latin-1").pack_command("EVALSHA", SHA, *args)
    )


def test_bucket_specs_and_call_strings() -> None:
    assert bucket_spec(20.0, 10, 1) == "20.0 10.0 1.0"  # whole numbers are sent as floats
    assert bucket_spec(1 / 3, 1.0, -1.0) == f"{1 / 3!r} 1.0 -1.0"
    assert call_argv(["20.0 10.0 1.0"]) == "1 20.0 10.0 1.0"
    assert call_argv(["20.0 10.0 1.0", "0.5 3.0 2.0"]) == "2 20.0 10.0 1.0 0.5 3.0 2.0"
    charges = [BucketCharge("a", 20.0, 10.0, 1.0), BucketCharge("b", 0.5, 3.0, 2.0)]
    assert charges_call(charges) == (["a", "b"], "2 20.0 10.0 1.0 0.5 3.0 2.0")


@pytest.mark.parametrize(
    "reply",
    [
        b"1 100.5 3.25 100.5",
        "1 100.5 3.25 100.5",  # a client that decodes replies
        b"0 100.25 0.5 101.5",  # a bucket stamped after now (Redis's clock went back)
        b"1 1.7e+09 1e+20 1.7e+09",
    ],
)
def test_the_batch_decoder_reads_what_decode_reply_reads(reply: bytes | str) -> None:
    decoder = ReplyDecoder()
    admitted, numbers = decoder.decode(reply, 1)
    expected = decode_reply(reply, 1)
    assert admitted == expected.admitted
    assert numbers == [expected.now, *expected.levels[0]]
    assert decoder.decode(reply, 1) == (admitted, numbers)  # again, with its clock known


def test_the_batch_decoder_reuses_the_clock_only_for_the_same_text() -> None:
    decoder = ReplyDecoder()
    assert decoder.decode(b"1 100.5 3 100.5 4 100.5", 2) == (True, [100.5, 3.0, 100.5, 4.0, 100.5])
    assert decoder.decode(b"1 100.75 2 100.75", 1) == (True, [100.75, 2.0, 100.75])
    assert decoder.decode(b"0 100.75 0.5 101", 1) == (False, [100.75, 0.5, 101.0])
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        decoder.decode(b"E WRONGTYPE x", 1)
    with pytest.raises(ValueError):
        decoder.decode(b"1 100.75 2", 1)
