"""Contexts for traces started here, made a batch at a time: ids, decision, header values."""

from __future__ import annotations

import os
import random

import pytest

from mesh.telemetry import root_contexts
from mesh.telemetry.propagation import RANDOM_TRACE_ID, unsampled_headers
from mesh.telemetry.propagation import ZERO_SPAN_ID as ZERO_ID
from mesh.telemetry.root_contexts import BATCH, RootContexts
from mesh.telemetry.sampling import SamplingRule


def _take(contexts: RootContexts, n: int) -> list[root_contexts.RootContext]:
    ready = contexts.ready
    return [ready.pop() if ready else contexts.refill() for _ in range(n)]


@pytest.mark.parametrize(
    ("sampler", "ratio"),
    [
        ("parentbased_traceidratio", 0.0),
        ("parentbased_traceidratio", 0.1),
        ("parentbased_traceidratio", 0.5),
        ("parentbased_traceidratio", 1.0),
        ("parentbased_always_on", 1.0),
        ("parentbased_always_off", 1.0),
    ],
)
def test_each_context_is_sampled_exactly_when_the_rule_says(sampler: str, ratio: float) -> None:
    rule = SamplingRule.for_sampler(sampler, ratio)  # type: ignore[arg-type]
    contexts = _take(RootContexts(rule.root_bound), 3 * BATCH + 5)
    decisions = [line is None for _, _, _, line in contexts]
    assert decisions == [rule.sampled(int(trace, 16), None) for trace, _, _, _ in contexts]
    if 0.0 < ratio < 1.0 and sampler.endswith("ratio"):
        assert any(decisions) and not all(decisions)


def test_a_ratio_samples_about_that_share() -> None:
    rule = SamplingRule.for_sampler("parentbased_traceidratio", 0.1)
    contexts = _take(RootContexts(rule.root_bound), 20 * BATCH)
    share = sum(line is None for _, _, _, line in contexts) / len(contexts)
    assert 0.07 < share < 0.13


def test_an_unsampled_context_has_both_header_values_written() -> None:
    for trace, ids, value, line in _take(RootContexts(0), BATCH):
        assert len(trace) == 32 and ids[32:] == trace and len(ids) == 64
        assert value == f"00-{trace}-{ids[:16]}-02"  # this hop's span, random trace id flag
        assert line == f"traceparent: 00-{trace}-{ids[16:32]}-02"  # the first attempt's
        # What a hop with a remote parent writes for an unsampled request, too.
        assert (value, line) == unsampled_headers(trace, ids, RANDOM_TRACE_ID)


def test_a_sampled_context_leaves_the_headers_to_its_spans() -> None:
    for _, _, value, line in _take(RootContexts(1 << 64), BATCH):
        assert value is None and line is None


def test_no_context_repeats_and_none_has_an_all_zero_id() -> None:
    contexts = _take(RootContexts(0), 5 * BATCH)
    assert len({trace for trace, _, _, _ in contexts}) == len(contexts)
    assert len({ids[:16] for _, ids, _, _ in contexts}) == len(contexts)
    assert not any(ZERO_ID in ids for _, ids, _, _ in contexts)


def test_a_drawn_context_with_an_all_zero_id_is_never_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The draw's last 64 digits (the context taken first) hold an all-zero span id.
    good = "1" * 16 + "2" * 16 + "3" * 32
    bad = "4" * 16 + ZERO_ID + "5" * 32
    digits = good * (BATCH - 1) + bad
    draws = iter([int(digits, 16)])
    monkeypatch.setattr(
        root_contexts, "_getrandbits", lambda bits: next(draws, 0) or random.getrandbits(bits)
    )
    contexts = RootContexts(0)
    trace, ids, _, _ = contexts.refill()
    assert ids == good and trace == "3" * 32
    assert len(contexts.ready) == BATCH - 2  # the bad one dropped, one taken


def test_a_batch_of_nothing_but_all_zero_ids_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = iter([0])  # every digit zero, then random bits
    monkeypatch.setattr(
        root_contexts, "_getrandbits", lambda bits: next(draws, 1) and random.getrandbits(bits)
    )
    trace, ids, _, _ = RootContexts(0).refill()
    assert ZERO_ID not in ids and ids[32:] == trace


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_makes_its_own_contexts() -> None:
    contexts = RootContexts(0)
    _take(contexts, 1)  # the parent now holds BATCH - 1 made, not taken
    pending = {trace for trace, _, _, _ in contexts.ready}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report how many it inherited, and its first trace id
        try:
            inherited = len(contexts.ready)
            trace = _take(contexts, 1)[0][0]
            os.write(write, f"{inherited} {trace}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        inherited, trace = pipe.read().split()
    os.waitpid(pid, 0)
    assert inherited == "0"
    assert trace not in pending
