"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.processes import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped after the test; tests may kill or restart it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()
