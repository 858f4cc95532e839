"""Fault injection (delays and aborts) for chaos testing, shared by the edge and the sidecar.

What Envoy's HTTP fault filter and Istio's VirtualService ``fault`` do: a share
of the requests is held for a while before going on, or answered at once with
an error, so a team can watch how its services and meshgate's own resilience
behave under failure.

- ``config``: the ``fault`` block, as an edge route and a sidecar's
  ``outbound.faults.<service>`` write it;
- ``policy``: which faults one request gets (percent draws, header control,
  the ``max_active`` cap), free of I/O, its randomness injected;
- ``injection``: applying them to an exchange (the delay bounded by the
  request's deadline, the abort's problem answer, metrics, span event);
- ``metrics``: ``meshgate_faults_*``.

Where a fault is injected, and so what sees it, is the glue's:
:mod:`edge.faults` (a route's requests, last before the proxy) and
:mod:`sidecar.filters.faults` (the app's calls to one service, before the
breakers and retries).
"""
