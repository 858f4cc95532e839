"""Where every request enters: normalise, identify, strip hop-by-hop, then run the chain.

The ingress is the aiohttp low-level handler of a listener. It turns the raw
request into an :class:`Exchange` and hands it to the current chain; it owns
the rules that must hold for every request whatever the chain does:

* the path is normalised once (400 problem if it cannot be);
* ``X-Request-Id`` is kept if valid, generated otherwise, sent upstream and
  returned on the response;
* hop-by-hop headers, and every header named in ``Connection``, never travel;
* ``X-Forwarded-For/-Proto/-Host`` are appended, trusting the client's own
  values only for ``trusted_hops`` proxies;
* an unexpected error becomes a 500 problem, not a dropped connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.http import request_id
from mesh.http.headers import client_address, drop_names, end_to_end, forwarded_chain
from mesh.http.path import PathRejected, normalise_path, split_target
from mesh.http.problem import problem_response
from mesh.http.upgrade import DEFAULT_PROTOCOLS, UPGRADE, requested_upgrade
from mesh.telemetry.propagation import trace_id_from_headers

log = logging.getLogger(__name__)

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Ingress:
    def __init__(
        self,
        chain: Callable[[], Handler],
        *,
        trusted_hops: int = 0,
        scheme: str = "http",
        strip_headers: Iterable[str] = (),
        upgrades: frozenset[str] = DEFAULT_PROTOCOLS,
    ) -> None:
        """``chain`` returns the handler to run now (it changes with each snapshot).

        ``strip_headers`` (lower-case names) are removed from every request
        before any filter runs, e.g. identity headers a client might spoof.
        ``upgrades``: the protocols a request may switch to (lower case; see
        :mod:`mesh.http.upgrade`), tunnelled once the upstream agrees.
        """
        self._chain = chain
        self._trusted_hops = trusted_hops
        self._scheme = scheme
        self._drop = drop_names([*strip_headers, "expect"])
        self._upgrades = upgrades

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = request.headers
        rid = request_id.accept_or_generate(headers.get(request_id.HEADER))
        # aiohttp's parser stops reading HTTP after a request that asks to switch, so
        # unless it is switched (101) its connection cannot carry another request: every
        # other answer to it closes the connection. One look-up; the rest only for such.
        asks_upgrade = UPGRADE in headers
        try:
            raw_path, query = split_target(request.raw_path)
            path = normalise_path(raw_path)
        except PathRejected as exc:
            # Before any filter, so no trace of ours: name the caller's, if it sent one.
            trace_id = trace_id_from_headers(headers)
            problem = problem_response(
                400, "Bad request path", exc.reason, rid, slug="bad-path", trace_id=trace_id
            )
            if asks_upgrade:
                problem.force_close()
            return _with_id(problem, rid)
        peer = request.remote or ""
        chain = forwarded_chain(headers.get("X-Forwarded-For"), self._trusted_hops)
        upstream = end_to_end(headers, self._drop)
        upstream["X-Forwarded-For"] = ", ".join([*chain, peer])
        trusted = self._trusted_hops > 0
        proto = headers.get("X-Forwarded-Proto") if trusted else None
        upstream["X-Forwarded-Proto"] = proto or self._scheme
        fwd_host = headers.get("X-Forwarded-Host") if trusted else None
        host = fwd_host or headers.get("Host")
        if host:
            upstream["X-Forwarded-Host"] = host
        upstream[request_id.HEADER] = rid
        ex = Exchange(
            request=request,
            path=path,
            query=query,
            request_id=rid,
            client_ip=client_address(peer, chain),
            upstream_headers=upstream,
        )
        ex.response_headers.append((request_id.HEADER, rid))
        if asks_upgrade:
            ex.upgrade = requested_upgrade(headers, self._upgrades)
            if ex.upgrade is not None:
                upstream["Connection"] = "Upgrade"
                upstream[UPGRADE] = ex.upgrade
        if headers.get("Expect", "").lower() == "100-continue" and request.body_exists:
            # The low-level server does not answer Expect itself; the upstream
            # never sees it (we consumed it), so we must say "go ahead".
            await request.writer.write(_CONTINUE)
        try:
            response = await self._chain()(ex)
        except Exception:
            log.exception("unhandled error for %s %s (request %s)", request.method, path, rid)
            response = ex.problem(
                500, "Internal error", "the gateway failed to handle the request", slug="internal"
            )
        ex.apply_response_headers(response)
        if asks_upgrade and response.status != 101:
            response.force_close()
        return response


def _with_id(response: web.Response, rid: str) -> web.Response:
    response.headers[request_id.HEADER] = rid
    return response
