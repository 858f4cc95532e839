"""What a shared cache may store of a response to a GET: table-driven, times given."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from edge.cache.policy import CachePolicy
from edge.cache.storable import CACHEABLE_STATUSES, verdict
from edge.cache.tags import MAX_TAGS

NOW = 1_000_000.0


def judge(
    headers: dict[str, str] | list[tuple[str, str]],
    status: int = 200,
    policy: CachePolicy | None = None,
    **kwargs: Any,
) -> tuple[str | None, Any]:
    found = verdict(
        status,
        CIMultiDict(headers),
        policy or CachePolicy(),
        credentialed=kwargs.get("credentialed", False),
        request_no_store=kwargs.get("request_no_store", False),
        requested=NOW,
        received=NOW,
    )
    return found.reason, found


@pytest.mark.parametrize(
    ("headers", "status", "kwargs", "reason"),
    [
        ({"Cache-Control": "max-age=60"}, 200, {}, None),
        ({"Cache-Control": "max-age=60"}, 200, {"request_no_store": True}, "request-no-store"),
        ({"Cache-Control": "max-age=60"}, 302, {}, "status"),
        ({"Cache-Control": "max-age=60"}, 206, {}, "status"),
        ({"Cache-Control": "max-age=60"}, 500, {}, "status"),
        ({"Cache-Control": "max-age=60, no-store"}, 200, {}, "no-store"),
        ({"Cache-Control": 'max-age=60, private="Set-Cookie"'}, 200, {}, "private"),
        ({"Cache-Control": "max-age=60"}, 200, {"credentialed": True}, "authorization"),
        ({"Cache-Control": "public, max-age=60"}, 200, {"credentialed": True}, None),
        ({"Cache-Control": "s-maxage=60"}, 200, {"credentialed": True}, None),
        ({"Cache-Control": "max-age=60, must-revalidate"}, 200, {"credentialed": True}, None),
        ({"Cache-Control": "max-age=60", "Set-Cookie": "a=b"}, 200, {}, "set-cookie"),
        ({"Cache-Control": "max-age=60", "Vary": "Accept, *"}, 200, {}, "vary-star"),
        ({"Cache-Control": "max-age=60", "Content-Length": "1048577"}, 200, {}, "too-large"),
        ({"Cache-Control": "max-age=60", "Content-Length": "1048576"}, 200, {}, None),
        ({}, 200, {}, "no-freshness"),
        ({"Cache-Control": "public"}, 200, {}, "no-freshness"),
        ({"Cache-Control": "max-age=0"}, 200, {}, "expired"),
        ({"Cache-Control": "max-age=0", "ETag": '"v1"'}, 200, {}, None),  # revalidated each use
        (
            {"Cache-Control": "no-cache", "Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT"},
            200,
            {},
            None,
        ),
        ({"Cache-Control": "no-cache"}, 200, {}, "expired"),  # nothing to validate it by
        ({"Cache-Control": "max-age=10", "Age": "20"}, 200, {}, "expired"),  # stale on arrival
        ({"Cache-Control": "max-age=60"}, 404, {}, None),  # negative caching when asked
        ({"Expires": "0"}, 200, {}, "expired"),
        # Digits int() refuses (str.isdigit takes them): read as unknown, not a crash.
        ({"Cache-Control": "max-age=²"}, 200, {}, "expired"),
        ({"Cache-Control": "max-age=60", "Content-Length": "²"}, 200, {}, None),
        ({"Cache-Control": "max-age=60", "Age": "²"}, 200, {}, None),
    ],
)
def test_verdict(
    headers: dict[str, str], status: int, kwargs: dict[str, Any], reason: str | None
) -> None:
    assert judge(headers, status, **kwargs)[0] == reason


def test_each_cacheable_status_is_stored_with_freshness_and_others_not() -> None:
    for status in range(200, 600):
        reason, _ = judge({"Cache-Control": "max-age=60"}, status)
        assert (reason is None) is (status in CACHEABLE_STATUSES), status


def test_the_route_ttl_stands_in_for_a_missing_lifetime_only() -> None:
    policy = CachePolicy(ttl=30.0)
    reason, found = judge({}, policy=policy)
    assert reason is None and found.timing.lifetime == 30.0
    _, found = judge({"Cache-Control": "max-age=5"}, policy=policy)
    assert found.timing.lifetime == 5.0
    assert judge({"Cache-Control": "max-age=0"}, policy=policy)[0] == "expired"  # said: 0


def test_what_is_kept_for_a_stored_response() -> None:
    policy = CachePolicy(stale_while_revalidate=10.0, stale_if_error=60.0)
    headers = [
        ("Cache-Control", "public, max-age=30, no-cache"),
        ("Vary", "Accept-Language, accept-encoding"),
        ("Vary", "X-User-Id"),
        ("ETag", '"v"'),
        ("Age", "4"),
    ]
    reason, found = judge(headers, policy=policy)
    assert reason is None
    assert found.shared
    assert found.vary == ("accept-encoding", "accept-language", "x-user-id")
    timing = found.timing
    assert (timing.lifetime, timing.initial_age, timing.received) == (30.0, 4.0, NOW)
    assert timing.revalidate_always
    assert (timing.while_revalidate, timing.if_error) == (0.0, 0.0)  # no-cache forbids stale


def test_route_stale_windows_reach_the_timing() -> None:
    policy = CachePolicy(stale_while_revalidate=10.0, stale_if_error=60.0)
    _, found = judge({"Cache-Control": "max-age=30"}, policy=policy)
    assert (found.timing.while_revalidate, found.timing.if_error) == (10.0, 60.0)
    assert not found.shared


def test_an_answers_tags_are_read_from_the_routes_tag_header() -> None:
    fresh = {"Cache-Control": "max-age=60"}
    reason, found = judge({**fresh, "Surrogate-Key": "user-7 team-3"})
    assert reason is None and found.tags == ("user-7", "team-3")
    reason, found = judge({**fresh, "Cache-Tag": "a,b"}, policy=CachePolicy(tag_header="cache-tag"))
    assert reason is None and found.tags == ("a", "b")
    reason, found = judge({**fresh, "Surrogate-Key": "x"}, policy=CachePolicy(tag_header=None))
    assert reason is None and found.tags == ()


def test_an_answer_with_tags_that_cannot_all_be_kept_is_not_stored() -> None:
    many = " ".join(f"t{i}" for i in range(MAX_TAGS + 1))
    assert judge({"Cache-Control": "max-age=60", "Surrogate-Key": many})[0] == "tags"


def test_a_targeted_field_sets_the_policy_and_cache_control_and_expires_are_ignored() -> None:
    mine = "Meshgate-Cache-Control"
    # For browsers: not stored; for this cache: a minute.
    reason, found = judge({"Cache-Control": "no-store", mine: "max-age=60"})
    assert reason is None and found.timing.lifetime == 60.0
    # And the other way round: what Cache-Control allows, the targeted field forbids.
    assert judge({"Cache-Control": "max-age=60", mine: "private"})[0] == "private"
    assert judge({"Cache-Control": "max-age=60", mine: "no-store"})[0] == "no-store"
    # Expires belongs to Cache-Control's policy, set aside with it.
    expires = "Sun, 06 Nov 2094 08:49:37 GMT"
    assert judge({mine: "public", "Expires": expires})[0] == "no-freshness"
    assert judge({"Expires": expires})[0] is None
    # Credentialed requests: the targeted field's public, not Cache-Control's.
    shared = {"Cache-Control": "private", mine: "public, max-age=60"}
    assert judge(shared, credentialed=True)[0] is None
    unshared = {"Cache-Control": "public, max-age=60", mine: "max-age=60"}
    assert judge(unshared, credentialed=True)[0] == "authorization"
    # Its stale windows, too.
    _, found = judge({"Cache-Control": "max-age=5", mine: "max-age=30, stale-if-error=300"})
    assert (found.timing.lifetime, found.timing.if_error) == (30.0, 300.0)


def test_an_invalid_targeted_field_or_an_empty_target_list_leaves_cache_control() -> None:
    mine = "Meshgate-Cache-Control"
    reason, found = judge({"Cache-Control": "max-age=60", mine: "Max-Age=5"})
    assert reason is None and found.timing.lifetime == 60.0
    plain = CachePolicy(targeted=())
    assert judge({"Cache-Control": "no-store", mine: "max-age=60"}, policy=plain)[0] == "no-store"
    cdn = CachePolicy(targeted=("cdn-cache-control",))
    reason, found = judge(
        {"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=9"}, policy=cdn
    )
    assert reason is None and found.timing.lifetime == 9.0
