"""Regular expressions from the configuration, matched in linear time by RE2.

An operator's pattern is matched against a client's input (a header value, a
query value, a token's ``kid``): with Python's ``re``, which backtracks, a
pattern such as ``(a+)+$`` takes time exponential in the length of that input,
and a few kilobytes of it stall an event loop for good (a ReDoS). RE2
(Google's engine, the one Envoy's ``safe_regex`` uses) guarantees time linear
in the input, whatever the pattern; every pattern the configuration supplies
and a client's input is matched against goes through :func:`compile_safe_regex`,
and this module is the one place that names the engine. Fixed patterns written
in the code stay on ``re``.

The price of the guarantee is syntax: RE2 has no backreferences (``\\1``,
``(?P=name)``), no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), no
possessive quantifiers or atomic groups, no ``(?x)``, and a counted repetition
is at most ``{1000}`` (nested ones multiplied). Such a pattern is refused when
it is compiled, with RE2's own words (:class:`RegexSyntaxError`), never at
match time; so is one whose compiled form would pass RE2's memory budget
(8 MiB, e.g. ``\\p{L}{1000}``). Python's ``\\Z`` is written ``\\z`` in RE2
(the refusal says so). Named groups ``(?P<name>...)``, classes, ``(?i)`` and
``(?s)`` read as in Python.

Two differences remain for patterns both engines accept: ``\\d``, ``\\w``,
``\\s`` and ``\\b`` are ASCII-only in RE2 (Unicode in Python's ``re``), and
``$`` without ``(?m)`` matches only at the very end (Python's also before a
final newline; with a whole-value match, as the callers use, that only differs
for a pattern with something after ``$``).

Cost: RE2 is slower per call on short values, about ten times ``re``: the
value is encoded to UTF-8 and the call goes through google-re2's Python
wrapper into C++. Measured with ``timeit`` (best of 5) on a shared 2-core
machine, CPython 3.11, google-re2 1.1.20251105, per :meth:`SafeRegex.fullmatch`
against ``re.Pattern.fullmatch`` on the same value:

===========================  =====  ========  ==========
pattern                      value  ``re``    SafeRegex
===========================  =====  ========  ==========
``v[23]``                    2 ch   0.13 µs   1.4 µs
``[a-z]+-beta``              9 ch   0.14 µs   1.35 µs
``on|yes``                   4 ch   0.10 µs   1.0 µs
``[A-Za-z0-9_-]{1,64}``      14 ch  0.12 µs   1.4 µs
``(?i)mozilla/.*firefox.*``  70 ch  0.30 µs   1.8 µs
``[a-z]+``                   8 KB   13 µs     15 µs
``(a+)+$``                   8 KB   for ever  15 µs
===========================  =====  ========  ==========

So a regex condition tried costs about 1-1.5 µs more than with ``re``, a few
per cent of what a request costs the edge; Envoy makes the same trade for the
same reason.
"""

from __future__ import annotations

import re2

_OPTIONS = re2.Options()
# A refused pattern is reported once, by the config error; RE2 would also log
# it through absl on stderr, with a warning about absl's logging setup.
_OPTIONS.log_errors = False
# The callers only ask whether a value matches: no group spans to record.
_OPTIONS.never_capture = True

_SYNTAX = (
    "RE2 syntax is required (linear-time matching: no backreferences, lookaround "
    "or possessive quantifiers)"
)


class RegexSyntaxError(ValueError):
    """A pattern RE2 refuses. ``str()`` is one line: that RE2 syntax is required, then
    RE2's own description of the problem (and a hint for Python's ``\\Z``); the
    caller adds which setting holds the pattern."""


class SafeRegex:
    """A compiled configured pattern; matching takes time linear in the value.

    Safe to share between tasks and threads (RE2 objects are immutable once
    compiled). Any ``str`` can be matched, including the lone surrogates that
    stand for the non-UTF-8 bytes of a header value (aiohttp decodes header
    values with ``surrogateescape``): each is one character, as for ``re``.
    """

    __slots__ = ("_regexp", "pattern")

    def __init__(self, pattern: str) -> None:
        """Compile ``pattern``; raises :class:`RegexSyntaxError` if RE2 refuses it."""
        try:
            self._regexp = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            raise RegexSyntaxError(_explained(exc)) from None
        except UnicodeEncodeError:  # a lone surrogate, e.g. from YAML's "\udcff"
            raise RegexSyntaxError(f"{_SYNTAX}: the pattern is not valid Unicode") from None
        self.pattern = pattern
        """The pattern as configured."""

    def fullmatch(self, value: str) -> bool:
        """Whether the pattern matches the whole of ``value``."""
        return self._regexp.fullmatch(_utf8(value)) is not None

    def search(self, value: str) -> bool:
        """Whether the pattern matches somewhere in ``value``."""
        return self._regexp.search(_utf8(value)) is not None

    def __repr__(self) -> str:
        return f"SafeRegex({self.pattern!r})"


def compile_safe_regex(pattern: str) -> SafeRegex:
    """``pattern`` compiled by RE2. Raises :class:`RegexSyntaxError` (a ValueError)
    when it is not RE2 syntax, or too large for RE2's memory budget."""
    return SafeRegex(pattern)


def _utf8(value: str) -> bytes:
    # re2 would encode a str strictly and raise on a lone surrogate, which a
    # client can send in a header (see SafeRegex). Matched as bytes, the wrapper
    # also skips mapping byte offsets back to characters, which we never read.
    return value.encode("utf-8", "surrogatepass")


def _explained(exc: re2.error) -> str:
    # The binding's error carries RE2's message as bytes.
    raw = exc.args[0] if exc.args else b""
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if detail.startswith("pattern too large"):
        # Valid syntax, but the compiled program would pass RE2's memory budget.
        return f"too large for RE2 (more than {_OPTIONS.max_mem} bytes compiled): {detail}"
    text = f"{_SYNTAX}: {detail}"
    if "\\Z" in detail:
        text += " (Python's \\Z is written \\z in RE2)"
    return text
