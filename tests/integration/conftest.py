"""Fixtures starting a real Consul agent and the mesh processes of one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.processes import ConsulAgent
from tests.integration.harness import Mesh


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def consul() -> Iterator[ConsulAgent]:
    agent = ConsulAgent().start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def mesh(tmp_path: Path, consul: ConsulAgent) -> Iterator[Mesh]:
    m = Mesh(tmp_path, consul)
    try:
        yield m
    finally:
        m.close()
