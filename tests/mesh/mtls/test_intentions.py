"""Consul intentions → the decision for a calling service (pure, as Consul's authorize)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mesh.mtls.intentions import Intention, IntentionTable, intentions_from_consul

# Consul's precedence: both names exact 9, any source 8, any destination 6, both any 5.
PRECEDENCE = {(False, False): 9, (True, False): 8, (False, True): 6, (True, True): 5}


def consul(source: str, destination: str, action: str, **extra: Any) -> dict[str, Any]:
    """One element of ``/v1/connect/intentions`` as Consul 1.8 lists it."""
    entry = {
        "ID": f"{source}-{destination}-{action}",
        "SourceNS": "default",
        "SourceName": source,
        "DestinationNS": "default",
        "DestinationName": destination,
        "SourceType": "consul",
        "Action": action,
        "Precedence": PRECEDENCE[(source == "*", destination == "*")],
        "Meta": {},
    }
    entry.update(extra)
    return entry


def table(destination: str, *entries: dict[str, Any], default_allow: bool = True) -> IntentionTable:
    return IntentionTable(destination, intentions_from_consul(entries), default_allow)


@pytest.mark.parametrize(
    ("entries", "source", "allowed", "reason"),
    [
        pytest.param([], "web", True, "no intention matches; the default is allow", id="none"),
        pytest.param(
            [consul("web", "orders", "deny")],
            "web",
            False,
            "intention deny web => orders",
            id="exact-deny",
        ),
        pytest.param(
            [consul("web", "orders", "deny")],
            "api",
            True,
            "no intention matches; the default is allow",
            id="another-source-unmatched",
        ),
        pytest.param(
            [consul("*", "orders", "allow"), consul("web", "orders", "deny")],
            "web",
            False,
            "intention deny web => orders",
            id="exact-source-beats-any-source",
        ),
        pytest.param(
            [consul("*", "orders", "deny"), consul("web", "orders", "allow")],
            "api",
            False,
            "intention deny * => orders",
            id="any-source-catches-the-rest",
        ),
        pytest.param(
            [consul("web", "*", "deny"), consul("*", "orders", "allow")],
            "web",
            True,
            "intention allow * => orders",
            id="exact-destination-beats-any-destination",
        ),
        pytest.param(
            [consul("*", "*", "deny"), consul("web", "*", "allow")],
            "web",
            True,
            "intention allow web => *",
            id="source-exact-any-destination-beats-any-any",
        ),
        pytest.param(
            [consul("*", "*", "deny")],
            "web",
            False,
            "intention deny * => *",
            id="any-to-any",
        ),
        pytest.param(
            [consul("web", "users", "deny")],
            "web",
            True,
            "no intention matches; the default is allow",
            id="another-destination-never-applies",
        ),
    ],
)
def test_the_most_precise_matching_intention_decides(
    entries: list[dict[str, Any]], source: str, allowed: bool, reason: str
) -> None:
    decision = table("orders", *entries).decide(source)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_the_default_decides_when_nothing_matches() -> None:
    deny_by_default = table("orders", consul("web", "orders", "allow"), default_allow=False)
    assert deny_by_default.decide("web").allowed
    decision = deny_by_default.decide("api")
    assert not decision.allowed
    assert decision.reason == "no intention matches; the default is deny"


def test_the_order_consul_lists_them_in_does_not_matter() -> None:
    entries = [
        consul("*", "*", "deny"),
        consul("web", "*", "allow"),
        consul("*", "orders", "deny"),
        consul("web", "orders", "allow"),
        consul("api", "orders", "deny"),
    ]
    expected = {s: table("orders", *entries).decide(s) for s in ("web", "api", "batch")}
    assert [d.allowed for d in expected.values()] == [True, False, False]
    for seed in range(20):
        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        again = table("orders", *shuffled)
        assert {s: again.decide(s) for s in expected} == expected


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(consul("web", "orders", "maybe"), id="unknown-action"),
        pytest.param(consul("web", "orders", "deny", SourceType="external-uri"), id="other-type"),
        pytest.param({**consul("web", "orders", "deny"), "SourceName": None}, id="no-source"),
        pytest.param({**consul("web", "orders", "deny"), "DestinationName": 7}, id="bad-dest"),
    ],
)
def test_entries_consul_would_not_write_are_left_out(entry: dict[str, Any]) -> None:
    assert intentions_from_consul([entry]) == ()


def test_conversion_keeps_names_actions_and_precedence() -> None:
    assert intentions_from_consul([consul("web", "orders", "deny")]) == (
        Intention("web", "orders", allow=False, precedence=9, id="web-orders-deny"),
    )
    assert intentions_from_consul(None) == ()


def test_an_intention_with_l7_permissions_is_read_as_deny() -> None:
    """Consul 1.9+ writes permission rules (paths, methods) instead of an action;
    meshgate does not evaluate them, so such an intention refuses its source."""
    entry = consul("web", "orders", "allow")
    del entry["Action"]
    entry["Permissions"] = [{"Action": "allow", "HTTP": {"PathPrefix": "/public"}}]
    decision = table("orders", entry, consul("*", "orders", "allow")).decide("web")
    assert (decision.allowed, decision.reason) == (False, "intention deny web => orders")


def test_decisions_are_memoised_but_bounded() -> None:
    t = table("orders", consul("*", "orders", "deny"))
    first = t.decide("web")
    assert t.decide("web") is first
    for n in range(5000):
        assert not t.decide(f"caller-{n}").allowed
    assert len(t._decided) == 4096
