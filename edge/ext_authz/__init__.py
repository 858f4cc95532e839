"""External authorization at the edge: an outside service decides whether each request
may pass (Envoy's ``ext_authz`` in HTTP mode, Traefik's ForwardAuth, nginx's
``auth_request``).

* :mod:`edge.ext_authz.config`: the ``ext_authz`` section and a route's ``ext_authz``;
* :mod:`edge.ext_authz.policy`: the pure decisions (what the check carries, what an
  answer means, what reaches the service and the client);
* :mod:`edge.ext_authz.client`: sending a check and reading its answer;
* :mod:`edge.ext_authz.metrics`: ``meshgate_ext_authz_*``;
* :mod:`edge.ext_authz.feature`: the feature whose filter (:mod:`edge.filters.ext_authz`)
  runs after authentication, before the rate limits.

There is no decision cache (Envoy keeps none either): every check carries the request's
own ``X-Request-Id`` and trace context, so a cache keyed on everything sent would never
hit, and one keyed on less would assume the service decides on nothing else (the time,
a count, a one-time token).
"""
