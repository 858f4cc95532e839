"""The ``fault`` block: delays and aborts for a share of the requests.

The same shape at an edge route (``routes[].fault``) and for one destination of a
sidecar (``outbound.faults.<service>``)::

    fault:
      delay: {fixed: 2s, percent: 10}     # hold 10 % of the requests 2 s
      abort: {status: 503, percent: 5}    # answer 5 % at once with a 503 problem
      headers: false                      # honour X-Meshgate-Fault-* request headers
      max_active: 100                     # at most 100 requests under a fault at once

The percentages are drawn independently: a request may be delayed and then
aborted (Envoy's order).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from mesh.config.types import Frozen, PositiveDuration


class FaultDelayConfig(Frozen):
    fixed: PositiveDuration
    """How long a delayed request is held before it goes on (never past its deadline)."""
    percent: float = Field(default=100.0, ge=0, le=100)
    """Share of the requests delayed, 0 to 100 (fractions allowed: ``0.5``)."""


class FaultAbortConfig(Frozen):
    status: int = Field(ge=400, le=599)
    """The status answered, with a problem body (``fault-injected``)."""
    percent: float = Field(default=100.0, ge=0, le=100)
    """Share of the requests aborted, 0 to 100."""


class FaultConfig(Frozen):
    delay: FaultDelayConfig | None = None
    abort: FaultAbortConfig | None = None
    headers: bool = False
    """Honour the request's ``X-Meshgate-Fault-Delay-Ms`` and ``X-Meshgate-Fault-Abort``
    (see :mod:`mesh.faults.policy`). Off by default: whoever sends the request then
    decides how long it is held."""
    max_active: int | None = Field(default=None, ge=1)
    """Most requests under an injected fault at once (a delay holds its connection);
    past it, requests go on untouched and count as overflow. null: no cap (Envoy's
    ``max_active_faults`` default)."""

    @model_validator(mode="after")
    def _something_to_inject(self) -> FaultConfig:
        if self.delay is None and self.abort is None and not self.headers:
            raise ValueError("give delay, abort or headers: true (nothing would be injected)")
        return self
