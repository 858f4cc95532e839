"""The token-bucket Lua script: its text, its SHA, its arguments and its reply.

Only data conversion lives here; sending it to Redis is the Redis limiter's job.
The script's reply carries raw levels, and the same functions that serve the
in-process buckets (:mod:`edge.ratelimit.bucket`) turn them into remaining,
reset and retry-after, so the two limiters cannot disagree on the arithmetic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
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


def script_args(calls: Sequence[Sequence[BucketCharge]]) -> list[str | int]:
    """``numkeys, *KEYS, *ARGV`` for one EVALSHA (after the SHA) running ``calls`` in order.

    Each call is one request's buckets; on Cluster, every key of one EVALSHA
    must be in one slot.
    """
    args: list[str | int] = [sum(len(call) for call in calls)]
    for call in calls:
        args.extend(c.key for c in call)
    for call in calls:
        args.append(
            " ".join([str(len(call)), *(f"{c.rate!r} {c.burst!r} {c.cost!r}" for c in call)])
        )
    return args


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
    if not isinstance(reply, bytes | str):
        raise ValueError(f"unexpected token bucket script reply: {reply!r}")
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    if text.startswith("E "):
        raise ResponseError(text[2:])
    fields = text.split()
    if len(fields) != 2 + 2 * expected or fields[0] not in ("0", "1"):
        raise ValueError(f"unexpected token bucket script reply: {reply!r}")
    numbers = [float(x) for x in fields[1:]]
    levels = tuple((numbers[i], numbers[i + 1]) for i in range(1, len(numbers), 2))
    return ScriptReply(admitted=fields[0] == "1", now=numbers[0], levels=levels)
