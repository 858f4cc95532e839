"""Waiting for the first catalog before a listener opens (discovery.provider)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from discovery.provider import wait_for_first_catalog
from mesh.snapshot import EMPTY, SnapshotStore


async def test_returns_at_once_when_the_catalog_is_in() -> None:
    store = SnapshotStore()
    store.publish(EMPTY)
    assert await wait_for_first_catalog(store, 0, "edge")


async def test_returns_when_the_first_catalog_comes(caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore()
    asyncio.get_running_loop().call_later(0.05, store.publish, EMPTY)
    assert await wait_for_first_catalog(store, 30, "edge")
    assert "no catalog" not in caplog.text


async def test_gives_up_after_the_timeout_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore()
    with caplog.at_level(logging.WARNING, logger="discovery.provider"):
        assert not await wait_for_first_catalog(store, 0.05, "outbound")
    assert "no catalog after 0.05s: opening the outbound listener anyway" in caplog.text
    assert "discovery.initial_fetch_timeout" in caplog.text


async def test_a_zero_timeout_does_not_wait(caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore()
    with caplog.at_level(logging.WARNING, logger="discovery.provider"):
        assert not await wait_for_first_catalog(store, 0, "edge")
    assert "no catalog after 0s" in caplog.text
