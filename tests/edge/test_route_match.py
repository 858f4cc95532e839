"""Conditions on headers and query parameters (pure), and the ``routes[].match`` config."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from multidict import CIMultiDict

from edge.config import RouteMatchConfig, load_edge_config
from edge.gateway import config_routes
from edge.route_match import (
    Condition,
    Conditions,
    MatchKind,
    header_condition,
    parse_query,
    query_condition,
)
from mesh.config.safe_regex import RegexSyntaxError, SafeRegex
from tests.edge.refused_config import assert_refused

# --- one condition --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "values", "accepted"),
    [
        pytest.param("exact", "2", ["2"], True, id="exact"),
        pytest.param("exact", "2", ["20"], False, id="exact-not-a-prefix"),
        pytest.param("exact", "v2", ["V2"], False, id="exact-case-sensitive"),
        pytest.param("exact", "2", [], False, id="exact-absent"),
        pytest.param("exact", "", [""], True, id="exact-empty-value"),
        pytest.param("exact", "", [], False, id="exact-empty-needs-the-name"),
        pytest.param("exact", "2", ["1", "2"], True, id="exact-any-of-several"),
        pytest.param("exact", "2", ["1", "3"], False, id="exact-none-of-several"),
        pytest.param("exact", "a", ["a, b"], False, id="exact-values-not-split-at-commas"),
        pytest.param("prefix", "orders-app/", ["orders-app/1.2"], True, id="prefix"),
        pytest.param("prefix", "orders-app/", ["x orders-app/1"], False, id="prefix-anchored"),
        pytest.param("prefix", "Eu-", ["eu-west"], False, id="prefix-case-sensitive"),
        pytest.param("prefix", "b", ["a", "bc"], True, id="prefix-any-of-several"),
        pytest.param("prefix", "b", [], False, id="prefix-absent"),
        pytest.param("regex", "v[23]", ["v2"], True, id="regex"),
        pytest.param("regex", "v[23]", ["v23"], False, id="regex-full-match-not-search"),
        pytest.param("regex", "v[23]", ["xv2"], False, id="regex-anchored-start"),
        pytest.param("regex", "a|b", ["ab"], False, id="regex-alternation-whole-value"),
        pytest.param("regex", "[0-9]+", ["x", "42"], True, id="regex-any-of-several"),
        pytest.param("regex", ".*", [], False, id="regex-absent"),
        pytest.param("regex", ".*", [""], True, id="regex-empty-value"),
        pytest.param("regex", "(?P<v>v[0-9]+)", ["v12"], True, id="regex-named-group"),
        pytest.param("regex", ".+", ["caf\udce9"], True, id="regex-non-utf8-header-byte"),
        pytest.param("present", "", ["anything"], True, id="present"),
        pytest.param("present", "", [""], True, id="present-empty-value"),
        pytest.param("present", "", [], False, id="present-absent"),
        pytest.param("absent", "", [], True, id="absent"),
        pytest.param("absent", "", [""], False, id="absent-but-sent-empty"),
        pytest.param("absent", "", ["1", "2"], False, id="absent-but-sent-twice"),
    ],
)
def test_a_condition_accepts(kind: MatchKind, text: str, values: list[str], accepted: bool) -> None:
    assert header_condition("X-A", kind, text).accepts(values) is accepted
    assert query_condition("a", kind, text).accepts(values) is accepted


def test_header_names_are_lower_cased_query_names_kept() -> None:
    assert header_condition("X-Api-Version", "present").name == "x-api-version"
    assert query_condition("Debug", "present").name == "Debug"


def test_present_and_absent_carry_no_text() -> None:
    assert header_condition("X-A", "present", "ignored") == header_condition("X-A", "present")


def test_a_regex_is_compiled_once_and_conditions_compare_by_its_text() -> None:
    one, two = (
        header_condition("X-A", "regex", "v[0-9]"),
        header_condition("x-a", "regex", "v[0-9]"),
    )
    assert isinstance(one.compiled, SafeRegex)  # RE2, not Python's backtracking re
    assert one == two and hash(one) == hash(two)
    assert one != header_condition("X-A", "regex", "v[0-8]")
    with pytest.raises(RegexSyntaxError, match="RE2 syntax is required"):
        header_condition("X-A", "regex", "(")
    with pytest.raises(RegexSyntaxError, match="RE2 syntax is required"):
        query_condition("q", "regex", "(?=v)v")


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param(header_condition("X-A", "regex", "(a+)+$"), id="header-nested-plus"),
        pytest.param(query_condition("q", "regex", "(x+x+)+y"), id="query-nested-plus"),
    ],
)
def test_a_regex_condition_takes_linear_time_on_a_hostile_client_value(
    condition: Condition,
) -> None:
    # An 8 KB header value (aiohttp's limit) that Python's re would backtrack on for ever;
    # the type is checked first so that a regression fails rather than hangs.
    assert isinstance(condition.compiled, SafeRegex)
    hostile = ["a" * 8190 + "!", "x" * 8190]
    started = time.monotonic()
    assert condition.accepts(hostile) is False
    assert time.monotonic() - started < 5.0  # generous: it takes about a millisecond


@pytest.mark.parametrize(
    ("condition", "described"),
    [
        (header_condition("X-A", "exact", "1"), {"name": "x-a", "exact": "1"}),
        (header_condition("X-A", "prefix", "p"), {"name": "x-a", "prefix": "p"}),
        (query_condition("q", "regex", "a+"), {"name": "q", "regex": "a+"}),
        (query_condition("q", "present"), {"name": "q", "present": True}),
        (query_condition("q", "absent"), {"name": "q", "present": False}),
    ],
)
def test_a_condition_describes_itself_as_the_config_writes_it(
    condition: Condition, described: dict[str, object]
) -> None:
    assert condition.describe() == described


# --- conditions together --------------------------------------------------------------------

V2_DEBUG = Conditions(
    headers=(header_condition("X-Api-Version", "exact", "2"),),
    query=(query_condition("debug", "exact", "1"),),
)


@pytest.mark.parametrize(
    ("headers", "query", "accepted"),
    [
        pytest.param([("X-Api-Version", "2")], "debug=1", True, id="both"),
        pytest.param([("x-api-version", "2")], "debug=1", True, id="header-name-any-case"),
        pytest.param([("X-API-VERSION", "2")], "debug=1", True, id="header-name-upper-case"),
        pytest.param([("X-Api-Version", "2")], "", False, id="header-only"),
        pytest.param([], "debug=1", False, id="query-only"),
        pytest.param([("X-Api-Version", "1"), ("X-Api-Version", "2")], "debug=1", True, id="multi"),
        pytest.param([("X-Api-Version", "2")], "Debug=1", False, id="query-name-case-sensitive"),
        pytest.param([("X-Api-Version", "2")], "debug=0&debug=1", True, id="repeated-param"),
    ],
)
def test_every_condition_must_hold(
    headers: list[tuple[str, str]], query: str, accepted: bool
) -> None:
    assert V2_DEBUG.accepts(CIMultiDict(headers), parse_query(query)) is accepted


def test_conditions_count_and_compare_in_any_order() -> None:
    a, b = header_condition("X-A", "present"), header_condition("X-B", "exact", "1")
    q = query_condition("q", "absent")
    assert len(Conditions((a, b), (q,))) == 3
    assert not Conditions()
    assert Conditions((a, b)).key == Conditions((b, a)).key
    assert Conditions((a, a)).key == Conditions((a,)).key
    assert Conditions((a,)).key != Conditions((), (query_condition("x-a", "present"),)).key


# --- the query ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "params"),
    [
        pytest.param("", {}, id="none"),
        pytest.param("debug=1", {"debug": ["1"]}, id="one"),
        pytest.param("debug", {"debug": [""]}, id="bare-name-is-blank"),
        pytest.param("debug=", {"debug": [""]}, id="blank-value"),
        pytest.param("a=1&a=2&b=3", {"a": ["1", "2"], "b": ["3"]}, id="repeated-in-order"),
        pytest.param("q=a%20b+c&%64ebug=%31", {"q": ["a b c"], "debug": ["1"]}, id="decoded"),
        pytest.param("a=1;b=2", {"a": ["1;b=2"]}, id="only-ampersand-separates"),
        pytest.param("&&a=1&", {"a": ["1"]}, id="empty-pieces-dropped"),
    ],
)
def test_parse_query(raw: str, params: dict[str, list[str]]) -> None:
    assert parse_query(raw) == params


# --- the config -----------------------------------------------------------------------------


def test_config_match_becomes_the_routes_conditions(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        """
routes:
  - prefix: /api/orders
    service: orders-v2
    match:
      headers:
        - {name: X-Api-Version, exact: "2"}
        - {name: User-Agent, prefix: orders-app/}
        - {name: X-Tenant, regex: "[a-z]+-beta"}
        - {name: X-Legacy, present: false}
      query:
        - {name: debug, present: true}
  - {prefix: /api/orders, service: orders}
  - {prefix: /api/users, service: users, match: {}}
