"""The admin listener across workers (mesh/admin_workers.py): ``?workers=all`` lists every
worker's answer, an action for every worker reaches each one's state, and a worker that
does not answer turns the reply into a 503 problem. The "workers" are real admin apps in
this process, each on a TCP port and its own Unix socket, as an edge worker's is."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from mesh.admin import build_admin_app, json_response
from mesh.admin_auth import AdminAuth
from mesh.admin_workers import AdminWorkers, WorkerAnswer, combined
from mesh.config.sections import AdminConfig
from mesh.server import Listener
from mesh.workers import WorkerSeat, this_worker


class Worker:
    """One worker's admin listener and the state it holds (a count of things)."""

    def __init__(
        self,
        workers: AdminWorkers,
        index: int,
        things: int,
        delay: float = 0,
        auth: AdminAuth | None = None,
    ) -> None:
        self.index = index
        self.things = things
        self.delay = delay
        app = build_admin_app(
            ready=lambda: (True, {}),
            views={"/things": lambda: {"index": self.index, "things": self.things}},
            registry=CollectorRegistry(),
            endpoints={
                ("POST", "/things/drop"): workers.across(
                    self.drop, every_worker=True, summary=dropped_total
                )
            },
            across=workers.across,
            auth=auth,
        )
        self.listener = Listener(
            f"admin-{index}", app, "127.0.0.1", 0, shutdown_timeout=0.2,
            unix_path=workers.socket_path,
        )  # fmt: skip

    async def drop(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read() or b"null")
        if not isinstance(body, int):
            return json_response({"error": "give a number"}, 400)
        await asyncio.sleep(self.delay)
        dropped = min(body, self.things)
        self.things -= dropped
        return json_response({"dropped": dropped})


def dropped_total(answers: Sequence[WorkerAnswer]) -> dict[str, int]:
    return {"dropped": sum(a.answer["dropped"] for a in answers if a.ok)}


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Worker] = []

    async def start(
        count: int, things: Sequence[int], absent: Sequence[int] = (), within: float = 5.0,
        delays: dict[int, float] | None = None, admin: AdminConfig | None = None,
    ) -> list[Worker]:  # fmt: skip
        for index in range(count):
            if index in absent:
                continue
            seat = WorkerSeat(index, count, str(tmp_path))
            auth = AdminAuth(admin, CollectorRegistry()) if admin is not None else None
            worker = Worker(
                AdminWorkers(seat, within), index, things[index], (delays or {}).get(index, 0),
                auth,
            )  # fmt: skip
            await worker.listener.start()
            started.append(worker)
        return list(started)

    yield start
    for worker in started:
        await worker.listener.stop()


async def call(
    worker: Worker, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, str, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    url = f"http://127.0.0.1:{worker.listener.port}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as r,
    ):
        return r.status, r.content_type, await r.json(content_type=None)


async def test_a_view_answers_for_this_worker_unless_asked_for_all(workers: Any) -> None:
    first, second = await workers(2, [3, 5])
    assert await call(second, "GET", "/things") == (
        200, "application/json", {"index": 1, "things": 5},
    )  # fmt: skip
    assert (await call(second, "GET", "/things?workers=this"))[2] == {"index": 1, "things": 5}
    status, _, body = await call(second, "GET", "/things?workers=all")
    # Worker order whichever worker answers; each worker's own view.
    assert status == 200
    assert body == {
        "workers": [
            {"worker": 0, "status": 200, "answer": {"index": 0, "things": 3}},
            {"worker": 1, "status": 200, "answer": {"index": 1, "things": 5}},
        ]
    }
    assert (await call(first, "GET", "/things?workers=all"))[2] == body


async def test_an_action_for_every_worker_reaches_each_ones_state(workers: Any) -> None:
    first, second = await workers(2, [3, 5])
    status, _, body = await call(first, "POST", "/things/drop", 4)
    assert status == 200
    assert body["dropped"] == 3 + 4
    assert [(w["worker"], w["answer"]["dropped"]) for w in body["workers"]] == [(0, 3), (1, 4)]
    assert (first.things, second.things) == (0, 1)
    # workers=this: only the worker that answers.
    status, _, body = await call(second, "POST", "/things/drop?workers=this", 1)
    assert (status, body, first.things, second.things) == (200, {"dropped": 1}, 0, 0)


