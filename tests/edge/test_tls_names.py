"""Server names (SNI) and the certificate each gets: the matching rules, without sockets."""

from __future__ import annotations

import pytest

from edge.tls_names import Claim, NameConflict, NameTable, normalise, server_name_problem

TABLE = NameTable(
    "default",
    [
        Claim("api.pem", ["api.example.com"], "api"),
        Claim("wild.pem", ["*.example.com", "example.com"], "wild"),
        Claim("shop.pem", ["shop.example.org", "*.shop.example.org"], "shop"),
    ],
)


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("api.example.com", "api"),  # exact beats the wildcard that also matches
        ("API.Example.COM", "api"),  # case-insensitive
        ("api.example.com.", "api"),  # a fully qualified name is the same host
        ("a.example.com", "wild"),  # the wildcard stands for one label
        ("Other.EXAMPLE.com", "wild"),
        ("example.com", "wild"),  # listed exactly, not through the wildcard
        ("a.b.example.com", "default"),  # two labels: no wildcard match
        ("shop.example.org", "shop"),
        ("eu.shop.example.org", "shop"),
        ("example.org", "default"),  # the wildcard's parent is not matched by it
        (".example.com", "default"),  # an empty label is not a label
        ("unknown.test", "default"),
        ("com", "default"),
        ("", "default"),
        (None, "default"),  # no SNI at all
    ],
)
def test_select(server_name: str | None, expected: str) -> None:
    assert TABLE.select(server_name) == expected


def test_without_claims_everything_gets_the_default() -> None:
    table = NameTable("default")
    assert table.select("api.example.com") == "default"
    assert table.select(None) == "default"


def test_a_wildcard_does_not_match_its_parent() -> None:
    table = NameTable("default", [Claim("w.pem", ["*.example.com"], "wild")])
    assert table.select("example.com") == "default"
    assert table.select("x.example.com") == "wild"


@pytest.mark.parametrize("name", ["api.example.com", "*.example.com"])
def test_two_owners_of_one_name_conflict(name: str) -> None:
    with pytest.raises(NameConflict) as caught:
        NameTable("d", [Claim("a.pem", ["x.test", name], "a"), Claim("b.pem", [name], "b")])
    assert (caught.value.name, caught.value.first, caught.value.second) == (name, "a.pem", "b.pem")
    assert str(caught.value) == f"{name} is claimed by both a.pem and b.pem"


def test_one_owner_naming_a_name_twice_is_no_conflict() -> None:
    table = NameTable("d", [Claim("a.pem", ["x.test", "x.test"], "a")])
    assert table.select("x.test") == "a"


def test_fallback_names_take_part_but_yield_to_claims() -> None:
    table = NameTable(
        "default",
        [Claim("wild.pem", ["*.example.com", "shared.example.com"], "wild")],
        [Claim("default.pem", ["edge.example.com", "shared.example.com"], "default-own")],
    )
    # The default certificate's exact name beats another certificate's wildcard ...
    assert table.select("edge.example.com") == "default-own"
    # ... and yields a name another certificate claims, without a conflict.
    assert table.select("shared.example.com") == "wild"
    assert table.select("x.example.com") == "wild"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("API.Example.COM", "api.example.com"), ("example.com.", "example.com"), ("*.A.b", "*.a.b")],
)
def test_normalise(name: str, expected: str) -> None:
    assert normalise(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "api.example.com",
        "*.example.com",
        "localhost",
        "*.internal",
        "xn--bcher-kva.example",
        "_acme.example.com",
        "a-b.c-d.example",
        "1.example.com",
    ],
)
def test_names_that_can_be_matched(name: str) -> None:
    assert server_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "cannot be empty"),
        ("bücher.example", "A-label"),
        ("127.0.0.1", "an IP address"),
        ("::1", "an IP address"),
        ("*", "a wildcard needs a domain after it"),
        ("a*.example.com", "a wildcard may only be the whole first label"),
        ("*.*.example.com", "a wildcard may only be the whole first label"),
        ("api.*.example.com", "a wildcard may only be the whole first label"),
        ("api..example.com", "not a host name"),
        ("-api.example.com", "not a host name"),
        ("api example.com", "not a host name"),
        ("a" * 64 + ".example.com", "not a host name"),
        (("a" * 60 + ".") * 5, "longer than 253"),
    ],
)
def test_names_refused(name: str, problem: str) -> None:
    found = server_name_problem(name)
    assert found is not None and problem in found
