"""Path normalisation: one canonical path for routing and for the upstream (table-driven)."""

from __future__ import annotations

import pytest

from mesh.http.path import PathRejected, normalise_path, split_target

# --- normalise_path: accepted paths -----------------------------------------------------------

NORMALISED = [
    # The examples the module docstring promises.
    ("/api/users/../orders/echo", "/api/orders/echo", "dotdot-removes-previous-segment"),
    ("/api/users/%2e%2e/orders", "/api/orders", "encoded-dotdot-lower"),
    ("/api/users/%2e%2e/orders/echo", "/api/orders/echo", "encoded-dotdot-docstring"),
    ("//api//users/echo", "/api/users/echo", "repeated-slashes-merged"),
    # Already canonical: returned as is.
    ("/", "/", "root"),
    ("/api/users/7", "/api/users/7", "plain"),
    ("/api/users.json", "/api/users.json", "dot-inside-segment"),
    ("/a..b/c", "/a..b/c", "double-dot-inside-segment-is-not-dot-segment"),
    ("/.well-known/jwks", "/.well-known/jwks", "leading-dot-in-segment-name"),
    ("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;=", "sub-delims-and-colon-at"),
    # Single-dot segments.
    ("/./api", "/api", "dot-at-start"),
    ("/api/./users", "/api/users", "dot-in-middle"),
    ("/api/%2E/users", "/api/users", "encoded-dot-upper"),
    ("/api/%2e/users", "/api/users", "encoded-dot-lower"),
    # Double-dot segments.
    ("/api/users/..", "/api/", "dotdot-at-end-keeps-directory-slash"),
    ("/api/users/../", "/api/", "dotdot-slash-at-end"),
    ("/api/users/.", "/api/users/", "dot-at-end-keeps-directory-slash"),
    ("/api/%2E%2E/x", "/x", "encoded-dotdot-upper"),
    ("/api/%2e%2E/x", "/x", "encoded-dotdot-mixed-case"),
    ("/api/.%2e/x", "/x", "half-encoded-dotdot"),
    ("/a/b/c/../../d", "/a/d", "two-dotdots"),
    # `..` never climbs above the root.
    ("/..", "/", "dotdot-at-root"),
    ("/../..", "/", "two-dotdots-at-root"),
    ("/../../etc/passwd", "/etc/passwd", "dotdot-above-root-clamped"),
    ("/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "encoded-dotdot-above-root-clamped"),
    ("/a/../../b", "/b", "dotdot-past-root-mid-path"),
    ("/.", "/", "dot-at-root"),
    ("/./", "/", "dot-slash-at-root"),
    # Repeated slashes.
    ("///", "/", "only-slashes"),
    ("/api///users", "/api/users", "triple-slash-middle"),
    ("/api/users//", "/api/users/", "double-trailing-slash-becomes-one"),
    # Trailing slash kept.
    ("/api/users/", "/api/users/", "trailing-slash-kept"),
    ("/api/%7eusers/", "/api/~users/", "trailing-slash-kept-slow-path"),
    # Unreserved characters decoded.
    ("/%7e", "/~", "tilde-lower"),
    ("/%7E", "/~", "tilde-upper"),
    ("/%41%5a%61%7a", "/AZaz", "letters"),
    ("/%30%39", "/09", "digits"),
    ("/%2D%5F%2E", "/-_.", "dash-underscore-dot"),
    ("/users/%2e", "/users/", "encoded-dot-segment-at-end"),
    ("/a%2eb", "/a.b", "encoded-dot-inside-segment"),
    # Other encodings kept, hex upper-cased.
    ("/a%3a", "/a%3A", "colon-kept-upper-cased"),
    ("/a%3A", "/a%3A", "colon-already-upper"),
    ("/a%20b", "/a%20b", "space-kept"),
    ("/caf%c3%a9", "/caf%C3%A9", "utf8-kept-upper-cased"),
    ("/q%3f", "/q%3F", "question-mark-kept"),
    ("/h%23", "/h%23", "hash-kept"),
    ("/p%25", "/p%25", "percent-kept"),
    ("/%252e%252e/x", "/%252e%252e/x", "double-encoding-not-decoded-twice"),
    ("/%252F", "/%252F", "double-encoded-slash-is-not-a-slash"),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [pytest.param(raw, expected, id=case) for raw, expected, case in NORMALISED],
)
def test_normalise_path(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize("raw", [raw for raw, _, _ in NORMALISED])
def test_normalise_path_is_idempotent(raw: str) -> None:
    once = normalise_path(raw)
    assert normalise_path(once) == once
    assert once.startswith("/")


# --- normalise_path: rejected paths -----------------------------------------------------------

REJECTED = [
    ("/api/users%2F..%2Forders", "%2F", "encoded-slash-docstring"),
    ("/api/users/%00", "NUL", "encoded-nul-docstring"),
    ("/a%2Fb", "%2F", "encoded-slash-upper"),
    ("/a%2fb", "%2F", "encoded-slash-lower"),
    ("/a%5Cb", "%5C", "encoded-backslash-upper"),
    ("/a%5cb", "%5C", "encoded-backslash-lower"),
    ("/a\\b", "backslash", "literal-backslash"),
    ("/..\\..\\etc", "backslash", "literal-backslash-traversal"),
    ("/a\x00b", "NUL", "literal-nul"),
    ("/a%", "malformed", "lone-percent-at-end"),
    ("/a%2", "malformed", "truncated-percent"),
    ("/a%zz", "malformed", "non-hex-percent"),
    ("/a%g1/b", "malformed", "non-hex-first-digit"),
    ("/a%%41", "malformed", "double-percent"),
    ("/ok%41/%x", "malformed", "good-then-bad-percent"),
    ("api/users", "start with '/'", "relative"),
    ("http://example.com/a", "start with '/'", "absolute-form"),
    ("*", "absolute path", "asterisk-form"),
]


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [pytest.param(raw, part, id=case) for raw, part, case in REJECTED],
)
def test_normalise_path_rejects(raw: str, reason_part: str) -> None:
    with pytest.raises(PathRejected) as info:
        normalise_path(raw)
    assert reason_part in info.value.reason
    # The reason is what the client sees; it is also the exception's message.
    assert str(info.value) == info.value.reason


def test_path_rejected_is_a_value_error() -> None:
    assert issubclass(PathRejected, ValueError)
    assert PathRejected("why").reason == "why"


@pytest.mark.parametrize("raw", ["", "\n"], ids=["empty", "newline"])
def test_normalise_path_rejects_targets_without_leading_slash_even_when_blank(raw: str) -> None:
    with pytest.raises(PathRejected):
        normalise_path(raw)


# --- split_target ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param("/a/b?x=1", ("/a/b", "x=1"), id="path-and-query"),
        pytest.param("/a/b", ("/a/b", ""), id="no-query"),
        pytest.param("/a/b?", ("/a/b", ""), id="empty-query"),
        pytest.param("/a?x=1?y=2", ("/a", "x=1?y=2"), id="second-question-mark-in-query"),
        pytest.param("/a#frag", ("/a", ""), id="fragment-dropped"),
        pytest.param("/a?x=1#frag", ("/a", "x=1"), id="fragment-after-query-dropped"),
        pytest.param("/a#frag?x=1", ("/a", ""), id="question-mark-inside-fragment"),
        pytest.param("/a/%2e%2e?x=%2F", ("/a/%2e%2e", "x=%2F"), id="no-decoding"),
        pytest.param("", ("", ""), id="empty"),
    ],
)
def test_split_target(target: str, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected
