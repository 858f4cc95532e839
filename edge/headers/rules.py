"""One ``headers`` configuration, made ready to apply to an exchange."""

from __future__ import annotations

from multidict import istr

from edge.headers.config import HeadersConfig
from mesh.exchange import Exchange


class HeaderRules:
    """Apply with :meth:`request` (to ``ex.upstream_headers``) and :meth:`response` (to
    what ``ex`` will answer, whoever answers it)."""

    def __init__(self, config: HeadersConfig) -> None:
        self.request_set = tuple((istr(n), v) for n, v in config.request.set.items())
        self.request_remove = tuple(istr(n) for n in config.request.remove)
        self.response_set = tuple(config.response.set.items())
        self.response_remove = tuple(config.response.remove)
        self._response_names = {n.lower() for n in config.response.set}
        self.has_request = bool(self.request_set or self.request_remove)
        self.has_response = bool(self.response_set or self.response_remove)

    def request(self, ex: Exchange) -> None:
        headers = ex.upstream_headers
        for name in self.request_remove:
            headers.popall(name, None)
        for name, value in self.request_set:
            headers[name] = value

    def response(self, ex: Exchange) -> None:
        """Replaces what was set for the response before under the same names (the
        edge's own rules, when these are a route's)."""
        if self.response_set:
            names = self._response_names
            ex.response_headers = [
                pair for pair in ex.response_headers if pair[0].lower() not in names
            ]
            ex.response_headers.extend(self.response_set)
        if self.response_remove:
            ex.response_drops += self.response_remove
