"""Surrogate keys: how an answer's tag header is read, and which purge tags can match."""

from __future__ import annotations

import pytest

from edge.cache.tags import MAX_TAG_LENGTH, MAX_TAGS, parse_tags, tag_problem


@pytest.mark.parametrize(
    ("lines", "tags"),
    [
        pytest.param(["user-7 team-3"], ("user-7", "team-3"), id="spaces-fastly"),
        pytest.param(["user-7,team-3"], ("user-7", "team-3"), id="commas-cloudflare"),
        pytest.param([" user-7 ,  team-3\t"], ("user-7", "team-3"), id="both-and-blanks"),
        pytest.param(["a b", "b c"], ("a", "b", "c"), id="lines-joined-repeats-once"),
        pytest.param([], (), id="no-header"),
        pytest.param(["  ,  "], (), id="only-separators"),
        pytest.param(["Café"], ("Café",), id="case-and-unicode-kept"),
    ],
)
def test_tags_are_split_on_spaces_and_commas(lines: list[str], tags: tuple[str, ...]) -> None:
    assert parse_tags(lines) == tags


def test_at_most_max_tags_distinct_tags() -> None:
    assert parse_tags([" ".join(f"t{i}" for i in range(MAX_TAGS))]) is not None
    assert parse_tags([" ".join(["same"] * (MAX_TAGS + 5))]) == ("same",)
    assert parse_tags([" ".join(f"t{i}" for i in range(MAX_TAGS + 1))]) is None


def test_a_tag_longer_than_the_bound_refuses_the_whole_answer() -> None:
    assert parse_tags(["a" * MAX_TAG_LENGTH]) == ("a" * MAX_TAG_LENGTH,)
    assert parse_tags(["ok " + "a" * (MAX_TAG_LENGTH + 1)]) is None
    # Bytes, not characters: 'é' is two bytes in UTF-8.
    assert parse_tags(["é" * (MAX_TAG_LENGTH // 2 + 1)]) is None


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("user-7", None),
        ("", "non-empty string"),
        (7, "non-empty string"),
        ("a b", "no space or comma"),
        ("a,b", "no space or comma"),
        ("x" * (MAX_TAG_LENGTH + 1), "at most"),
    ],
)
def test_a_purges_tag_must_be_one_that_can_be_stored(tag: object, problem: str | None) -> None:
    found = tag_problem(tag)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
