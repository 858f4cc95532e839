"""HTTP response caching at the edge (RFC 9111 shared-cache semantics), per route.

* :mod:`edge.cache.config`: the ``cache`` section (the store) and a route's ``cache``;
* pure decisions, with an injected clock: :mod:`edge.cache.control` (``Cache-Control``,
  dates), :mod:`edge.cache.freshness` (lifetime, age, stale windows),
  :mod:`edge.cache.storable` (what may be stored), :mod:`edge.cache.vary`,
  :mod:`edge.cache.key`, :mod:`edge.cache.tags` (surrogate keys),
  :mod:`edge.cache.ranges` (byte ranges),
  :mod:`edge.cache.conditional` (304s),
  :mod:`edge.cache.status` (``Cache-Status``), :mod:`edge.cache.store` (the bounded
  LRU store);
* the I/O around them: :mod:`edge.cache.flights` (collapsing concurrent misses),
  :mod:`edge.cache.writer` (copying a relayed body into an entry),
  :mod:`edge.cache.responses` (answers from entries), :mod:`edge.cache.serving` (a
  request's way through the cache), :mod:`edge.cache.metrics`, :mod:`edge.cache.admin`;
* :mod:`edge.cache.feature`: the feature whose filter (:mod:`edge.filters.cache`) runs
  right before the mirror's and the proxy.
"""
