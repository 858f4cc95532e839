"""The token-bucket Lua script: its text, its SHA, its arguments and its reply.

Only data conversion lives here; sending it to Redis is the Redis limiter's job.
The script's reply carries raw levels, and the same functions that serve the
in-process buckets (:mod:`edge.ratelimit.bucket`) turn them into remaining,
reset and retry-after, so the two limiters cannot disagree on the arithmetic.

A script call is described by :data:`Call`: its bucket keys and its ARGV
string (:func:`call_argv` of each bucket's :func:`bucket_spec`).
:func:`evalsha_args` turns calls into one EVALSHA's arguments, for a client's
``execute_command``; :func:`pack_evalsha` writes the same command straight in
the Redis protocol, which is what the limiter sends to a single Redis: the
client's general-purpose packer costs more than the rest of a check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from redis.exceptions import ResponseError

from edge.ratelimit.bucket import Decision, decision

SOURCE: str = files("edge.ratelimit").joinpath("token_bucket.lua").read_text(encoding="utf-8")
"""The script's text, shipped as package data."""

SHA: str = hashlib.sha1(SOURCE.encode("utf-8")).hexdigest()
"""What Redis calls the script in EVALSHA (the SHA1 of its text)."""


@dataclass(frozen=True, slots=True)
class BucketCharge:
    """One bucket in a script call: its key, refill rate, capacity and the tokens to take."""

    key: str
    rate: float
    burst: float
    cost: float


@dataclass(frozen=True, slots=True)
class ScriptReply:
    """A decoded reply: whether every bucket was charged, Redis's clock, each bucket's state.

    ``levels[i]`` is (tokens after the call, time of that level on Redis's clock).
    """

    admitted: bool
    now: float
    levels: tuple[tuple[float, float], ...]

    def decisions(self, charges: Sequence[BucketCharge]) -> list[Decision]:
        """One Decision per charge, as :func:`edge.ratelimit.bucket.take_all` would give."""
        out = []
        for charge, (tokens, updated) in zip(charges, self.levels, strict=True):
            # Refused calls leave levels untouched, so "had room" is readable off them.
            had_room = self.admitted or tokens >= charge.cost
            out.append(
                decision(
                    allowed=had_room,
                    tokens=tokens,
                    cost=charge.cost,
                    rate=charge.rate,
                    burst=charge.burst,
                    wait_s=updated - self.now,
                )
            )
        return out


Call = tuple[Sequence[str | bytes], str | bytes]
"""One script call: its bucket keys, in order, and its ARGV string (see :func:`call_argv`);
each as text, or as the bytes sent (the Redis limiter keeps its keys packed)."""


@lru_cache(maxsize=1024)
def bucket_spec(rate: float, burst: float, cost: float) -> str:
    """One bucket's numbers in a call's ARGV: ``"<rate> <burst> <cost>"``, each as a float.

    ``repr`` loses no precision. Cached: the numbers come from the configured
    rates and the costs asked for, so there are few distinct ones, and
    formatting three floats costs more than looking them up.
    """
    return f"{float(rate)!r} {float(burst)!r} {float(cost)!r}"


def call_argv(specs: Sequence[str]) -> str:
    """One call's ARGV string, ``"<n> <spec 1> ... <spec n>"``, from its buckets' specs."""
    if len(specs) == 1:
        return "1 " + specs[0]
    return " ".join([str(len(specs)), *specs])


def charges_call(charges: Sequence[BucketCharge]) -> Call:
    """The :data:`Call` charging ``charges`` (one request's buckets) in one script run."""
    return (
        [c.key for c in charges],
        call_argv([bucket_spec(c.rate, c.burst, c.cost) for c in charges]),
    )


def script_args(calls: Sequence[Sequence[BucketCharge]]) -> list[str | bytes | int]:
    """``numkeys, *KEYS, *ARGV`` for one EVALSHA (after the SHA) running ``calls`` in order.

    Each call is one request's buckets; on Cluster, every key of one EVALSHA
    must be in one slot.
    """
    return evalsha_args([charges_call(call) for call in calls])


def evalsha_args(calls: Sequence[Call]) -> list[str | bytes | int]:
    """``numkeys, *KEYS, *ARGV`` for one EVALSHA (after the SHA) running ``calls`` in order."""
    args: list[str | bytes | int] = [sum(len(keys) for keys, _ in calls)]
    for keys, _ in calls:
        args.extend(keys)
    args.extend(argv for _, argv in calls)
    return args


_EVALSHA = f"$7\r\nEVALSHA\r\n${len(SHA)}\r\n{SHA}\r\n"


PackedCall = tuple[int, bytes, bytes]
"""One call's part of an EVALSHA in the Redis protocol: its number of keys, its keys as
bulk strings, and its ARGV as a bulk string (see :func:`packed_call`)."""


