"""Reading the admin token from a file or a variable, and checking a presented one
(mesh/admin_token.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.admin_token import (
    MIN_LENGTH,
    AdminToken,
    TokenUnavailable,
    read_token_env,
    read_token_file,
)

TOKEN = "3f9a1c0e5b7d2a4f6e8c0b1d3a5f7e9c"


def test_a_file_token_is_its_text_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")  # what `echo` leaves
    token = read_token_file(str(path))
    assert token.secret == TOKEN.encode()
    assert token.origin == str(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b" \n\t\n", "is empty"),
        (b"short-token\n", "holds 11 characters; a token needs at least 16"),
        (b"two words in the file ok", "holds characters a bearer token cannot have"),
        ("é".encode() * 20, "holds characters a bearer token cannot have"),
        (b"=" + b"a" * 20, "holds characters a bearer token cannot have"),
    ],
)
def test_a_file_without_a_valid_token_is_refused_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(TokenUnavailable) as caught:
        read_token_file(str(path))
    assert caught.value.key == "token_file"
    assert str(path) in caught.value.problem
    assert problem in caught.value.problem


def test_a_missing_or_unreadable_file_is_refused_with_the_systems_words(tmp_path: Path) -> None:
    with pytest.raises(TokenUnavailable) as caught:
        read_token_file(str(tmp_path / "absent"))
    assert caught.value.problem == f"cannot read {tmp_path / 'absent'}: No such file or directory"
    # A directory, unreadable as a file whoever runs the test (root reads a chmod 000 file).
    with pytest.raises(TokenUnavailable) as caught:
        read_token_file(str(tmp_path))
    assert caught.value.problem == f"cannot read {tmp_path}: Is a directory"


def test_padding_and_every_b64token_character_are_accepted(tmp_path: Path) -> None:
    text = "AZaz09-._~+/AZaz09=="
    path = tmp_path / "token"
    path.write_text(text)
    assert read_token_file(str(path)).secret == text.encode()
    path.write_text("a" * MIN_LENGTH)
    assert read_token_file(str(path)).secret == b"a" * MIN_LENGTH


def test_an_environment_token_is_read_from_the_variable_named() -> None:
    token = read_token_env("ADMIN_TOKEN", {"ADMIN_TOKEN": f"{TOKEN}\n"})
    assert (token.secret, token.origin) == (TOKEN.encode(), "$ADMIN_TOKEN")
    with pytest.raises(TokenUnavailable) as caught:
        read_token_env("ADMIN_TOKEN", {})
    assert (caught.value.key, caught.value.problem) == (
        "token_env",
        "the environment variable ADMIN_TOKEN is not set",
    )
    with pytest.raises(TokenUnavailable) as caught:
        read_token_env("ADMIN_TOKEN", {"ADMIN_TOKEN": ""})
    assert caught.value.problem == "$ADMIN_TOKEN is empty"


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGATE_TEST_ADMIN_TOKEN", TOKEN)
    assert read_token_env("MESHGATE_TEST_ADMIN_TOKEN").secret == TOKEN.encode()


def test_only_the_exact_token_matches() -> None:
    token = AdminToken("test", TOKEN.encode())
    assert token.matches(TOKEN)
    assert not token.matches(TOKEN[:-1])  # a prefix
    assert not token.matches(TOKEN + "0")  # longer
    assert not token.matches(TOKEN.upper())
    assert not token.matches("")
    assert not token.matches(TOKEN[:-1] + "é")  # not ASCII: no exception, no match


def test_the_secret_is_never_printed() -> None:
    token = AdminToken("/run/secrets/admin", TOKEN.encode())
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert "/run/secrets/admin" in repr(token)
