"""The watcher's query loop: which index each attempt blocks on (no Consul needed)."""

from __future__ import annotations

from typing import Any

from discovery.watcher import CatalogWatcher
from mesh.snapshot import SnapshotStore


def make_watcher() -> CatalogWatcher:
    # _query never touches the client; backoff is kept short for the test.
    return CatalogWatcher(client=Any, store=SnapshotStore(), max_backoff_s=0.01)  # type: ignore[arg-type]


async def test_a_retried_query_asks_without_the_old_index() -> None:
    """After a failure the agent may be a new one: blocking on the old index would
    wait out the whole ``wait`` on an agent whose indexes started over."""
    watcher = make_watcher()
    asked: list[str | None] = []

    async def call(index: str | None) -> tuple[str, list[str]]:
        asked.append(index)
        if len(asked) < 3:
            raise ConnectionError("agent down")
        return "12", ["users"]

    assert await watcher._query(call, "1000") == ("12", ["users"])
    assert asked == ["1000", None, None]
    assert watcher.errors == 2


async def test_a_query_that_answers_at_once_blocks_on_the_given_index() -> None:
    watcher = make_watcher()
    asked: list[str | None] = []

    async def call(index: str | None) -> str:
        asked.append(index)
        return "1001"

    assert await watcher._query(call, "1000") == "1001"
    assert asked == ["1000"]
    assert watcher.errors == 0
