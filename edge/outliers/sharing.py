"""Ejections told: an edge worker's ejection reaches the other workers, and an operator
can eject an instance from every worker.

Each edge worker has its own detector and judges instances by its own requests,
so with ``--workers N`` an instance that fails would otherwise be ejected by each
worker only after failing that worker's requests. When a worker's breaker opens
for an instance, :meth:`EjectionSharing.announce` tells the other workers (over
their admin sockets, :mod:`mesh.admin_workers`) to leave it out for the time its
breaker stays open (:meth:`mesh.resilience.outliers.OutlierDetector.eject_for`).
The worker that ejected it runs the trial calls; the others take it back when the
time is over, and their own breakers judge it again.

``POST /outliers/ejections`` on the admin listener does the same for an operator,
for every worker by default: ``{"service": "users", "instance": "users-2",
"seconds": 60}`` (at most 300 s). The workers use it among themselves with
``?workers=this``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mesh.admin import json_response
from mesh.admin_workers import QUERY, THIS, AdminWorkers
from mesh.http.problem import problem_response
from mesh.resilience.ejection import MAX_AVOIDANCE_S
from mesh.resilience.outliers import OutlierDetector

log = logging.getLogger("meshgate.edge.outliers")

PATH = "/outliers/ejections"


class EjectionSharing:
    """Announces this worker's ejections and applies those it is told of, to the
    detector ``detector()`` returns now (None: outlier detection is off)."""

    def __init__(
        self, workers: AdminWorkers, detector: Callable[[], OutlierDetector | None]
    ) -> None:
        self._workers = workers
        self._detector = detector
        self._tasks: set[asyncio.Task[None]] = set()
        """Strong references: the event loop keeps only weak ones to its tasks."""

    def announce(self, service: str, instance: str, seconds: float) -> None:
        """Tell the other workers (if any) to eject the instance for ``seconds``."""
        if not self._workers.several or seconds <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._tell(service, instance, seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, service: str, instance: str, seconds: float) -> None:
        body = {"service": service, "instance": instance, "seconds": round(seconds, 3)}
        target = f"{PATH}?{QUERY}={THIS}"
        answers = await self._workers.ask_others("POST", target, json.dumps(body).encode())
        for answer in answers:
            if not answer.ok:
                log.warning(
                    "worker %d was not told of the ejection of %s (%s): %s",
                    answer.worker,
                    instance,
                    service,
                    answer.error or f"it answered {answer.status}",
                )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``POST /outliers/ejections``: eject the instance named for the seconds given."""
        try:
            body: Any = json.loads(await request.read() or b"null")
        except ValueError:
            return _bad("the body is not JSON")
        if not isinstance(body, dict) or set(body) != {"service", "instance", "seconds"}:
            return _bad('give {"service": ..., "instance": ..., "seconds": ...}')
        service, instance, seconds = body["service"], body["instance"], body["seconds"]
        if not isinstance(service, str) or not service:
            return _bad("service: a service's name")
        if not isinstance(instance, str) or not instance:
            return _bad("instance: an instance id, as /routes shows it")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            return _bad(f"seconds: a number above 0 (at most {MAX_AVOIDANCE_S:g} are kept)")
        detector = self._detector()
        if detector is None:
            return problem_response(
                409,
                "Outlier detection is off",
                "outlier_detection.enabled is false: nothing ejects instances",
                None,
                slug="outlier-detection-off",
            )
        detector.eject_for(service, instance, float(seconds))
        return json_response(
            {
                "service": service,
                "instance": instance,
                "seconds": min(float(seconds), MAX_AVOIDANCE_S),
            }
        )


def _bad(detail: str) -> web.Response:
    return problem_response(400, "Bad request", detail, None, slug="bad-ejection")
