"""The edge's ``upstream_limits``: a bound on each service's requests in flight."""
