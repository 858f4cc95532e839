"""Managed identity headers: one key for every spelling, and removal of all of them."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from mesh.identity.headers import (
    DEFAULT_IDENTITY_HEADERS,
    header_key,
    header_keys,
    is_header_name,
    managed_names_present,
    remove_managed,
)

KEYS = header_keys(DEFAULT_IDENTITY_HEADERS)


@pytest.mark.parametrize(
    "spelling", ["X-User-Id", "x-user-id", "X-USER-ID", "X_User_Id", "x_user-id", "X-User_ID"]
)
def test_every_spelling_has_the_same_key(spelling: str) -> None:
    assert header_key(spelling) == "x-user-id"
    assert header_key(spelling) in KEYS


def test_unrelated_names_are_not_managed() -> None:
    assert header_key("X-User-Ids") not in KEYS
    assert header_key("X-User") not in KEYS
    assert header_key("User-Id") not in KEYS


def test_remove_managed_removes_every_copy_and_spelling_and_nothing_else() -> None:
    headers: CIMultiDict[str] = CIMultiDict(
        [
            ("Host", "x"),
            ("X-User-Id", "admin"),
            ("x-user-id", "root"),
            ("X_User_Id", "admin"),
            ("X-User-Roles", "admin"),
            ("x_auth_method", "apikey"),
            ("X-Request-Id", "abcdefgh"),
            ("X-User-Idx", "kept"),
        ]
    )
    assert remove_managed(headers, KEYS) == 5
    assert list(headers.items()) == [
        ("Host", "x"),
        ("X-Request-Id", "abcdefgh"),
        ("X-User-Idx", "kept"),
    ]
    assert managed_names_present(headers, KEYS) == []
    assert remove_managed(headers, KEYS) == 0


def test_managed_names_present_lists_each_spelling_once() -> None:
    headers: CIMultiDict[str] = CIMultiDict(
        [("X-User-Id", "a"), ("X-User-Id", "b"), ("X_User_Id", "c"), ("Other", "d")]
    )
    assert managed_names_present(headers, KEYS) == ["X-User-Id", "X_User_Id"]


@pytest.mark.parametrize(
    ("name", "valid"),
    [("X-User-Id", True), ("X_User_Id", True), ("X User", False), ("X:Y", False), ("", False)],
)
def test_header_names_are_rfc_9110_tokens(name: str, valid: bool) -> None:
    assert is_header_name(name) is valid


@pytest.mark.parametrize(
    "name",
    ["X-User-Id", "x-USER-id", "X_User_Id", "x-user_id", "X-Auth-Method", "x_consumer_id"],
)
def test_remove_managed_finds_one_managed_name_among_unrelated_ones(name: str) -> None:
    # A lone managed header, in any spelling, must not slip past the quick
    # "nothing managed here" answer.
    headers: CIMultiDict[str] = CIMultiDict(
        [("Host", "x"), ("X_Other_Thing", "kept"), (name, "spoofed"), ("Accept", "*/*")]
    )
    assert remove_managed(headers, KEYS) == 1
    assert list(headers.items()) == [("Host", "x"), ("X_Other_Thing", "kept"), ("Accept", "*/*")]


def test_remove_managed_leaves_headers_without_managed_names_untouched() -> None:
    items = [("Host", "x"), ("X-User-Idx", "a"), ("X_Request_Id", "b"), ("User-Id", "c")]
    headers: CIMultiDict[str] = CIMultiDict(items)
    assert remove_managed(headers, KEYS) == 0
    assert list(headers.items()) == items
