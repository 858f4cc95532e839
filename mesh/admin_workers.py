"""The admin listener across the edge's workers: one request, every worker's answer.

With ``--workers N`` the admin port is shared (``SO_REUSEPORT``), so a request
reaches one worker, and state held per process (the response cache's store,
breakers, outlier ejections, the last reload's outcome) is that worker's. Each
worker's admin app also answers on a Unix socket of its own
(:class:`mesh.workers.WorkerSeat`), so the worker a request reaches can ask the
others the same thing. The ``workers`` query parameter says whom a request is for:

* ``workers=this``: the worker that answers (what a view answers by default);
* ``workers=all``: every worker, this one first; the reply lists each one's
  answer in worker order, ``{"workers": [{"worker": 0, "status": 200,
  "answer": {...}}, ...]}``, plus what the endpoint sums up (a purge's
  ``purged``). An action on per-process state (``POST /cache/purge``) is for
  every worker by default.

This worker answers first: if it refuses the request (a 400 for a bad body, say)
its answer is the reply and no other worker is asked. A worker that does not
answer (still starting, stopping, slower than :data:`TIMEOUT`) or answers other
than 200 is listed with its ``error`` or ``status``, and the reply is a 503
problem carrying the same fields: a partial result is never passed off as a
whole one. In a single process ``workers=all`` lists that one process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from mesh.admin import AdminHandler, json_response
from mesh.http.problem import problem_response
from mesh.workers import WorkerSeat

Summary = Callable[[Sequence["WorkerAnswer"]], Mapping[str, Any]]
"""What an endpoint adds to the combined reply, from the workers' answers."""

QUERY = "workers"
ALL = "all"
THIS = "this"
TIMEOUT = 5.0
"""Seconds each other worker has to answer."""


@dataclass(frozen=True)
class WorkerAnswer:
    """Worker ``worker``'s answer: its ``status`` and JSON body, or why none came."""

    worker: int
    status: int | None
    answer: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def as_json(self) -> dict[str, Any]:
        if self.status is None:
            return {"worker": self.worker, "error": self.error}
        return {"worker": self.worker, "status": self.status, "answer": self.answer}


def combined(answers: Sequence[WorkerAnswer], summary: Summary | None = None) -> web.Response:
    """The one reply for every worker's ``answers``: 200 with ``summary``'s fields and
    ``workers`` when each worker answered 200, otherwise a 503 problem naming the ones
    that did not, with the same fields."""
    fields = {**(summary(answers) if summary else {}), "workers": [a.as_json() for a in answers]}
    failed = [a for a in answers if not a.ok]
    if not failed:
        return json_response(fields)
    detail = "; ".join(
        f"worker {a.worker}: {a.error if a.status is None else f'answered {a.status}'}"
        for a in failed
    )
    return problem_response(
        503, "Not every worker answered", detail, None, slug="workers-unanswered", extra=fields
    )


class AdminWorkers:
    """This process's place among the edge's workers (none: a single process), and
    how to ask the others' admin listeners."""

    def __init__(self, seat: WorkerSeat | None, timeout: float = TIMEOUT) -> None:
        self._seat = seat
        self._timeout = timeout

    @property
    def several(self) -> bool:
        """True in a worker of several."""
        return self._seat is not None

    @property
    def socket_path(self) -> str | None:
        """Where this worker's admin app must also listen (None: a single process)."""
        return self._seat.socket_path(self._seat.index) if self._seat is not None else None

    def across(
        self, handler: AdminHandler, *, every_worker: bool = False, summary: Summary | None = None
    ) -> AdminHandler:
        """``handler``, also answering for every worker when the request says
        ``workers=all`` (the default with ``every_worker`` and several workers)."""
        default = ALL if every_worker and self.several else THIS

        async def handle(request: web.Request) -> web.StreamResponse:
            scope = request.query.get(QUERY, default)
            if scope == THIS:
                return await handler(request)
            if scope != ALL:
                return problem_response(
                    400, "Bad request", f"{QUERY}: {ALL!r} or {THIS!r}", None, slug="bad-workers"
                )
            own = await handler(request)
            if own.status != 200:
                return own
            index = self._seat.index if self._seat is not None else 0
            others = await self._ask_others(request)
            answers = sorted([_answered(index, own), *others], key=lambda a: a.worker)
            return combined(answers, summary)

        return handle

    async def _ask_others(self, request: web.Request) -> list[WorkerAnswer]:
        target = request.rel_url.update_query({QUERY: THIS})
        return await self.ask_others(request.method, str(target), await request.read())

    async def ask_others(self, method: str, target: str, body: bytes) -> list[WorkerAnswer]:
        """Every other worker's answer to ``method`` ``target`` (a path and query, which
        should say ``workers=this``) with ``body``, in worker order; none in a single
        process."""
        seat = self._seat
        if seat is None:
            return []
        asks = (self._ask(seat, i, method, target, body) for i in seat.others)
        return list(await asyncio.gather(*asks))

    async def _ask(
        self, seat: WorkerSeat, index: int, method: str, target: str, body: bytes
    ) -> WorkerAnswer:
        connector = aiohttp.UnixConnector(path=seat.socket_path(index))
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(method, f"http://worker-{index}{target}", data=body) as resp,
            ):
                return WorkerAnswer(index, resp.status, _decoded(await resp.read()))
        except TimeoutError:
            return WorkerAnswer(index, None, error=f"no answer within {self._timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return WorkerAnswer(index, None, error=f"not reached ({_reason(exc)})")


def _reason(exc: BaseException) -> str:
    """The operating system's words when it refused (no socket yet: the worker is
    starting), else the failure's kind."""
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return exc.__class__.__name__


def _answered(index: int, response: web.StreamResponse) -> WorkerAnswer:
    body = response.body if isinstance(response, web.Response) else None
    return WorkerAnswer(index, response.status, _decoded(body if isinstance(body, bytes) else b""))


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
