"""The sampling decision, as a pure function of the trace id and the parent's flag.

meshgate decides before it creates any span, so that an unsampled request
costs no OpenTelemetry objects at all (see :mod:`mesh.telemetry.tracing`).
The rule below is exactly the SDK's for the same ``OTEL_TRACES_SAMPLER``
(tests hold the two together). :meth:`SamplingRule.sdk_sampler` gives the
SDK's own sampler for the rule; :class:`RuleSampler` is the one the tracer
provider uses: an SDK ``Sampler`` deciding by the rule, so that spans others
start (child spans of auth or rate limiting) get the same answer, with one
context look-up per span where ``ParentBased`` makes two and a delegate call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.util.types import Attributes

from mesh.telemetry.config import SamplerName

LOW_64 = (1 << 64) - 1
"""The low 64 bits of a trace id, which ratio sampling compares with its bound."""
Root = Literal["on", "off", "ratio"]


@dataclass(frozen=True, slots=True)
class SamplingRule:
    """Whether a trace is sampled.

    ``parent_based``: a request that carries a valid parent follows its
    sampled flag. Otherwise (a root, or a non-parent-based sampler) ``root``
    decides: always, never, or by the trace id's low 64 bits against
    ``ratio`` (the SDK's TraceIdRatioBased arithmetic, so every hop that uses
    a ratio sampler agrees on the same trace).
    """

    parent_based: bool
    root: Root
    ratio: float = 1.0
    bound: int = field(init=False, repr=False, compare=False)
    """Trace ids whose low 64 bits are below this are sampled by the ratio."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bound", round(self.ratio * (LOW_64 + 1)))

    @classmethod
    def for_sampler(cls, name: SamplerName, ratio: float) -> SamplingRule:
        parent_based = name.startswith("parentbased_")
        base = name.removeprefix("parentbased_")
        root: Root = "on" if base == "always_on" else "off" if base == "always_off" else "ratio"
        return cls(parent_based, root, ratio)

    def sampled(self, trace_id: int, parent_sampled: bool | None) -> bool:
        """The decision for ``trace_id``; ``parent_sampled`` is None when there is no parent."""
        if parent_sampled is not None and self.parent_based:
            return parent_sampled
        if self.root == "on":
            return True
        if self.root == "off":
            return False
        return (trace_id & LOW_64) < self.bound

    @property
    def root_bound(self) -> int:
        """:meth:`sampled` for a trace without a parent, as one comparison:
        ``(trace_id & LOW_64) < root_bound``."""
        if self.root == "on":
            return LOW_64 + 1
        if self.root == "off":
            return 0
        return self.bound

    def sdk_sampler(self) -> Sampler:
        """The SDK sampler that decides as :meth:`sampled` does."""
        root: Sampler
        if self.root == "on":
            root = ALWAYS_ON
        elif self.root == "off":
            root = ALWAYS_OFF
        else:
            root = TraceIdRatioBased(self.ratio)
        return ParentBased(root) if self.parent_based else root


class RuleSampler(Sampler):
    """The SDK ``Sampler`` deciding by a :class:`SamplingRule`.

    Same decisions as :meth:`SamplingRule.sdk_sampler` (tests compare them),
    including the parent's ``tracestate`` carried into the new span and the
    span's attributes kept only when it is sampled; cheaper per span, which
    matters because every sampled request starts at least two.
    """

    def __init__(self, rule: SamplingRule) -> None:
        self._rule = rule
        self._description = f"meshgate({rule.sdk_sampler().get_description()})"

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            sampled = self._rule.sampled(trace_id, parent.trace_flags.sampled)
            state: TraceState | None = parent.trace_state
        else:
            sampled = self._rule.sampled(trace_id, None)
            state = None
        if sampled:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return SamplingResult(Decision.DROP, None, state)

    def get_description(self) -> str:
        return self._description
