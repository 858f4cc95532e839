"""The identity headers filter: set (never appended), exactly as configured, for the caller."""

from __future__ import annotations

from aiohttp import web

from edge.auth.identity import Identity, IdentityHeaders
from edge.filters.identity_headers import IDENTITY_HEADERS_ATTR, IdentityHeadersFilter
from mesh.exchange import Exchange
from tests.edge.exchanges import exchange

CLAIMS = {"X-User-Id": "sub", "X-User-Roles": "roles", "X-Auth-Method": "method"}
ALICE = Identity("jwt", "alice", roles=("user", "ops"))


async def passed(ex: Exchange) -> web.StreamResponse:
    return web.Response(text="ok")


async def test_headers_are_set_replacing_every_copy_in_the_configured_spelling() -> None:
    flt = IdentityHeadersFilter(IdentityHeaders(CLAIMS))
    # Copies a client could not have sent (stripped before routing), as if set
    # by someone else: each is replaced, none appended.
    ex = exchange([("Host", "h"), ("x-user-id", "mallory"), ("X-USER-ID", "eve")])
    ex.attrs["identity"] = ALICE
    for _ in range(2):  # the second time from the memo: the same outcome
        assert (await flt(ex, passed)).status == 200
        assert ex.upstream_items() == [
            ("Host", "h"),
            ("X-User-Id", "alice"),
            ("X-User-Roles", "user,ops"),
            ("X-Auth-Method", "jwt"),
        ]


async def test_the_pairs_left_for_the_identity_token_are_the_rendered_ones() -> None:
    headers = IdentityHeaders(CLAIMS)
    flt = IdentityHeadersFilter(headers)
    ex = exchange([])
    ex.attrs["identity"] = ALICE
    await flt(ex, passed)
    pairs = ex.attrs[IDENTITY_HEADERS_ATTR]
    assert pairs == headers.render(ALICE)
    assert all(type(name) is str and type(value) is str for name, value in pairs)


async def test_an_anonymous_caller_gets_no_headers() -> None:
    flt = IdentityHeadersFilter(IdentityHeaders(CLAIMS))
    ex = exchange([("Host", "h")])
    await flt(ex, passed)
    assert ex.upstream_items() == [("Host", "h")]
    assert IDENTITY_HEADERS_ATTR not in ex.attrs


async def test_names_equal_but_for_case_are_set_once_the_last_value_winning() -> None:
    # What setting each pair in turn would do: one header, where the first was
    # set, in the last one's spelling and with its value.
    flt = IdentityHeadersFilter(IdentityHeaders({"X-User-Id": "sub", "x-user-id": "method"}))
    ex = exchange([("Host", "h"), ("X-USER-ID", "mallory")])
    ex.attrs["identity"] = ALICE
    await flt(ex, passed)
    assert ex.upstream_items() == [("Host", "h"), ("x-user-id", "jwt")]
