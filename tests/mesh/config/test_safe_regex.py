"""Configured patterns compiled by RE2: Python's matching semantics where both engines
agree, refusals in RE2's words, linear time on hostile values."""

from __future__ import annotations

import re
import time

import pytest
import re2

from mesh.config.safe_regex import RegexSyntaxError, SafeRegex, compile_safe_regex

# --- the same answers as Python's re for valid patterns ------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("v[23]", "v2"),
        ("v[23]", "v23"),
        ("v[23]", "xv2"),
        ("a|b", "ab"),
        ("a|b", "b"),
        ("[0-9]+", "42"),
        ("[0-9]+", ""),
        (".*", ""),
        (".*", "anything at all"),
        (".", "\n"),  # no (?s): the dot stops at a newline in both
        ("(?s).", "\n"),
        ("(?i)mozilla/.*firefox.*", "Mozilla/5.0 (X11; rv:126.0) Gecko/20100101 Firefox/126.0"),
        ("(?P<tier>gold|silver)-[a-z]+", "gold-acme"),  # Python's named group
        ("(?:web|ios|android)/[0-9.]+", "ios/17.4"),
        (r"[A-Za-z0-9_-]{1,64}", "key-2024_05"),
        (r"[A-Za-z0-9_-]{1,64}", "k" * 65),
        (r"\d+\.\d+", "1.25"),
        ("^api$", "api"),
        ("é+", "ééé"),  # UTF-8 in the pattern and in the value
        ("[^a]", "é"),  # one character, not two bytes
        ("..", "é"),
        (".", "\udcff"),  # a lone surrogate: a non-UTF-8 byte of a header value
        ("x.y", "x\udcffy"),
        ("[^a]*", "x\udcff\udcfey"),
    ],
)
def test_answers_as_re_for_a_valid_pattern(pattern: str, value: str) -> None:
    compiled = compile_safe_regex(pattern)
    assert compiled.fullmatch(value) is (re.fullmatch(pattern, value) is not None)
    assert compiled.search(value) is (re.search(pattern, value) is not None)


@pytest.mark.parametrize(("value", "matched"), [("v2", True), ("v2\n", False), ("v2x", False)])
def test_re2_end_of_text_is_written_as_python_writes_it_with_z(value: str, matched: bool) -> None:
    # RE2's \z is Python's \Z (which RE2 refuses, see below).
    assert compile_safe_regex(r"v[0-9]\z").search(value) is matched
    assert (re.search(r"v[0-9]\Z", value) is not None) is matched


def test_fullmatch_is_the_whole_value_and_search_anywhere() -> None:
    compiled = compile_safe_regex("b+")
    assert compiled.fullmatch("bb") and not compiled.fullmatch("abba")
    assert compiled.search("abba") and not compiled.search("acca")


def test_it_is_re2_not_re_and_keeps_the_text() -> None:
    compiled = compile_safe_regex("v[0-9]")
    assert isinstance(compiled, SafeRegex)
    # The engine underneath: RE2's compiled object, never a backtracking one.
    assert isinstance(compiled._regexp, type(re2.compile("x")))
    assert compiled.pattern == "v[0-9]"
    assert repr(compiled) == "SafeRegex('v[0-9]')"


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "detail"),
    [
        pytest.param(r"(a)\1", r"invalid escape sequence: \1", id="backreference"),
        pytest.param(r"(?P<x>a)(?P=x)", "invalid perl operator: (?P", id="named-backreference"),
        pytest.param("(?=a)a", "invalid perl operator: (?=", id="lookahead"),
        pytest.param("(?!a)b", "invalid perl operator: (?!", id="negative-lookahead"),
        pytest.param("(?<=a)b", "invalid perl operator: (?<=", id="lookbehind"),
        pytest.param("(?<!a)b", "invalid perl operator: (?<!", id="negative-lookbehind"),
        pytest.param("a++", "bad repetition operator: ++", id="possessive"),
        pytest.param("(?>a+)b", "invalid perl operator: (?>", id="atomic-group"),
        pytest.param("(?x) a b", "invalid perl operator: (?x", id="verbose-flag"),
        pytest.param("a{1001}", "invalid repetition size: {1001}", id="repetition-over-1000"),
        pytest.param("(v2", "missing ): (v2", id="unbalanced"),
        pytest.param("*", "no argument for repetition operator: *", id="nothing-to-repeat"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_in_its_words(pattern: str, detail: str) -> None:
    with pytest.raises(RegexSyntaxError) as caught:
        compile_safe_regex(pattern)
    message = str(caught.value)
    assert message.startswith("RE2 syntax is required"), message
    assert message.endswith(f": {detail}"), message
    assert isinstance(caught.value, ValueError)


def test_python_end_of_text_escape_gets_a_hint() -> None:
    with pytest.raises(RegexSyntaxError, match=r"invalid escape sequence: \\Z \(Python's \\Z is "):
        compile_safe_regex(r"v[0-9]+\Z")


def test_a_pattern_over_re2_memory_budget_is_refused_as_too_large() -> None:
    with pytest.raises(RegexSyntaxError) as caught:
        compile_safe_regex(r"\p{L}{1000}")
    assert str(caught.value).startswith("too large for RE2 (more than 8388608 bytes compiled)")
    assert "pattern too large - compile failed" in str(caught.value)


def test_a_pattern_that_is_not_unicode_is_refused_not_raised_as_an_encode_error() -> None:
    with pytest.raises(RegexSyntaxError, match="the pattern is not valid Unicode"):
        compile_safe_regex("a\udcff")


def test_a_refusal_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    # RE2 logs parse errors through absl by default; the config error says it once.
    with pytest.raises(RegexSyntaxError):
        compile_safe_regex("(?=a)")
    assert capfd.readouterr().err == ""


# --- linear time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "fullmatch", "search"),
    [
        # Python's re takes ~2**n steps on these: n = 30 is already minutes, 64 forever.
        ("(a+)+$", "a" * 64 + "!", False, False),
        ("(x+x+)+y", "x" * 64, False, False),
        ("(a|aa)+", "a" * 64 + "!", False, True),
        ("(.*a){12}", "a" * 64 + "!", False, True),
        # ... and on the whole of a client's 8 KB header value.
        ("(a+)+$", "a" * 8190 + "!", False, False),
        ("(x+x+)+y", "x" * 8190, False, False),
        ("(x+x+)+y", "x" * 8190 + "y", True, True),
    ],
)
def test_catastrophic_patterns_complete_on_a_hostile_value(
    pattern: str, value: str, fullmatch: bool, search: bool
) -> None:
    compiled = compile_safe_regex(pattern)
    # Checked first: were a backtracking engine back, the calls below would never return.
    assert isinstance(compiled._regexp, type(re2.compile("x")))
    started = time.monotonic()
    assert compiled.fullmatch(value) is fullmatch
    assert compiled.search(value) is search
    # A generous bound, not a benchmark: RE2 takes about a millisecond here.
    assert time.monotonic() - started < 5.0
