"""Which protocol switch a request asks for (table-driven, no sockets)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from mesh.http.upgrade import DEFAULT_PROTOCOLS, allowed_protocols, requested_upgrade

WS = frozenset({"websocket"})


@pytest.mark.parametrize(
    ("pairs", "allowed", "expected"),
    [
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websocket")], WS, "websocket", id="websocket"
        ),
        pytest.param(
            [("Connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket")],
            WS,
            "WebSocket",
            id="token-case-kept-connection-list",
        ),
        pytest.param(
            [("Connection", "upgrade"), ("Upgrade", "h2c, websocket/13")],
            WS,
            "websocket/13",
            id="first-allowed-with-version",
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "h2c"), ("Upgrade", "websocket")],
            WS,
            "websocket",
            id="several-header-lines",
        ),
        pytest.param([("Upgrade", "websocket")], WS, None, id="upgrade-without-connection"),
        pytest.param(
            [("Connection", "close"), ("Upgrade", "websocket")],
            WS,
            None,
            id="connection-not-upgrade",
        ),
        pytest.param([("Connection", "Upgrade")], WS, None, id="connection-without-upgrade"),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "h2c")], WS, None, id="protocol-not-allowed"
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websocket")],
            frozenset(),
            None,
            id="upgrades-disabled",
        ),
        pytest.param([("Connection", "Upgrade"), ("Upgrade", " , ")], WS, None, id="empty-tokens"),
    ],
)
def test_requested_upgrade(
    pairs: list[tuple[str, str]], allowed: frozenset[str], expected: str | None
) -> None:
    assert requested_upgrade(CIMultiDict(pairs), allowed) == expected


def test_allowed_protocols_are_lower_case_and_blanks_dropped() -> None:
    assert allowed_protocols(["WebSocket", " ", "My-Proto "]) == {"websocket", "my-proto"}
    assert allowed_protocols(["websocket"]) == DEFAULT_PROTOCOLS
