"""meshgate's own sampling decision agrees with the OpenTelemetry SDK's, sampler by sampler."""

from __future__ import annotations

import random
from typing import get_args

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from mesh.telemetry.config import SamplerName
from mesh.telemetry.sampling import LOW_64, RuleSampler, SamplingRule

RNG = random.Random(7)
TRACE_IDS = [RNG.getrandbits(128) or 1 for _ in range(400)]


def parent_context(trace_id: int, sampled: bool) -> Context:
    sc = SpanContext(
        trace_id=trace_id,
        span_id=0x1234,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(sc))


@pytest.mark.parametrize("name", get_args(SamplerName))
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("parent", [None, True, False])
def test_same_decision_as_the_sdk(name: SamplerName, ratio: float, parent: bool | None) -> None:
    rule = SamplingRule.for_sampler(name, ratio)
    sdk = rule.sdk_sampler()
    for trace_id in TRACE_IDS:
        context = Context() if parent is None else parent_context(trace_id, parent)
        expected = sdk.should_sample(context, trace_id, "GET").decision.is_sampled()
        assert rule.sampled(trace_id, parent) is expected, (name, ratio, parent, trace_id)


@pytest.mark.parametrize("name", get_args(SamplerName))
@pytest.mark.parametrize("ratio", [0.0, 1e-9, 0.1, 0.5, 1.0])
def test_root_bound_decides_a_root_as_sampled_does(name: SamplerName, ratio: float) -> None:
    rule = SamplingRule.for_sampler(name, ratio)
    edges = [1, LOW_64, LOW_64 + 1, rule.bound - 1, rule.bound, rule.bound + 1]
    for trace_id in [*TRACE_IDS, *(t for t in edges if t > 0)]:
        by_bound = (trace_id & LOW_64) < rule.root_bound
        assert by_bound is rule.sampled(trace_id, None), (name, ratio, trace_id)


@pytest.mark.parametrize("name", get_args(SamplerName))
@pytest.mark.parametrize("ratio", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("parent", [None, True, False])
def test_rule_sampler_answers_as_the_sdk_sampler(
    name: SamplerName, ratio: float, parent: bool | None
) -> None:
    rule = SamplingRule.for_sampler(name, ratio)
    sdk, ours = rule.sdk_sampler(), RuleSampler(rule)
    state = TraceState([("vendor", "x")])
    for trace_id in TRACE_IDS[:100]:
        if parent is None:
            context = Context()
        else:
            sc = SpanContext(
                trace_id,
                0x1234,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if parent else TraceFlags.DEFAULT),
                trace_state=state,
            )
            context = trace.set_span_in_context(NonRecordingSpan(sc))
        attrs = {"http.request.method": "GET"}
        want = sdk.should_sample(context, trace_id, "GET", attributes=attrs)
        got = ours.should_sample(context, trace_id, "GET", attributes=attrs)
        assert got.decision is want.decision
        assert dict(got.attributes) == dict(want.attributes)
        assert got.trace_state == want.trace_state


def test_ratio_keeps_about_that_share_and_is_tied_to_the_trace_id() -> None:
    rule = SamplingRule.for_sampler("parentbased_traceidratio", 0.1)
    kept = sum(rule.sampled(t, None) for t in TRACE_IDS)
    assert 20 <= kept <= 60  # 10 % of 400, with room for chance
    assert [rule.sampled(t, None) for t in TRACE_IDS] == [rule.sampled(t, None) for t in TRACE_IDS]


def test_parent_based_follows_the_parent_whatever_the_ratio() -> None:
    never = SamplingRule.for_sampler("parentbased_traceidratio", 0.0)
    always = SamplingRule.for_sampler("parentbased_always_on", 1.0)
    assert all(never.sampled(t, True) for t in TRACE_IDS)
    assert not any(always.sampled(t, False) for t in TRACE_IDS)
