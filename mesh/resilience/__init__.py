"""Resilience decisions shared by the edge and the sidecar, free of I/O.

Every class here takes its clock (monotonic seconds) and its randomness as
arguments, so the proxies wrap them and the tests drive them deterministically.

- ``outcome``: what one upstream call ended with (`CallOutcome`, `CallError`).
- ``sliding_window``: O(1) sliding aggregates (count ring, time buckets).
- ``breaker``: the per-instance circuit breaker state machine.
- ``breaker_config``: its configuration section, as both processes read it.
- ``ejection``: which instances of a service may receive traffic.
- ``retry_budget``: the per-service cap on retries relative to requests.
- ``retry_policy``: whether a failed attempt may be retried; tenacity predicate.
- ``backoff``: how long to wait before a retry (full jitter); tenacity wait.

The edge's passive outlier detection is in :mod:`edge.outliers`.
"""
