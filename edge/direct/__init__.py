"""Routes the edge answers itself: redirects and fixed responses (Envoy's ``redirect`` and
``direct_response`` route actions, nginx's ``return``).

- :mod:`edge.direct.location`: a request's authority read safely, and Location URLs built
  from it (the HTTPS listener's redirect uses it too);
- :mod:`edge.direct.actions`: what such a route answers (pure);
- :mod:`edge.direct.config`: a route's ``redirect`` and ``direct_response`` blocks;
- :mod:`edge.direct.terminal`: the end of the edge's chain, answering for those routes and
  handing every other request to the proxy.
"""
