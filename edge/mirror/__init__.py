"""Request mirroring (shadow traffic) at the edge: a route copies a share of its requests
to a second service, fire and forget.

* :mod:`edge.mirror.config`: a route's ``mirror`` key;
* :mod:`edge.mirror.policy`: the pure decisions (which requests, which bodies, the
  shadow's ``Host``);
* :mod:`edge.mirror.shadow`: sending the copies, bounded, and their metrics
  (:mod:`edge.mirror.metrics`);
* :mod:`edge.mirror.feature`: the feature whose filter (:mod:`edge.filters.mirror`)
  starts them, last before the proxy.
"""
