"""X-Request-Id: kept when the client's is well-formed, generated otherwise."""

from __future__ import annotations

import os
import re

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{8,128}")


def accept_or_generate(incoming: str | None) -> str:
    """Return ``incoming`` if it is 8 to 128 safe characters, else a new random id.

    Length and alphabet are bounded so a client cannot smuggle log-injection or
    header-splitting payloads through an id that every hop repeats.
    """
    if incoming is not None and _VALID.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()
