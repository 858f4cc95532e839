"""HTTP dates (RFC 9110 §5.6.7), read as every part of meshgate that meets one reads them:
``Retry-After`` (:mod:`mesh.resilience.outcome`), and the edge cache's ``Date``,
``Expires``, ``Last-Modified`` and ``If-Modified-Since`` (:mod:`edge.cache`)."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime


def http_date(value: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date (IMF-fixdate, or the obsolete RFC 850 and
    asctime forms); None when absent or unreadable. A date without a zone is UTC (GMT, as
    HTTP dates are)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime has no zone: HTTP dates are in GMT
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
