"""Retry decisions for the sidecar's outgoing calls, free of I/O.

Every class here takes its clock (monotonic seconds) and its randomness as
arguments, so the proxy wraps them and the tests drive them deterministically.
The breaker, the outcome of a call and the ejection rule, which the edge uses
too, are in :mod:`mesh.resilience`.

- ``retry_budget``: the per-service cap on retries relative to requests.
- ``retry_policy``: whether a failed attempt may be retried; tenacity predicate.
- ``backoff``: how long to wait before a retry (full jitter); tenacity wait.
"""
