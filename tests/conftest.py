"""Fixtures shared across the test tree."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from demo.processes import (
    DEFAULT_PORT_RANGE,
    PORT_RANGE_ENV,
    RedisServer,
    format_port_range,
    port_share,
)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, give this worker its own share of the free ports (and so to
    every process it starts): two workers never pick the same port before either has
    bound it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if worker is not None:
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        share = port_share(DEFAULT_PORT_RANGE, int(worker.removeprefix("gw")), count)
        os.environ[PORT_RANGE_ENV] = format_port_range(share)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped after the test; tests may kill or restart it."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()
