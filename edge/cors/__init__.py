"""Cross-origin resource sharing at the edge: browsers' preflights answered, and the
CORS response headers added, from one policy (``cors`` in the edge's config)."""
