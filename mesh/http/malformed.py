"""Requests the HTTP parser refuses, answered the way meshgate answers every error.

aiohttp answers a request it cannot parse (a bad request line, an invalid
header, a line or header field over the size limit, broken chunked framing)
itself, before any handler runs: a ``text/plain`` 400 that quotes the
client's bytes back, and an ERROR log line with a traceback each time, which
anyone on the internet can send in a loop. A meshgate listener answers them
instead with a JSON problem (``bad-request``) carrying a request id, as every
other answer does, logs one INFO line without a traceback, and counts them
(``meshgate_malformed_requests_total``). An error of the server itself (a
500 aiohttp makes when a handler fails outside meshgate's own handling) is
still logged as an error, with its traceback, and answered with a problem.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestHandler

from mesh.http import request_id
from mesh.http.problem import problem_response

log = logging.getLogger(__name__)

_MOST_WORDS = 80
_QUOTED = re.compile(r":|\n| b?['\"]")
"""Where a parser's message starts quoting the client: a colon, a new line, or a repr."""


def describe(exc: BaseException | None) -> str:
    """What was wrong with a request, as the parser put it: its message up to where it
    starts quoting the client (a colon, a new line or a repr), which leaves llhttp's and
    aiohttp's fixed reasons, such as "Invalid character in chunk size" or "Got more
    than 8190 bytes when reading", and none of the client's bytes."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        reason = _QUOTED.split(message, 1)[0].strip().rstrip(".")
        if reason and len(reason) <= _MOST_WORDS and reason.isprintable():
            return reason
    return "the request is malformed"


_base_data_received = RequestHandler.data_received
"""Bound once: ``super().data_received`` would make a super object on every call."""


class ProblemRequestHandler(RequestHandler):
    """aiohttp's request handler, answering its own errors with JSON problems.

    ``on_malformed`` is called once for each request the parser refused.
    """

    __slots__ = ("on_malformed",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.on_malformed: Callable[[], None] | None = None

    def data_received(self, data: bytes) -> None:
        """As aiohttp's, and when the parser refuses what follows a request head whose
        body is being read (bad chunked framing), that body fails with the parser's
        error. aiohttp queues the error as the next message and leaves the body
        waiting for bytes that never come, so the request in flight would hang
        (until ``listen.body_timeout``) instead of getting its 400."""
        _base_data_received(self, data)
        # Every request's bytes pass here: between requests (most calls) this is one test.
        if self._current_request is not None and self._messages:
            self._fail_body_in_flight()

    def _fail_body_in_flight(self) -> None:
        request = self._current_request
        assert request is not None
        # The queued error's exception (a parsed request, a named tuple, has none).
        failure = getattr(self._messages[-1][0], "exc", None)
        body = request.content
        if isinstance(failure, BadHttpMessage) and not body.is_eof():
            body.set_exception(failure)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp's own: part of a response went out, so the connection is broken.
            raise ConnectionError("Response is sent already, cannot send another response")
        rid = request_id.new_id()
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
            title, detail, slug = "Internal error", "the gateway failed", "internal"
        else:
            detail = describe(exc)
            log.info("malformed request from %s: %s (request %s)", request.remote, detail, rid)
            if self.on_malformed is not None:
                self.on_malformed()
            title, slug = "Bad request", "bad-request"
        response = problem_response(
            status, title, detail, rid, slug=slug, headers={request_id.HEADER: rid}
        )
        response.force_close()
        return response
