"""Managed identity headers: the names only the edge may set, in every spelling.

A header is *managed* when the edge owns it: clients never get to send it, the
edge sets it for an authenticated caller. Names are compared by
:func:`header_key`: case-insensitively and with ``_`` equal to ``-``, because
many servers fold ``X_User_Id`` and ``X-User-Id`` into one variable (CGI and
WSGI ``HTTP_X_USER_ID``, PHP, nginx with ``underscores_in_headers``) and
aiohttp passes underscore spellings through as distinct headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from multidict import CIMultiDict, istr

DEFAULT_IDENTITY_HEADERS: tuple[str, ...] = (
    "X-User-Id",
    "X-User-Roles",
    "X-User-Email",
    "X-Consumer-Id",
    "X-Auth-Method",
    "X-Auth-Provider",
)
"""The managed identity headers unless configured otherwise."""

IDENTITY_TOKEN_HEADER = "X-Mesh-Identity"
"""Where the edge puts its signed identity token by default."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def is_header_name(name: str) -> bool:
    """True if ``name`` is a valid HTTP field name (an RFC 9110 token)."""
    return bool(_TOKEN.match(name))


def header_key(name: str) -> str:
    """The comparison key of a header name: lower case, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


def header_keys(names: Iterable[str]) -> frozenset[str]:
    """The comparison keys of ``names``, as :class:`multidict.istr` (equal to the
    plain keys), so that multidicts compare them without folding them again."""
    return frozenset(istr(header_key(n)) for n in names)


def managed_names_present(headers: CIMultiDict[str], keys: frozenset[str]) -> list[str]:
    """The distinct names in ``headers`` (as spelled there) whose key is in ``keys``."""
    found: list[str] = []
    for name in headers:
        if header_key(name) in keys and name not in found:
            found.append(name)
    return found


def remove_managed(headers: CIMultiDict[str], keys: frozenset[str]) -> int:
    """Remove every header whose key is in ``keys`` (all copies, all spellings).

    Returns how many header lines were removed. Guarantee: afterwards no name
    in ``headers`` has a key in ``keys``.
    """
    # The usual request has no managed header: say so in C, without a key per
    # name. A name without "_" has the key name.lower(), which is exactly how
    # CIMultiDict compares names, so if no key is in ``headers`` and no name
    # holds a "_", no name has a managed key.
    if "_" not in "".join(headers) and headers.keys().isdisjoint(keys):
        return 0
    removed = 0
    for name in managed_names_present(headers, keys):
        removed += len(headers.popall(name, ()))
    return removed
