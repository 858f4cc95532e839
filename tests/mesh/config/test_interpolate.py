"""``${VAR}`` / ``${VAR:-default}`` / ``$$`` substitution on parsed YAML trees."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mesh.config.interpolate import MissingVariable, interpolate

ENV = {"HOST": "consul.internal", "PORT": "8500", "EMPTY": "", "DOLLAR": "$x", "REF": "${HOST}"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("plain", "plain", id="no-dollar"),
        pytest.param("${HOST}", "consul.internal", id="whole-value"),
        pytest.param("${HOST}:${PORT}", "consul.internal:8500", id="two-variables"),
        pytest.param("http://${HOST}/v1", "http://consul.internal/v1", id="embedded"),
        pytest.param("${UNSET:-fallback}", "fallback", id="default-when-unset"),
        pytest.param("${EMPTY:-fallback}", "fallback", id="default-when-empty"),
        pytest.param("${HOST:-fallback}", "consul.internal", id="set-ignores-default"),
        pytest.param("${UNSET:-}", "", id="empty-default"),
        pytest.param("${UNSET:-a:b/c d}", "a:b/c d", id="default-with-punctuation"),
        pytest.param("${EMPTY}", "", id="set-but-empty-no-default"),
        pytest.param("$$", "$", id="escaped-dollar"),
        pytest.param("price: $$5", "price: $5", id="escaped-dollar-in-text"),
        pytest.param("$${HOST}", "${HOST}", id="escaped-dollar-before-brace-not-substituted"),
        pytest.param("$$$${HOST}", "$${HOST}", id="two-escapes"),
        pytest.param("$$${HOST}", "$consul.internal", id="escape-then-variable"),
        pytest.param("$HOST", "$HOST", id="bare-dollar-name-left-alone"),
        pytest.param("cost $5", "cost $5", id="lone-dollar-left-alone"),
        pytest.param("${1BAD}", "${1BAD}", id="invalid-name-left-alone"),
        pytest.param("${HOST", "${HOST", id="unterminated-left-alone"),
        pytest.param("${DOLLAR}", "$x", id="value-not-rescanned"),
        pytest.param("${REF}", "${HOST}", id="value-with-reference-not-expanded"),
        pytest.param("${_UNDER_score1:-ok}", "ok", id="underscore-names"),
    ],
)
def test_substitution_in_strings(value: str, expected: str) -> None:
    assert interpolate(value, ENV) == expected


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        pytest.param(
            {"consul": {"address": "${HOST}:${PORT}"}},
            {"consul": {"address": "consul.internal:8500"}},
            id="nested-mapping",
        ),
        pytest.param(
            {"routes": [{"prefix": "/a", "service": "${HOST}"}, "${PORT}"]},
            {"routes": [{"prefix": "/a", "service": "consul.internal"}, "8500"]},
            id="list-items",
        ),
        pytest.param(
            {"${HOST}": "x"},
            {"${HOST}": "x"},
            id="keys-not-substituted",
        ),
        pytest.param(
            {"n": 3, "f": 1.5, "b": True, "none": None},
            {"n": 3, "f": 1.5, "b": True, "none": None},
            id="non-strings-unchanged",
        ),
        pytest.param({}, {}, id="empty"),
    ],
)
def test_substitution_in_trees(tree: Any, expected: Any) -> None:
    assert interpolate(tree, ENV) == expected


def test_interpolate_returns_a_copy() -> None:
    tree = {"a": ["${HOST}"], "b": {"c": "${PORT}"}}
    before = copy.deepcopy(tree)
    out = interpolate(tree, ENV)
    assert tree == before
    assert out == {"a": ["consul.internal"], "b": {"c": "8500"}}


def test_variable_value_cannot_inject_structure() -> None:
    env = {"EVIL": "x\nadmin:\n  port: 1"}
    assert interpolate({"name": "${EVIL}"}, env) == {"name": "x\nadmin:\n  port: 1"}


@pytest.mark.parametrize(
    ("tree", "name", "key_path"),
    [
        pytest.param("${NOPE}", "NOPE", "", id="top-level-string"),
        pytest.param({"token": "${NOPE}"}, "NOPE", "token", id="top-level-key"),
        pytest.param({"consul": {"token": "x${NOPE}"}}, "NOPE", "consul.token", id="nested"),
        pytest.param(
            {"routes": [{"prefix": "/a"}, {"service": "${NOPE}"}]},
            "NOPE",
            "routes[1].service",
            id="in-list",
        ),
        pytest.param({"tags": ["ok", "${NOPE}"]}, "NOPE", "tags[1]", id="list-of-strings"),
        pytest.param({"a": "${HOST} ${NOPE}"}, "NOPE", "a", id="after-a-good-variable"),
    ],
)
def test_missing_variable(tree: Any, name: str, key_path: str) -> None:
    with pytest.raises(MissingVariable) as info:
        interpolate(tree, ENV)
    assert info.value.name == name
    assert info.value.key_path == key_path
    assert name in str(info.value)
    assert "not set" in str(info.value)
