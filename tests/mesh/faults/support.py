"""What the fault tests share: a clock that moves only when the code under test sleeps."""

from __future__ import annotations


class Clock:
    """Monotonic seconds that move only when the injection sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
