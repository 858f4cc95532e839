"""X-Request-Id: kept when the client's is well-formed, generated otherwise."""

from __future__ import annotations

import os
import re

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{8,128}")

IDS_PER_READ = 256
"""Generated ids are read from ``os.urandom`` this many at a time: one system call
(``getrandom``) per 256 requests instead of one per request."""
_unused: list[str] = []
"""Ids read and not yet handed out; emptied in a forked child, so that no two
processes ever hand out the same one."""
os.register_at_fork(after_in_child=_unused.clear)


def accept_or_generate(incoming: str | None) -> str:
    """Return ``incoming`` if it is 8 to 128 safe characters, else a new random id.

    Length and alphabet are bounded so a client cannot smuggle log-injection or
    header-splitting payloads through an id that every hop repeats.
    """
    if incoming is not None and _VALID.fullmatch(incoming):
        return incoming
    return new_id()


def new_id() -> str:
    """32 random hex digits (128 bits from ``os.urandom``), never handed out before."""
    if not _unused:
        digits = os.urandom(16 * IDS_PER_READ).hex()
        _unused.extend([digits[i : i + 32] for i in range(0, len(digits), 32)])
    return _unused.pop()