def bulk(value: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``value`` as a RESP bulk string (text encoded with ``encoding``, as redis-py would)."""
    data = value if isinstance(value, bytes) else value.encode(encoding, errors)
    return b"$%d\r\n%b\r\n" % (len(data), data)


def unbulk(packed: bytes) -> bytes:
    """The value of a RESP bulk string made by :func:`bulk`."""
    return packed[packed.index(b"\n") + 1 : -2]


def packed_call(call: Call, encoding: str = "utf-8", errors: str = "strict") -> PackedCall:
    """``call``'s part of an EVALSHA (:func:`pack_evalsha`), made once and kept by callers
    that send the same call again."""
    keys, argv = call
    packed_keys = b"".join([bulk(key, encoding, errors) for key in keys])
    return len(keys), packed_keys, bulk(argv, encoding, errors)


def evalsha_head(keys: int, calls: int) -> bytes:
    """The start of an EVALSHA of ``calls`` script calls with ``keys`` keys in all: what
    comes before the keys' bulk strings, themselves followed by the calls' ARGV."""
    numkeys = str(keys)
    return f"*{3 + keys + calls}\r\n{_EVALSHA}${len(numkeys)}\r\n{numkeys}\r\n".encode()


def pack_evalsha(calls: Sequence[Call], encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """The Redis protocol (RESP) bytes of ``EVALSHA <SHA> <numkeys> *KEYS *ARGV`` for ``calls``.

    Byte for byte what redis-py's packer sends for the arguments of
    :func:`evalsha_args`, text encoded with ``encoding``.
    """
    return pack_packed([packed_call(call, encoding, errors) for call in calls])


def pack_packed(calls: Sequence[PackedCall]) -> bytes:
    """:func:`pack_evalsha` of calls already made into their parts (:func:`packed_call`)."""
    keys_count = 0
    for count, _, _ in calls:
        keys_count += count
    return join_evalsha(keys_count, [keys for _, keys, _ in calls], [argv for _, _, argv in calls])


def join_evalsha(keys_count: int, keys: list[bytes], argvs: Sequence[bytes]) -> bytes:
    """An EVALSHA of one script call per item of ``argvs`` (each a bulk string), whose
    ``keys_count`` keys are the bulk strings in ``keys`` (an item may hold several,
    one call's keys joined). Consumes ``keys``: the command is built in it."""
    keys.insert(0, evalsha_head(keys_count, len(argvs)))
    keys.extend(argvs)
    return b"".join(keys)


def split_reply(reply: object, calls: int) -> list[bytes | str]:
    """The per-call parts of one EVALSHA's reply (one line per call).

    Raises ValueError if it does not have ``calls`` lines.
    """
    if not isinstance(reply, bytes | str):
        raise ValueError(f"unexpected token bucket script reply: {reply!r}")
    parts: list[bytes | str] = []
    if isinstance(reply, bytes):
        parts.extend(reply.split(b"\n"))
    else:
        parts.extend(reply.split("\n"))
    if len(parts) != calls:
        raise ValueError(f"token bucket script answered {len(parts)} calls, not {calls}")
    return parts


def decode_reply(reply: object, expected: int) -> ScriptReply:
    """Decode one call's part of the reply (a string of numbers) for ``expected`` buckets.

    Raises ResponseError for a call the script could not run (``E <error>``:
    a key that is not a bucket), ValueError if the part is malformed.
    """
    admitted, numbers = decode_numbers(reply, expected)
    levels = tuple((numbers[i], numbers[i + 1]) for i in range(1, len(numbers), 2))
    return ScriptReply(admitted=admitted, now=numbers[0], levels=levels)


def decode_numbers(reply: object, expected: int) -> tuple[bool, list[float]]:
    """:func:`decode_reply` without the object: ``(admitted, [now, tokens 1, time 1, ...])``.

    Bucket ``i`` (from 0) has its level at ``numbers[2 * i + 1]`` and its time
    at ``numbers[2 * i + 2]``. Raises as :func:`decode_reply` does.
    """
    return ReplyDecoder().decode(reply, expected)


class ReplyDecoder:
    """:func:`decode_numbers` for the parts of one EVALSHA reply, parsing its clock once.

    The calls of one EVALSHA run in one script run, under one Redis TIME: every
    part repeats that ``now``, and a bucket's time is that same text unless
    Redis's clock went back. Parsing a float is most of what decoding a part
    costs, so the decoder parses that text once for the whole reply and takes
    each equal time from it (equal text: the same float).
    """

    __slots__ = ("_now", "_now_text")

    def __init__(self) -> None:
        self._now_text: bytes | str | None = None
        self._now = 0.0

    def now(self, text: bytes | str) -> float:
        """Redis's clock in a reply part, ``text``, parsed once per distinct text."""
        if text == self._now_text:
            return self._now
        now = self._now = float(text)
        self._now_text = text
        return now

    def decode(self, reply: object, expected: int) -> tuple[bool, list[float]]:
        """One call's part of the reply, for ``expected`` buckets; see :func:`decode_numbers`."""
        # Bytes are parsed as they come: float() reads ASCII bytes like text, and the
        # script writes nothing else, so decoding first would only copy.
        if isinstance(reply, bytes):
            if reply.startswith(b"E "):
                raise ResponseError(reply[2:].decode("utf-8", "replace"))
            fields: list[bytes] | list[str] = reply.split()
            flags: tuple[bytes, bytes] | tuple[str, str] = (b"1", b"0")
        elif isinstance(reply, str):
            if reply.startswith("E "):
                raise ResponseError(reply[2:])
            fields = reply.split()
            flags = ("1", "0")
        else:
            raise ValueError(f"unexpected token bucket script reply: {reply!r}")
        if len(fields) != 2 + 2 * expected or fields[0] not in flags:
            raise ValueError(f"unexpected token bucket script reply: {reply!r}")
        now_text = fields[1]
        now = self.now(now_text)
        numbers = [now]
        for i in range(2, len(fields), 2):
            numbers.append(float(fields[i]))
            stamp = fields[i + 1]
            numbers.append(now if stamp == now_text else float(stamp))
        return fields[0] == flags[0], numbers