"""
    )
    v2, plain, empty = config_routes(load_edge_config(path))
    assert v2.conditions == Conditions(
        headers=(
            header_condition("x-api-version", "exact", "2"),
            header_condition("user-agent", "prefix", "orders-app/"),
            header_condition("x-tenant", "regex", "[a-z]+-beta"),
            header_condition("x-legacy", "absent"),
        ),
        query=(query_condition("debug", "present"),),
    )
    assert "match" not in v2.options  # routing's own, not a feature's
    assert plain.conditions is None
    assert empty.conditions is None  # no condition at all is none


def test_present_true_and_false_in_the_config() -> None:
    config = RouteMatchConfig.model_validate(
        {"headers": [{"name": "X-A", "present": True}, {"name": "X-B", "present": False}]}
    )
    assert config.conditions() == Conditions(
        (header_condition("X-A", "present"), header_condition("X-B", "absent"))
    )


def _route_with(match: str) -> str:
    return (
        f"routes:\n  - {{prefix: /a, service: a}}\n  - {{prefix: /a, service: b, match: {match}}}"
    )


@pytest.mark.parametrize(
    ("match", "key", "problem"),
    [
        pytest.param(
            "{headers: [{name: X-A, exact: '1', prefix: '2'}]}",
            "routes[1].match.headers[0]",
            "give exactly one of exact, prefix, regex and present (found exact and prefix)",
            id="two-kinds",
        ),
        pytest.param(
            "{query: [{name: debug}]}",
            "routes[1].match.query[0]",
            "give exactly one of exact, prefix, regex and present (found none)",
            id="no-kind",
        ),
        pytest.param(
            "{headers: [{name: X-A, present: true}, {name: X-B, present: false, regex: x}]}",
            "routes[1].match.headers[1]",
            "(found regex and present)",
            id="present-false-is-a-kind-too",
        ),
        pytest.param(
            "{headers: [{name: X-A, regex: '(v2'}]}",
            "routes[1].match.headers[0].regex",
            "not a valid regular expression: RE2 syntax is required (linear-time matching: "
            "no backreferences, lookaround or possessive quantifiers): missing ): (v2",
            id="bad-regex",
        ),
        pytest.param(
            "{query: [{name: q, regex: '*'}]}",
            "routes[1].match.query[0].regex",
            "not a valid regular expression: RE2 syntax is required (linear-time matching: "
            "no backreferences, lookaround or possessive quantifiers): "
            "no argument for repetition operator: *",
            id="bad-query-regex",
        ),
        pytest.param(
            r"{headers: [{name: X-A, regex: '(a)\1'}]}",
            "routes[1].match.headers[0].regex",
            "RE2 syntax is required (linear-time matching: no backreferences, lookaround "
            r"or possessive quantifiers): invalid escape sequence: \1",
            id="re2-no-backreference",
        ),
        pytest.param(
            "{headers: [{name: X-A, regex: 'v(?!1)[0-9]'}]}",
            "routes[1].match.headers[0].regex",
            "RE2 syntax is required (linear-time matching: no backreferences, lookaround "
            "or possessive quantifiers): invalid perl operator: (?!",
            id="re2-no-lookahead",
        ),
        pytest.param(
            "{query: [{name: q, regex: '(?<=x)y'}]}",
            "routes[1].match.query[0].regex",
            "RE2 syntax is required (linear-time matching: no backreferences, lookaround "
            "or possessive quantifiers): invalid perl operator: (?<=",
            id="re2-no-lookbehind",
        ),
        pytest.param(
            "{query: [{name: q, regex: 'a++'}]}",
            "routes[1].match.query[0].regex",
            "RE2 syntax is required (linear-time matching: no backreferences, lookaround "
            "or possessive quantifiers): bad repetition operator: ++",
            id="re2-no-possessive",
        ),
        pytest.param(
            r"{headers: [{name: X-A, regex: 'v[0-9]\Z'}]}",
            "routes[1].match.headers[0].regex",
            r"invalid escape sequence: \Z (Python's \Z is written \z in RE2)",
            id="re2-python-end-of-text",
        ),
        pytest.param(
            "{headers: [{name: 'X Api', exact: '2'}]}",
            "routes[1].match.headers[0].name",
            "'X Api' is not a valid header name",
            id="header-name-not-a-token",
        ),
        pytest.param(
            "{headers: [{name: 'X-A:', present: true}]}",
            "routes[1].match.headers[0].name",
            "not a valid header name",
            id="header-name-with-colon",
        ),
        pytest.param(
            "{query: [{name: '', present: true}]}",
            "routes[1].match.query[0].name",
            "at least 1 character",
            id="empty-param-name",
        ),
        pytest.param(
            "{headers: [{name: X-Api-Version, exact: 2}]}",
            "routes[1].match.headers[0].exact",
            'expected text, got 2: quote it, e.g. "2"',
            id="number-needs-quotes",
        ),
        pytest.param(
            "{query: [{name: beta, prefix: yes}]}",
            "routes[1].match.query[0].prefix",
            "expected text, got True",
            id="yaml-boolean-needs-quotes",
        ),
        pytest.param(
            "{headers: [{name: X-A, present: maybe}]}",
            "routes[1].match.headers[0].present",
            "valid boolean",
            id="present-not-a-boolean",
        ),
        pytest.param(
            "{headers: [{name: X-A, suffix: x}]}",
            "routes[1].match.headers[0].suffix",
            "unknown key",
            id="unknown-kind",
        ),
        pytest.param("{cookies: []}", "routes[1].match.cookies", "unknown key", id="unknown-part"),
        pytest.param(
            "{headers: {name: X-A, present: true}}",
            "routes[1].match.headers",
            "valid tuple",
            id="headers-not-a-list",
        ),
    ],
)
def test_bad_match_config_is_refused_naming_the_key(
    tmp_path: Path, match: str, key: str, problem: str
) -> None:
    assert_refused(tmp_path, _route_with(match), key, problem)
