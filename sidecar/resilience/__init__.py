"""Resilience decisions for the sidecar's outgoing calls, free of I/O.

Every class here takes its clock (monotonic seconds) and its randomness as
arguments, so the proxy wraps them and the tests drive them deterministically.

- ``outcome``: what one upstream call ended with (`CallOutcome`, `CallError`).
- ``sliding_window``: O(1) sliding aggregates (count ring, time buckets).
- ``breaker``: the per-instance circuit breaker state machine.
- ``retry_budget``: the per-service cap on retries relative to requests.
- ``retry_policy``: whether a failed attempt may be retried; tenacity predicate.
- ``backoff``: how long to wait before a retry (full jitter); tenacity wait.
- ``ejection``: which instances of a service may receive traffic.
"""
