"""A Radix job scheduler stand-in (the API of one job component's scheduler, `radix-job-scheduler`).

  POST   /api/v1/jobs              {"payload", "jobId", "imageTagName", "timeLimitSeconds", ...} -> the job status
  GET    /api/v1/jobs              [job status, ...]
  GET    /api/v1/jobs/{name}       job status {"name", "jobId", "created", "started", "ended", "status", "message",
                                   "podStatuses": [{"name", "exitCode", "reason", "message", ...}]}
  POST   /api/v1/jobs/{name}/stop  Stopping, then Stopped after `stop_seconds` (404 when `stop_endpoint` is False:
                                   an older scheduler, which only has DELETE)
  DELETE /api/v1/jobs/{name}       removes the job
Errors are `{"status": "Failure", "message", "reason", "code"}` with 400/404/422/500.

What a job does comes from its payload (the runner's JSON of the environment): `SLEEP_SECONDS` (default 1),
`EXIT_CODE` (default 0). Timeline on the stand-in's clock (default `shared.clock.now()`): Waiting for
`start_delay` s, Running for SLEEP_SECONDS, then Succeeded / Failed; DeadlineExceeded when `timeLimitSeconds`
passes first. `stuck_active` keeps jobs Active (a replica that never becomes ready). Only the last
`keep_finished` (10) finished jobs are kept, as Radix does. Failure switches: `fail_next_posts` (status, message).
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Optional

from shared.platform import clock as shared_clock

from .base_server import Request, Response, StandInServer

JOB_PATH = re.compile(r"^/api/v1/jobs/(?P<name>[^/]+)(?P<stop>/stop)?$")


def _rfc3339(when: Optional[datetime]) -> Optional[str]:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _error(code: int, reason: str, message: str) -> Response:
    return Response(code, {"status": "Failure", "message": message, "reason": reason, "code": code})


@dataclass
class RadixJob:
    name: str
    job_id: str
    created: datetime
    payload: str
    image_tag: Optional[str]
    time_limit: Optional[int]
    sleep: float
    exit_code: int
    stop_requested: Optional[datetime] = None
    request: dict[str, Any] = field(default_factory=dict)


class RadixStandIn:
    def __init__(self, *, component: str = "compute", clock: Optional[Callable[[], datetime]] = None,
                 start_delay: float = 1.0, stop_seconds: float = 1.0, keep_finished: int = 10):
        self.component = component
        self._now = clock or shared_clock.now
        self.start_delay = start_delay
        self.stop_seconds = stop_seconds
        self.keep_finished = keep_finished
        self.stop_endpoint = True
        self.stuck_active = False
        self.fail_next_posts: list[tuple[int, str]] = []
        self.jobs: dict[str, RadixJob] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.RLock()
        self._server = StandInServer(self.handle)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> "RadixStandIn":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def handle(self, request: Request) -> Response:
        with self._lock:
            response = self._dispatch(request)
            self.requests.append((request.method, request.path, response.status))
            return response

    def _dispatch(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/api/v1/jobs":
            if request.method == "POST":
                return self._create(request)
            if request.method == "GET":
                now = self._now()
                return Response(200, [self._render(job, now) for job in self.jobs.values()])
            return _error(405, "MethodNotAllowed", f"{request.method} not allowed")
        m = JOB_PATH.match(request.path)
        if not m:
            return _error(404, "NotFound", f"no route {request.path}")
        name = m["name"]
        job = self.jobs.get(name)
        if m["stop"]:
            if request.method != "POST":
                return _error(405, "MethodNotAllowed", f"{request.method} not allowed")
            if not self.stop_endpoint:
                return _error(404, "NotFound", f"no route {request.path}")
            if job is None:
                return _error(404, "NotFound", f"job {name} not found")
            if self._state(job, self._now())[0] in ("Succeeded", "Failed", "Stopped", "DeadlineExceeded"):
                return _error(400, "BadRequest", f"job {name} is not running and cannot be stopped")
            job.stop_requested = job.stop_requested or self._now()
            return Response(200, {"status": "Success", "message": f"job {name} stopped", "code": 200})
        if request.method == "GET":
            if job is None:
                return _error(404, "NotFound", f"job {name} not found")
            return Response(200, self._render(job, self._now()))
        if request.method == "DELETE":
            if job is None:
                return _error(404, "NotFound", f"job {name} not found")
            del self.jobs[name]
            return Response(200, {"status": "Success", "message": f"job {name} deleted", "code": 200})
        return _error(405, "MethodNotAllowed", f"{request.method} not allowed")

    def _create(self, request: Request) -> Response:
        if self.fail_next_posts:
            status, message = self.fail_next_posts.pop(0)
            return _error(status, {400: "BadRequest", 422: "Invalid", 500: "InternalError"}.get(status, "Error"),
                          message)
        try:
            body = request.json()
        except ValueError:
            return _error(400, "BadRequest", "invalid JSON in request body")
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "request body must be a job scheduling description")
        payload = body.get("payload")
        if payload is not None and not isinstance(payload, str):
            return _error(422, "Invalid", "payload must be a string")
        time_limit = body.get("timeLimitSeconds")
        if time_limit is not None and (not isinstance(time_limit, int) or time_limit <= 0):
            return _error(422, "Invalid", "timeLimitSeconds must be a positive integer")
        behaviour: dict[str, Any] = {}
        try:
            parsed = json.loads(payload) if payload else {}
            behaviour = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
        now = self._now()
        name = f"{self.component}-{now.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        job = RadixJob(name=name, job_id=str(body.get("jobId") or ""), created=now, payload=payload or "",
                       image_tag=body.get("imageTagName"), time_limit=time_limit,
                       sleep=float(behaviour.get("SLEEP_SECONDS", 1)), exit_code=int(behaviour.get("EXIT_CODE", 0)),
                       request=body)
        self.jobs[name] = job
        self._prune(now)
        return Response(200, self._render(job, now))

    def _prune(self, now: datetime) -> None:
        finished = [j for j in self.jobs.values()
                    if self._state(j, now)[0] in ("Succeeded", "Failed", "Stopped", "DeadlineExceeded")]
        finished.sort(key=lambda j: j.created)
        for job in finished[:-self.keep_finished] if len(finished) > self.keep_finished else []:
            self.jobs.pop(job.name, None)

    def _state(self, job: RadixJob, now: datetime) -> tuple[str, Optional[datetime], Optional[datetime], str]:
        """(status, started, ended, message)"""
        start = job.created + timedelta(seconds=self.start_delay)
        natural_end = start + timedelta(seconds=job.sleep)
        deadline = job.created + timedelta(seconds=job.time_limit) if job.time_limit else None
        if job.stop_requested is not None:
            stopped = job.stop_requested + timedelta(seconds=self.stop_seconds)
            if job.stop_requested < natural_end and (deadline is None or job.stop_requested < deadline):
                started = start if job.stop_requested >= start else None
                if now < stopped:
                    return "Stopping", started, None, ""
                return "Stopped", started, stopped, "job was stopped"
        if self.stuck_active:
            return "Active", None, None, "replica is not ready"
        if deadline is not None and deadline < natural_end and now >= deadline:
            return ("DeadlineExceeded", start if deadline >= start else None, deadline,
                    "Job was active longer than specified deadline")
        if now < start:
            return "Waiting", None, None, ""
        if now < natural_end:
            return "Running", start, None, ""
        if job.exit_code == 0:
            return "Succeeded", start, natural_end, ""
        return "Failed", start, natural_end, f"container exited with code {job.exit_code}"

    def _render(self, job: RadixJob, now: datetime) -> dict[str, Any]:
        status, started, ended, message = self._state(job, now)
        pod: dict[str, Any] = {"name": f"{job.name}-pod", "created": _rfc3339(job.created),
                               "startTime": _rfc3339(started), "endTime": _rfc3339(ended),
                               "replicaStatus": {"status": status}, "restartCount": 0}
        if status in ("Succeeded", "Failed"):
            pod["exitCode"] = job.exit_code
            pod["reason"] = "Completed" if job.exit_code == 0 else "Error"
        body = {"name": job.name, "jobId": job.job_id, "created": _rfc3339(job.created), "started": _rfc3339(started),
                "ended": _rfc3339(ended), "status": status, "message": message, "podStatuses": [pod]}
        return {k: v for k, v in body.items() if v is not None}
