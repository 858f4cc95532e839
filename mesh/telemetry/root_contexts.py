"""Trace contexts for requests that arrive without one, made a batch at a time.

At the edge nearly every request starts a trace: it needs a trace id, this
hop's span id (for ``traceresponse``), its first attempt's span id (for the
``traceparent`` it sends on), the sampling decision, and, when it is not
sampled, both header values written out. Made one request at a time that is
one random draw, its hex digits, three slices, a comparison and two
formatted strings on every request: about 0.6 µs in a warm loop, but about
4.5 % of the edge's throughput in place (``bench/README.md``, "Where
tracing's cost goes, measured again"). :class:`RootContexts` makes them
:data:`BATCH` at a time, from one draw, in one loop; a request takes one with
a list ``pop()``. That is not much less work (the loop costs about 400 ns a
context, warm), but it is done in one place: ``edge+trace0`` gained 1.1 %
req/s in paired runs against the code before (four runs: +1.2, -0.2, +1.0,
+1.4 %; three of an earlier draft: +0.7, +0.8, +3.4 %).

The sampling decision is the ratio rule's for a root,
``(trace_id & LOW_64) < root_bound``, made on the digits: the trace id's
low 64 bits are its last 16 hex digits, and lower-case hex strings of one
length compare as their numbers do.

A forked child starts with no contexts made (the parent's would repeat its
ids); Python's ``random`` reseeds itself in the child.
"""

from __future__ import annotations

import os
import random
import weakref
from typing import Final

from mesh.telemetry.propagation import RANDOM_TRACE_ID, ZERO_SPAN_ID, unsampled_headers
from mesh.telemetry.sampling import LOW_64

BATCH: Final = 128
"""Contexts made per draw."""
_getrandbits = random.getrandbits

RootContext = tuple[str, str, str | None, str | None]
"""``(trace_hex, ids, traceresponse, traceparent_line)``: the trace id (32 hex
digits); ``ids``, 64 hex digits whose first 16 are this hop's span id and the
next 16 its first attempt's (the last 32 are the trace id); for an unsampled
trace, the ``traceresponse`` value naming this hop's span and the first
attempt's rendered ``traceparent`` line (None for both when it is sampled)."""

_ALL: weakref.WeakSet[RootContexts] = weakref.WeakSet()


def _forget_all() -> None:
    for contexts in _ALL:
        contexts.ready.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)


class RootContexts:
    """Contexts for traces started here, sampled when ``(trace_id & LOW_64) < root_bound``.

    ``ready`` holds the contexts made and not taken, the next one last: take
    one with ``ready.pop()`` when it is not empty, else with :meth:`refill`.
    Each is a :data:`RootContext`, never handed out twice, with no all-zero id.
    """

    __slots__ = ("__weakref__", "_bound_hex", "ready")

    def __init__(self, root_bound: int) -> None:
        self.ready: list[RootContext] = []
        # "g" sorts after every hex digit: all are below it (everything sampled).
        self._bound_hex = "g" if root_bound > LOW_64 else f"{max(root_bound, 0):016x}"
        _ALL.add(self)

    def refill(self) -> RootContext:
        """Make :data:`BATCH` contexts and take one of them."""
        digits = _getrandbits(256 * BATCH).to_bytes(32 * BATCH, "big").hex()
        bound = self._bound_hex
        ready = self.ready
        for start in range(0, 64 * BATCH, 64):
            ids = digits[start : start + 64]
            if ZERO_SPAN_ID in ids:  # an all-zero id somewhere (one in 2**60 or fewer): skip
                continue
            trace_hex = ids[32:]
            if ids[48:] < bound:
                ready.append((trace_hex, ids, None, None))
            else:
                # Not sampled: the flags say only that the trace id is random (ours is).
                value, line = unsampled_headers(trace_hex, ids, RANDOM_TRACE_ID)
                ready.append((trace_hex, ids, value, line))
        return ready.pop() if ready else self.refill()
