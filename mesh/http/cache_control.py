"""``Cache-Control`` field values split into directives (RFC 9111 §5.2; pure).

Read by the edge's response cache (:mod:`edge.cache.control`, which decides what a
shared cache does with them) and by the JWKS fetch (:mod:`edge.auth.jwks_http`, a key
set's lifetime). Parsing is forgiving, as RFC 9111 asks: names are case-insensitive,
values may be quoted, a directive given twice counts once (its first value), and a
delta-seconds argument that cannot be read counts as 0.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_DELTA_SECONDS = 2147483648
"""What a larger delta-seconds value counts as (RFC 9111 §1.2.2)."""


def digits(text: str) -> bool:
    """Whether ``text`` is a non-empty run of ASCII digits (``str.isdigit`` alone also
    takes characters such as "²", which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def directives(values: Iterable[str]) -> dict[str, str | None]:
    """The directives of ``Cache-Control`` field values (several lines are one list):
    lower-cased name → its argument, unquoted (None: no argument). A name given again
    keeps its first argument."""
    found: dict[str, str | None] = {}
    for value in values:
        for name, argument in _items(value):
            found.setdefault(name, argument)
    return found


def _items(value: str) -> Iterable[tuple[str, str | None]]:
    """``name[=token|"quoted"]`` items of one field value; commas inside quotes kept."""
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        start = i
        while i < n and value[i] not in "=, \t":
            i += 1
        name = value[start:i].lower()
        while i < n and value[i] in " \t":
            i += 1
        argument: str | None = None
        if i < n and value[i] == "=":
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and value[i] != '"':
                    if value[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(value[i])
                    i += 1
                i += 1  # the closing quote
                argument = "".join(chars)
            else:
                start = i
                while i < n and value[i] != ",":
                    i += 1
                argument = value[start:i].strip()
        while i < n and value[i] != ",":
            i += 1  # anything after a directive's argument, up to the next comma
        if name:
            yield name, argument


def delta_seconds(argument: str | None) -> int:
    """A delta-seconds argument; 0 (stale) when absent or unreadable, capped at
    :data:`MAX_DELTA_SECONDS`."""
    if argument is None or not digits(argument):
        return 0
    return min(int(argument), MAX_DELTA_SECONDS)