async def test_with_a_token_the_client_needs_it_and_the_workers_ask_one_another_without(
    workers: Any, tmp_path: Path
) -> None:
    token = "3f9a1c0e5b7d2a4f6e8c0b1d3a5f7e9c"
    secret = tmp_path / "admin-token"
    secret.write_text(token)
    first, second = await workers(2, [3, 5], admin=AdminConfig(token_file=str(secret)))
    # Refused before anything runs: no worker's state is touched, no worker asked.
    status, _, body = await call(first, "POST", "/things/drop", 4)
    assert (status, body["status"], first.things, second.things) == (401, 401, 3, 5)
    assert (await call(second, "GET", "/things?workers=all", token="x" * 32))[0] == 401
    # With the token, the worker asked forwards over the others' Unix sockets (which
    # need none) and every worker answers.
    status, _, body = await call(second, "GET", "/things?workers=all", token=token)
    assert status == 200
    assert [(w["worker"], w["status"]) for w in body["workers"]] == [(0, 200), (1, 200)]
    status, _, body = await call(first, "POST", "/things/drop", 4, token=token)
    assert (status, body["dropped"], first.things, second.things) == (200, 7, 0, 1)


async def test_a_request_this_worker_refuses_is_answered_once_and_sent_nowhere(
    workers: Any,
) -> None:
    first, second = await workers(2, [3, 5])
    status, _, body = await call(first, "POST", "/things/drop", "all of them")
    assert (status, body) == (400, {"error": "give a number"})
    assert (first.things, second.things) == (3, 5)
    status, content_type, body = await call(first, "GET", "/things?workers=some")
    assert (status, content_type) == (400, "application/problem+json")
    assert body["detail"] == "workers: 'all' or 'this'"


async def test_a_worker_not_listening_makes_a_503_with_what_the_others_answered(
    workers: Any,
) -> None:
    first, third = await workers(3, [3, 5, 7], absent=[1])
    status, content_type, body = await call(third, "POST", "/things/drop", 2)
    assert (status, content_type) == (503, "application/problem+json")
    assert body["title"] == "Not every worker answered"
    assert body["detail"] == "worker 1: not reached (No such file or directory)"
    assert body["dropped"] == 4  # the two that answered did drop: the reply says so
    assert body["workers"][1] == {"worker": 1, "error": "not reached (No such file or directory)"}
    assert (first.things, third.things) == (1, 5)


async def test_a_worker_slower_than_the_timeout_is_reported_not_waited_for(
    workers: Any,
) -> None:
    first, _ = await workers(2, [3, 5], within=0.2, delays={1: 2.0})
    started = asyncio.get_running_loop().time()
    status, _, body = await call(first, "POST", "/things/drop", 1)
    assert asyncio.get_running_loop().time() - started < 1.5
    assert status == 503
    assert body["detail"] == "worker 1: no answer within 0.2 s"


async def test_a_single_process_lists_itself_and_acts_on_its_own_state() -> None:
    workers = AdminWorkers(None)
    assert (workers.several, workers.socket_path) == (False, None)
    worker = Worker(workers, 0, 3)
    await worker.listener.start()
    try:
        status, _, body = await call(worker, "GET", "/things?workers=all")
        assert (status, body) == (
            200, {"workers": [{"worker": 0, "status": 200, "answer": {"index": 0, "things": 3}}]},
        )  # fmt: skip
        # An action for every worker is this process's alone: its own answer, as before.
        assert await call(worker, "POST", "/things/drop", 2) == (
            200, "application/json", {"dropped": 2},
        )  # fmt: skip
    finally:
        await worker.listener.stop()


def test_combined_is_200_only_when_every_worker_answered_200() -> None:
    answers = [WorkerAnswer(0, 200, {"n": 1}), WorkerAnswer(1, 200, {"n": 2})]
    reply = combined(answers, lambda got: {"n": sum(a.answer["n"] for a in got)})
    assert reply.status == 200
    assert isinstance(reply.body, bytes)
    assert json.loads(reply.body)["n"] == 3
    refused = [WorkerAnswer(0, 200, {"n": 1}), WorkerAnswer(1, 500, "boom")]
    reply = combined(refused)
    assert reply.status == 503
    assert isinstance(reply.body, bytes)
    body = json.loads(reply.body)
    assert body["detail"] == "worker 1: answered 500"
    assert body["workers"][1] == {"worker": 1, "status": 500, "answer": "boom"}


def test_a_seat_names_every_workers_socket_and_the_others() -> None:
    seat = WorkerSeat(1, 3, "/run/x")
    assert [seat.socket_path(i) for i in range(3)] == [
        "/run/x/admin-0.sock", "/run/x/admin-1.sock", "/run/x/admin-2.sock",
    ]  # fmt: skip
    assert seat.others == [0, 2]
    assert this_worker() is None  # not forked by run_workers
