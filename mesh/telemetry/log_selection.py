"""Which requests get an access-log line, when not every one should (pure).

At tens of thousands of requests a second, a line for each is more than most
operators keep; what they want kept is the failures and the slow requests,
and a sample of the rest to see what normal looks like (Envoy's access-log
``status_code_filter``, ``duration_filter`` and ``runtime_filter``; nginx's
``access_log ... if=``). A :class:`LogSelection` keeps a request when its
status is at least ``keep_status_from``, or it took at least
``keep_slower_than``, or else with probability ``sample``.

Every request logged (the default) needs no selection at all: the access-log
filter then has none, and a request pays nothing for this.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogSelection:
    """``sample``: the share (0 to 1) of the requests no rule keeps that are logged;
    ``keep_status_from``: every answer with this status or above is logged (None: no
    such rule); ``keep_slower_than``: every request that took this many seconds or more
    is logged (None: no such rule). ``roll`` draws uniformly from [0, 1)."""

    sample: float
    keep_status_from: int | None = None
    keep_slower_than: float | None = None
    roll: Callable[[], float] = random.random

    def keeps(self, status: int, seconds: float) -> bool:
        """Whether a request answered with ``status`` after ``seconds`` gets a line."""
        threshold = self.keep_status_from
        if threshold is not None and status >= threshold:
            return True
        slow = self.keep_slower_than
        if slow is not None and seconds >= slow:
            return True
        sample = self.sample
        return sample > 0.0 and (sample >= 1.0 or self.roll() < sample)


def log_selection(
    sample: float,
    keep_status_from: int | None,
    keep_slower_than: float | None,
    roll: Callable[[], float] = random.random,
) -> LogSelection | None:
    """The selection these settings make; None when they keep every request (a sample of
    1, whatever the rules: every request is logged anyway)."""
    if sample >= 1.0:
        return None
    return LogSelection(sample, keep_status_from, keep_slower_than, roll)
