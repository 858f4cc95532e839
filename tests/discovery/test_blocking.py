"""The blocking-query loop: which index each attempt blocks on (no Consul needed)."""

from __future__ import annotations

import asyncio

import pytest

from discovery.blocking import BlockingFollower


def make_follower(failures: list[tuple[str, int]] | None = None) -> BlockingFollower:
    # Backoff is kept short for the test.
    def on_failure(exc: BaseException | None, attempt: int) -> None:
        if failures is not None:
            failures.append((str(exc), attempt))

    return BlockingFollower(wait_s=30, max_backoff_s=0.01, on_failure=on_failure)


async def test_a_retried_query_asks_without_the_old_index() -> None:
    """After a failure the agent may be a new one: blocking on the old index would
    wait out the whole ``wait`` on an agent whose indexes started over."""
    failures: list[tuple[str, int]] = []
    follower = make_follower(failures)
    asked: list[str | None] = []

    async def call(index: str | None) -> tuple[str, list[str]]:
        asked.append(index)
        if len(asked) < 3:
            raise ConnectionError("agent down")
        return "12", ["users"]

    assert await follower.query(call, "1000") == ("12", ["users"])
    assert asked == ["1000", None, None]
    assert follower.errors == 2
    assert failures == [("agent down", 1), ("agent down", 2)]


async def test_a_query_that_answers_at_once_blocks_on_the_given_index() -> None:
    follower = make_follower()
    asked: list[str | None] = []

    async def call(index: str | None) -> str:
        asked.append(index)
        return "1001"

    assert await follower.query(call, "1000") == "1001"
    assert asked == ["1000"]
    assert follower.errors == 0


@pytest.mark.parametrize(
    ("indexes", "expected_asks"),
    [
        # Each answer's index is the next query's.
        (["5", "7", "9"], [None, "5", "7"]),
        # An index going backwards (a new agent) or not positive starts over.
        (["5", "3", "4"], [None, "5", None]),
        (["5", "0", "6"], [None, "5", None]),
        (["5", "junk", "6"], [None, "5", None]),
    ],
)
async def test_follow_blocks_on_the_last_index_and_starts_over_when_it_goes_back(
    indexes: list[str], expected_asks: list[str | None]
) -> None:
    follower = make_follower()
    asked: list[str | None] = []
    answers: list[str] = []
    done = asyncio.Event()

    async def query(index: str | None) -> tuple[str, str]:
        asked.append(index)
        if len(asked) > len(indexes):
            done.set()
            await asyncio.Event().wait()  # blocks like a query on a current index
        n = len(asked) - 1
        return indexes[n], f"data{n}"

    task = asyncio.create_task(follower.follow(query, answers.append))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    assert asked[: len(expected_asks)] == expected_asks
    assert answers == ["data0", "data1", "data2"]
