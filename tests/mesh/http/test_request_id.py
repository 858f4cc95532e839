"""X-Request-Id: a well-formed client id is kept, anything else is replaced."""

from __future__ import annotations

import os
import re

import pytest

from mesh.http import request_id
from mesh.http.request_id import HEADER, accept_or_generate

_GENERATED = re.compile(r"^[0-9a-f]{32}$")


def test_header_name() -> None:
    assert HEADER == "X-Request-Id"


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("abcdefgh", id="min-length-8"),
        pytest.param("a" * 128, id="max-length-128"),
        pytest.param("0f8fad5b-d9cb-469f-a165-70867728950e", id="uuid"),
        pytest.param("req.1:2_3-4", id="dot-colon-underscore-dash"),
        pytest.param("ABCDEFGH12345678", id="upper-case-and-digits"),
    ],
)
def test_well_formed_id_is_kept(incoming: str) -> None:
    assert accept_or_generate(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("abcdefg", id="too-short-7"),
        pytest.param("a" * 129, id="too-long-129"),
        pytest.param("abcd efgh", id="space"),
        pytest.param("abcdefgh\r\nX-Evil: 1", id="crlf-header-splitting"),
        pytest.param("abcdefgh/../", id="slash"),
        pytest.param("abcdefgh\"'<>", id="quotes-and-angle-brackets"),
        pytest.param("idé-12345678", id="non-ascii"),
        pytest.param("\nabcdefgh", id="leading-newline"),
    ],
)
def test_malformed_id_is_replaced_by_a_random_one(incoming: str | None) -> None:
    out = accept_or_generate(incoming)
    assert out != incoming
    assert _GENERATED.match(out)


@pytest.mark.parametrize("incoming", ["abcdefgh\n", "a" * 128 + "\n"], ids=["min", "max"])
def test_trailing_newline_is_not_accepted(incoming: str) -> None:
    out = accept_or_generate(incoming)
    assert "\n" not in out
    assert _GENERATED.match(out)


def test_generated_ids_are_valid_and_unique() -> None:
    ids = {accept_or_generate(None) for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert _GENERATED.match(value)
        # A generated id is itself well-formed, so the next hop keeps it.
        assert accept_or_generate(value) == value


def test_generated_ids_are_distinct_across_many_reads() -> None:
    ids = [request_id.new_id() for _ in range(5 * request_id.IDS_PER_READ + 7)]
    assert all(_GENERATED.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ids_are_read_from_urandom_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(request_id, "_unused", [])
    monkeypatch.setattr(os, "urandom", counting)
    for _ in range(request_id.IDS_PER_READ + 1):
        request_id.new_id()
    assert reads == [16 * request_id.IDS_PER_READ] * 2


def test_a_forked_child_never_hands_out_the_parents_unused_ids() -> None:
    request_id.new_id()  # the parent now holds unused ids
    parents_next = request_id._unused[-1]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, request_id.new_id().encode())
        os._exit(0)
    os.close(write_end)
    childs = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert _GENERATED.match(childs) and childs != parents_next
    assert request_id.new_id() == parents_next
