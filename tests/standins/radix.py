"""A Radix job scheduler stand-in: the API of one job component's scheduler, written from Radix's own sources.

Sources (read, not copied): equinor/radix-operator at 754d3f6 (the scheduler now lives there as job-scheduler/;
equinor/radix-job-scheduler at bfdfa08 has the same models), equinor/radix-public-site docs, and Kubernetes'
Job documentation (kubernetes/website content/en/docs/concepts/workloads/controllers/job.md,
content/en/docs/tasks/job/pod-failure-policy.md). Each behaviour below names the file it follows.

Routes (job-scheduler/api/v1/controllers/jobs/controller.go, batches/controller.go; base path /api/v1):
  POST   /jobs                       JobScheduleDescription -> 200 JobStatus (Waiting)
  GET    /jobs                       [JobStatus] of single jobs and batch jobs
  GET    /jobs/{job}                 JobStatus
  DELETE /jobs/{job}                 200 Status "job {job} successfully deleted"
  POST   /jobs/{job}/stop            200 Status "job {job} was successfully stopped"; 400 for a finished job
  POST   /jobs/stop                  200 Status "all jobs where successfully stopped" (sic)
  POST   /batches                    BatchScheduleDescription -> 200 BatchStatus
  GET    /batches, /batches/{batch}, /batches/{batch}/jobs/{job}
  DELETE /batches/{batch}            200 Status "batch {batch} successfully deleted"
  POST   /batches/{batch}/stop       200 Status "batch {batch} successfully stopped"
  POST   /batches/{batch}/jobs/{job}/stop  200 Status "job {job} in the batch {batch} successfully stopped"
  POST   /batches/stop               200 Status "batches successfully stopped"
Errors are models/common/status.go Status {"status": "Failure", "message", "reason", "code"} built as
pkg/errors/errors.go does; a route gin does not know answers its plain-text "404 page not found".

What a job does comes from its payload (the runner's JSON of the environment): SLEEP_SECONDS (default 1),
EXIT_CODE (default 0) or EXIT_CODES ("3,3,0": one per attempt, the last repeats), OOM=1 (each attempt is
OOMKilled after SLEEP_SECONDS), TRAPS_SIGTERM=1 (the job exits 143 on SIGTERM instead of being SIGKILLed after
the 30 s grace period). Time runs on the stand-in's clock (default `shared.clock.now()`).

Knobs: `start_delay` (creation -> container running: the first half Waiting for the operator, the second Active
while the pod pulls), `stop_seconds` (stop -> Stopped), `backoff_base` (Kubernetes' retry delay, 10 s),
`deadline_level` ("pod", as Radix sets it, or "job"), `stuck_active`, `stop_endpoint` (False: an old scheduler
without /stop), `fail_next_posts` [(status, message)], `fail_next_deletes` [(status, message)] (e.g. 429 from the
cluster's ingress, with Retry-After), `keep_finished` (10).
"""

from __future__ import annotations

import json
import random
import re
import string
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Optional

from shared.platform import clock as shared_clock

from .base_server import Request, Response, StandInServer

API = "/api/v1"
MAX_ATTEMPTS = 50
MAX_BACKOFF_SECONDS = 360.0  # k8s job.md: "exponential back-off delay (10s, 20s, 40s ...) capped at six minutes"
GRACE_SECONDS = 30.0  # radix-public-site docs/radix-config/index.md#timelimitseconds: SIGTERM, 30 s, then killed
INT32_MAX = 2**31 - 1


def _rfc3339(when: Optional[datetime]) -> Optional[str]:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None  # metav1.Time: second precision


def _status(code: int, reason: str, message: str) -> Response:
    """pkg/errors/errors.go: NewBadRequest 400 BadRequest, NewNotFound 404 NotFound "{kind} {name} not found",
    NewInvalid(WithReason) 422 Invalid "{name} is invalid[: {reason}]", NewUnknown 500 InternalError."""
    return Response(code, {"status": "Failure", "message": message, "reason": reason, "code": code})


def _ok(message: str) -> Response:
    return Response(200, {"status": "Success", "message": message, "code": 200})


def _rand(n: int) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


# --- what one job does ---------------------------------------------------------------------------------------


@dataclass
class Behaviour:
    sleep: float = 1.0
    exit_codes: tuple[int, ...] = (0,)
    oom: bool = False
    traps_sigterm: bool = False

    @classmethod
    def from_payload(cls, payload: str) -> "Behaviour":
        try:
            values = json.loads(payload) if payload else {}
        except ValueError:
            values = {}
        values = values if isinstance(values, dict) else {}
        codes = str(values.get("EXIT_CODES") or values.get("EXIT_CODE") or "0")
        return cls(
            sleep=float(values.get("SLEEP_SECONDS", 1)),
            exit_codes=tuple(int(c) for c in codes.split(",") if c.strip()) or (0,),
            oom=str(values.get("OOM", "")) == "1",
            traps_sigterm=str(values.get("TRAPS_SIGTERM", "")) == "1",
        )


@dataclass
class Attempt:
    """One pod of the Kubernetes Job. radix-operator pkg/apis/batch/status.go setPodStatusByPodLastContainerStatus
    reports it by its container: Pending (waiting, reason ContainerCreating), Running, Succeeded (Completed, 0),
    Failed (the termination's reason and exit code; "Out of memory." put before the message when OOMKilled)."""

    index: int
    name: str
    created: datetime  # pod created and started on the node: its activeDeadlineSeconds counts from here
    started: datetime  # container started
    ended: datetime  # container terminated
    exit_code: int
    reason: str
    message: str = ""
    counted: bool = True  # counts towards backoffLimit (a failurePolicy Ignore rule does not)


@dataclass
class Outcome:
    """The Kubernetes Job's final condition, copied by the operator into the batch job status (status.go
    buildBatchJobStatus: Phase, EndTime = the condition's LastTransitionTime, Reason, Message)."""

    phase: str
    ended: datetime
    reason: str = ""
    message: str = ""


@dataclass
class SimJob:
    batch: "SimBatch"
    job_name: str  # the batch job's own short name; the API's job name is f"{batch}-{job_name}"
    job_id: str
    request: dict[str, Any]
    attempts: list[Attempt]
    outcome: Optional[Outcome]
    k8s_start: datetime
    stop_requested: Optional[datetime] = None

    @property
    def name(self) -> str:
        return f"{self.batch.name}-{self.job_name}"


@dataclass
class SimBatch:
    name: str
    kind: str  # "job" (a single job) or "batch": radix-operator kube.RadixBatchTypeLabel values
    batch_id: str
    created: datetime
    jobs: list[SimJob] = field(default_factory=list)


class RadixStandIn:
    def __init__(
        self,
        *,
        component: str = "compute",
        app: str = "app",
        environment: str = "dev",
        clock: Optional[Callable[[], datetime]] = None,
        start_delay: float = 1.0,
        stop_seconds: float = 1.0,
        keep_finished: int = 10,
        backoff_base: float = 10.0,
        deadline_level: str = "pod",
    ):
        self.component = component
        self.namespace = f"{app}-{environment}"
        self._now = clock or shared_clock.now
        self.start_delay = start_delay
        self.stop_seconds = stop_seconds
        self.keep_finished = keep_finished
        self.backoff_base = backoff_base
        self.deadline_level = deadline_level
        self.stop_endpoint = True
        self.stuck_active = False
        self.fail_next_posts: list[tuple[int, str]] = []
        self.fail_next_deletes: list[tuple[int, str]] = []
        self.batches: dict[str, SimBatch] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.RLock()
        self._server = StandInServer(self.handle)

    # -- lifecycle
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

    @property
    def jobs(self) -> dict[str, SimJob]:
        """Single jobs by their API name (what the runner's handle holds)."""
        with self._lock:
            return {job.name: job for b in self.batches.values() if b.kind == "job" for job in b.jobs}

    # -- dispatch
    def handle(self, request: Request) -> Response:
        with self._lock:
            response = self._dispatch(request)
            self.requests.append((request.method, request.path, response.status))
            return response

    def _dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if not path.startswith(API + "/"):
            return Response(404, raw=b"404 page not found")
        parts = path[len(API) + 1 :].split("/")
        if parts[0] == "jobs":
            response = self._jobs_route(request.method, parts[1:], request)
        elif parts[0] == "batches":
            response = self._batches_route(request.method, parts[1:], request)
        else:
            response = None
        # gin answers an unknown route (or method) with its plain-text 404
        return response if response is not None else Response(404, raw=b"404 page not found")

    def _jobs_route(self, method: str, rest: list[str], request: Request) -> Optional[Response]:
        if not rest and method == "POST":
            return self._create_job(request)
        if not rest and method == "GET":
            now = self._now()
            return Response(200, [self._job_status(j, now) for b in self.batches.values() for j in b.jobs])
        if rest == ["stop"] and method == "POST":
            for batch in list(self.batches.values()):
                if batch.kind == "job" and self._stoppable(batch, self._now()):
                    self._request_stop(batch.jobs)
            return _ok("all jobs where successfully stopped")
        if len(rest) == 1 and method == "GET":
            return self._get_job(rest[0])
        if len(rest) == 1 and method == "DELETE":
            if self.fail_next_deletes:
                status, message = self.fail_next_deletes.pop(0)
                refused = _status(status, "TooManyRequests" if status == 429 else "InternalError", message)
                refused.headers["Retry-After"] = "7"
                return refused
            return self._delete_job(rest[0])
        if len(rest) == 2 and rest[1] == "stop" and method == "POST" and self.stop_endpoint:
            return self._stop_job(rest[0])
        return None

    def _batches_route(self, method: str, rest: list[str], request: Request) -> Optional[Response]:
        now = self._now()
        if not rest:
            if method == "POST":
                return self._create_batch(request)
            if method == "GET":
                return Response(200, [self._batch_status(b, now) for b in self.batches.values() if b.kind == "batch"])
            return None
        if rest == ["stop"] and method == "POST":
            for batch in list(self.batches.values()):
                if batch.kind == "batch" and self._stoppable(batch, now):
                    self._request_stop(batch.jobs)
            return _ok("batches successfully stopped")
        batch = self.batches.get(rest[0])
        if batch is None or batch.kind != "batch":
            return _status(404, "NotFound", f"radixbatches {rest[0]} not found")
        if len(rest) == 1:
            return self._one_batch(method, batch, now)
        if len(rest) == 2 and rest[1] == "stop" and method == "POST":
            if not self._stoppable(batch, now):
                return _status(400, "BadRequest", f"cannot stop the batch {batch.name} with the status Completed")
            self._request_stop(batch.jobs)
            return _ok(f"batch {batch.name} successfully stopped")
        if len(rest) in (3, 4) and rest[1] == "jobs":
            return self._batch_job(method, batch, rest[2], rest[3:] == ["stop"], now)
        return None

    def _one_batch(self, method: str, batch: SimBatch, now: datetime) -> Optional[Response]:
        if method == "GET":
            return Response(200, self._batch_status(batch, now))
        if method == "DELETE":
            del self.batches[batch.name]
            return _ok(f"batch {batch.name} successfully deleted")
        return None

    def _batch_job(self, method: str, batch: SimBatch, job_name: str, stop: bool, now: datetime) -> Optional[Response]:
        job = next((j for j in batch.jobs if job_name in (j.name, j.job_name)), None)
        if job is None:
            return _status(404, "NotFound", f"radixbatches.job {job_name} not found")
        if not stop and method == "GET":
            return Response(200, self._job_status(job, now))
        if stop and method == "POST":
            phase = self._view(job, now)["phase"]
            if phase in ("Succeeded", "Failed", "Stopped"):  # pkg/batch/batch.go stopJobsInBatch
                return _status(
                    400,
                    "BadRequest",
                    f"cannot stop the job {job_name} with the status {phase} in the batch {batch.name}",
                )
            self._request_stop([job])
            return _ok(f"job {job_name} in the batch {batch.name} successfully stopped")
        return None

    # -- create
    def _create_job(self, request: Request) -> Response:
        failed = self._refuse_post()
        if failed:
            return failed
        try:
            body = request.json() if request.body else {}
        except ValueError:
            body = None
        description = body if isinstance(body, dict) else None
        problem = self._invalid(description) if description is not None else "payload is invalid"
        if problem:  # controller.go CreateJob: a body json.Unmarshal rejects is NewInvalid("payload")
            return _status(422, "Invalid", problem)
        batch = self._new_batch("job", "")
        self._add_job(batch, description, {})
        self._prune("job")
        return Response(200, self._job_status(batch.jobs[0], self._now()))

    def _create_batch(self, request: Request) -> Response:
        failed = self._refuse_post()
        if failed:
            return failed
        try:
            body = request.json() if request.body else {}
        except ValueError:
            body = None
        descriptions = body.get("jobScheduleDescriptions") if isinstance(body, dict) else None
        defaults = (body or {}).get("defaultRadixJobComponentConfig") if isinstance(body, dict) else None
        if (
            not isinstance(descriptions, list)
            or not all(isinstance(d, dict) for d in descriptions)
            or (defaults is not None and not isinstance(defaults, dict))
        ):
            return _status(422, "Invalid", "BatchScheduleDescription is invalid")
        for description in descriptions:
            problem = self._invalid({**(defaults or {}), **description})
            if problem:
                return _status(422, "Invalid", problem)
        batch = self._new_batch("batch", str(body.get("batchId") or ""))
        for description in descriptions:
            self._add_job(batch, description, defaults or {})
        self._prune("batch")
        return Response(200, self._batch_status(batch, self._now()))

    def _refuse_post(self) -> Optional[Response]:
        if not self.fail_next_posts:
            return None
        status, message = self.fail_next_posts.pop(0)
        return _status(
            status, {400: "BadRequest", 404: "NotFound", 422: "Invalid"}.get(status, "InternalError"), message
        )

    @staticmethod
    def _invalid(description: dict[str, Any]) -> Optional[str]:
        """The fields a RadixBatch CRD rejects (radix-operator pkg/apis/radix/v1/radixbatchtypes.go kubebuilder
        markers; a payload that is not a string fails json.Unmarshal in controller.go: "payload is invalid")."""
        payload = description.get("payload")
        if payload is not None and not isinstance(payload, str):
            return "payload is invalid"
        limit = description.get("timeLimitSeconds")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            return (
                "payload is invalid"
                if not isinstance(limit, int)
                else "spec.jobs[0].timeLimitSeconds is invalid: should be greater than or equal to 1"
            )
        backoff = description.get("backoffLimit")
        if backoff is not None and (not isinstance(backoff, int) or isinstance(backoff, bool) or backoff < 0):
            return (
                "payload is invalid"
                if not isinstance(backoff, int)
                else "spec.jobs[0].backoffLimit is invalid: should be greater than or equal to 0"
            )
        return _invalid_policy(description.get("failurePolicy"))

    def _new_batch(self, kind: str, batch_id: str) -> SimBatch:
        # job-scheduler/internal/batch.go GenerateBatchName: batch-{component[:12] padded to 16}-{timestamp}-{8}
        now = self._now()
        part = self.component[:12]
        part += _rand(16 - len(part))
        name = f"batch-{part}-{now.strftime('%Y%m%d%H%M%S')}-{_rand(8)}"
        batch = SimBatch(name=name, kind=kind, batch_id=batch_id, created=now)
        self.batches[name] = batch
        return batch

    def _add_job(self, batch: SimBatch, description: dict[str, Any], defaults: dict[str, Any]) -> None:
        merged = {**defaults, **description}
        job = SimJob(
            batch=batch,
            job_name=_rand(8),
            job_id=str(merged.get("jobId") or ""),
            request=description,
            attempts=[],
            outcome=None,
            k8s_start=batch.created + timedelta(seconds=self.start_delay / 2),
        )
        self._plan(job, merged)
        batch.jobs.append(job)

    # -- the job's life, decided when it is created (a stop cuts it short)
    def _plan(self, job: SimJob, spec: dict[str, Any]) -> None:
        behaviour = Behaviour.from_payload(str(spec.get("payload") or ""))
        limit = spec.get("timeLimitSeconds")
        backoff_limit = spec.get("backoffLimit") or 0  # kubejob.go: backoffLimit defaults to 0
        rules = (spec.get("failurePolicy") or {}).get("rules") or []
        t, counted, failures = job.k8s_start, 0, 0
        deadline = job.k8s_start + timedelta(seconds=limit) if limit and self.deadline_level == "job" else None
        for index in range(MAX_ATTEMPTS):
            if deadline is not None and t >= deadline:  # no new pod once the Job's deadline has passed
                job.outcome = Outcome(
                    "Failed", deadline, "DeadlineExceeded", "Job was active longer than specified deadline"
                )
                return
            attempt = self._attempt(job, index, t, behaviour, limit)
            job.attempts.append(attempt)
            if deadline is not None and attempt.ended > deadline:
                # job.md: "Once a Job reaches activeDeadlineSeconds, all of its running Pods are terminated and the
                # Job status will become type: Failed with reason: DeadlineExceeded"; it takes precedence over
                # backoffLimit. The message is the Job controller's (kubernetes pkg/controller/job).
                _terminate(attempt, deadline, behaviour.traps_sigterm)
                job.outcome = Outcome(
                    "Failed", deadline, "DeadlineExceeded", "Job was active longer than specified deadline"
                )
                return
            if attempt.exit_code == 0:
                job.outcome = Outcome("Succeeded", attempt.ended, "Completed", "")
                return
            action, rule = _policy_action(rules, attempt.exit_code)
            if action == "FailJob":  # tasks/job/pod-failure-policy.md: reason PodFailurePolicy, this message
                job.outcome = Outcome(
                    "Failed",
                    attempt.ended,
                    "PodFailurePolicy",
                    f"Container {self.component} for pod {self.namespace}/{attempt.name} failed "
                    f"with exit code {attempt.exit_code} matching FailJob rule at index {rule}",
                )
                return
            attempt.counted = action != "Ignore"  # "Ignore: the counter towards .backoffLimit is not incremented"
            counted += attempt.counted
            if counted > backoff_limit:
                # kubernetes pkg/controller/job/job_controller_test.go: JobReasonBackoffLimitExceeded with this message
                job.outcome = Outcome(
                    "Failed", attempt.ended, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
                return
            failures += 1
            delay = min(self.backoff_base * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
            t = attempt.ended + timedelta(seconds=delay)

    def _attempt(
        self, job: SimJob, index: int, created: datetime, behaviour: Behaviour, limit: Optional[int]
    ) -> Attempt:
        pod = f"{job.name}-{_rand(5)}"
        started = created + timedelta(seconds=self.start_delay / 2)  # the image pull
        ended = started + timedelta(seconds=behaviour.sleep)
        code = behaviour.exit_codes[min(index, len(behaviour.exit_codes) - 1)]
        reason, message = ("Completed", "") if code == 0 else ("Error", "")
        if behaviour.oom:  # status.go extendMessage: "Out of memory." for a container OOMKilled
            code, reason, message = 137, "OOMKilled", "Out of memory."
        attempt = Attempt(index, pod, created, started, ended, code, reason, message)
        if self.deadline_level == "pod" and limit and created + timedelta(seconds=limit) < ended:
            # radix-operator pkg/apis/batch/kubejob.go puts timeLimitSeconds on the pod template
            # (PodSpec.ActiveDeadlineSeconds); radix-config: SIGTERM at the limit, SIGKILL 30 s later. The
            # operator reports the pod by its container's termination, so the pod's own "DeadlineExceeded" is
            # not visible: exit code 143 (the job handled SIGTERM) or 137, reason Error.
            _terminate(attempt, created + timedelta(seconds=limit), behaviour.traps_sigterm)
        return attempt

    # -- what the scheduler shows at `now`
    def _stopped_at(self, job: SimJob) -> Optional[datetime]:
        if job.stop_requested is None:
            return None
        if job.outcome is not None and job.outcome.ended <= job.stop_requested:
            return None  # it had ended: stopJobsInBatch refuses, nothing changes
        return job.stop_requested + timedelta(seconds=self.stop_seconds)

    def _view(self, job: SimJob, now: datetime) -> dict[str, Any]:
        """`phase`: the operator's (status.go buildBatchJobStatus, with times and pods); `status`: what the API shows
        (pkg/internal/job_status.go GetScheduledJobStatus)."""
        stopped = self._stopped_at(job)
        frozen = min(now, job.stop_requested) if stopped is not None else now
        pods = [self._pod_phase(a, frozen) for a in job.attempts if a.created <= frozen]
        if self.stuck_active:  # a replica that never becomes ready
            pods = [(job.attempts[0], "Pending", False)] if job.k8s_start <= now else []
        view: dict[str, Any] = {
            "pods": pods,
            "ended": None,
            "message": "",
            "phase": "Waiting",
            "started": job.k8s_start if job.k8s_start <= now else None,
        }
        outcome = job.outcome
        if stopped is not None and now >= stopped:
            # status.go: a stop request -> phase Stopped, EndTime now; Pending/Running pods show Stopped
            view.update(
                phase="Stopped",
                ended=stopped,
                pods=[(a, "Stopped" if p in ("Pending", "Running") else p, up) for a, p, up in pods],
            )
        elif outcome is not None and outcome.ended <= now and not self.stuck_active:
            view.update(phase=outcome.phase, ended=outcome.ended, message=outcome.message)
        elif any(p == "Running" for _, p, _ in pods):
            view["phase"] = "Running"  # Job active with a ready pod
        elif pods:
            # Job active, pod not ready; between attempts the phase stays what it was (a failed pod had run)
            view["phase"] = "Active" if pods[-1][1] == "Pending" else "Running"
        status = view["phase"]
        if stopped is not None and status in ("Waiting", "Active", "Running"):
            status = "Stopping"
        elif pods and all(p == "Failed" for _, p, _ in view["pods"]):
            status = "Failed"  # every pod so far failed: also while the Job is still active, about to retry
        view["status"] = status
        return view

    @staticmethod
    def _pod_phase(attempt: Attempt, now: datetime) -> tuple[Attempt, str, bool]:
        """(attempt, phase, whether its container has started)."""
        if now < attempt.started:
            return attempt, "Pending", False
        if now < attempt.ended:
            return attempt, "Running", True
        return attempt, "Succeeded" if attempt.exit_code == 0 else "Failed", True

    def _job_status(self, job: SimJob, now: datetime) -> dict[str, Any]:
        """models/v1/job_status.go JobStatus as Go's encoding/json writes it: `created`, `started`, `ended`,
        `updated` without omitempty (null), `DeploymentName` without a json tag, the rest omitempty."""
        view = self._view(job, now)
        body: dict[str, Any] = {}
        if job.job_id:
            body["jobId"] = job.job_id
        if job.batch.kind == "batch":
            body["batchName"] = job.batch.name
        failed = sum(1 for a, p, _ in view["pods"] if p == "Failed" and a.counted)
        body.update(
            {
                "name": job.name,
                "created": _rfc3339(job.k8s_start if view["pods"] else None),
                "started": _rfc3339(view["started"] if view["pods"] else None),
                "ended": _rfc3339(view["ended"]),
                "status": view["status"],
            }
        )
        if view["message"]:
            body["message"] = view["message"]
        body["updated"] = None
        if failed:
            body["failed"] = failed
        if view["pods"]:
            body["podStatuses"] = [self._pod_status(job, a, p, up) for a, p, up in view["pods"]]
        body["DeploymentName"] = ""
        return body

    def _pod_status(self, job: SimJob, attempt: Attempt, phase: str, started: bool) -> dict[str, Any]:
        """models/v1/job_status.go PodStatus via pkg/internal/pod_status.go: `created` is the batch's creation time
        (GetPodStatusByRadixBatchJobPodStatus uses radixBatch.GetCreationTimestamp()), `exitCode` always present
        (no omitempty: 0 until the container terminates), `statusMessage` and `reason` omitempty."""
        image = f"radixprod.azurecr.io/{self.namespace}-{self.component}:{job.request.get('imageTagName') or 'abcde'}"
        pod: dict[str, Any] = {"name": attempt.name, "created": _rfc3339(job.batch.created)}
        if started:
            pod["startTime"] = _rfc3339(attempt.started)
        if phase in ("Succeeded", "Failed"):
            pod["endTime"] = _rfc3339(attempt.ended)
        if started:
            pod["containerStarted"] = pod["startTime"]
        pod["replicaStatus"] = {"status": phase}
        if phase == "Failed" and attempt.message:
            pod["statusMessage"] = attempt.message
        pod["image"] = image
        if attempt.index:
            pod["podIndex"] = attempt.index
        pod["exitCode"] = attempt.exit_code if phase in ("Succeeded", "Failed") else 0
        reason = {"Pending": "ContainerCreating", "Succeeded": attempt.reason, "Failed": attempt.reason}.get(phase)
        if reason:
            pod["reason"] = reason
        return pod

    def _batch_status(self, batch: SimBatch, now: datetime) -> dict[str, Any]:
        """pkg/batch/batch.go GetRadixBatchStatus: status from the batch condition (status.go syncStatus: Waiting
        when all jobs wait, Completed when all are done, else Active), started/ended its Active/Completion times."""
        views = [self._view(j, now) for j in batch.jobs]
        done = [v["ended"] for v in views if v["phase"] in ("Succeeded", "Failed", "Stopped")]
        if views and len(done) == len(views):
            condition, ended = "Completed", max(done)
        elif views and all(v["phase"] == "Waiting" for v in views):
            condition, ended = "Waiting", None
        else:
            condition, ended = "Active", None
        started = min((v["started"] for v in views if v["started"]), default=None)
        body: dict[str, Any] = {"name": batch.name}
        if batch.kind == "batch" and batch.batch_id:
            body["batchId"] = batch.batch_id
        body.update(
            {
                "created": _rfc3339(batch.created),
                "started": _rfc3339(started if condition != "Waiting" else None),
                "ended": _rfc3339(ended),
                "status": condition,
                "updated": None,
                "jobStatuses": [self._job_status(j, now) for j in batch.jobs],
                "batchType": batch.kind,
                "DeploymentName": f"{self.namespace}-deployment",
            }
        )
        return body

    # -- single jobs by name (job_handler.go; a job name is "{batchName}-{jobName}")
    def _find(self, name: str) -> tuple[Optional[SimBatch], Optional[SimJob], str]:
        """internal/batch.go ParseBatchAndJobNameFromScheduledJobName: the batch name is all but the last part."""
        batch_name = name.rsplit("-", 1)[0] if "-" in name else ""
        batch = self.batches.get(batch_name)
        job = next((j for j in batch.jobs if j.name == name), None) if batch else None
        return batch, job, batch_name

    def _get_job(self, name: str) -> Response:
        if "-" not in name:
            return _status(500, "InternalError", f"job {name} is not a valid job name")
        batch, job, batch_name = self._find(name)
        if batch is None:
            return _status(404, "NotFound", f"radixbatches {batch_name} not found")
        if job is None:
            return _status(500, "InternalError", "not found")  # handlers/internal/job.go GetBatchJobStatus
        return Response(200, self._job_status(job, self._now()))

    def _delete_job(self, name: str) -> Response:
        if "-" not in name:
            return _status(422, "Invalid", f"{name} is invalid: is not a valid job name")
        batch, job, _ = self._find(name)
        if batch is None or job is None:
            return _status(404, "NotFound", f"batch job {name} not found")
        if batch.kind != "job":
            return _status(422, "Invalid", f"{name} is invalid: not a single job")
        del self.batches[batch.name]
        return _ok(f"job {name} successfully deleted")

    def _stop_job(self, name: str) -> Response:
        if "-" not in name:
            return _status(500, "InternalError", "stop of this job is not supported")
        batch, job, batch_name = self._find(name)
        if batch is None:
            return _status(404, "NotFound", f"radixbatches {batch_name} not found")
        if job is None:
            return _status(404, "NotFound", f"radixbatches.job {name.rsplit('-', 1)[1]} not found")
        now = self._now()
        if not self._stoppable(batch, now):
            # pkg/batch/batch.go stopJobsInBatches: a batch whose condition is Completed cannot be stopped
            return _status(400, "BadRequest", f"cannot stop the job {batch.name} with the status Completed")
        self._request_stop([job])
        return _ok(f"job {name} was successfully stopped")

    def _stoppable(self, batch: SimBatch, now: datetime) -> bool:
        """batch.go isBatchStoppable: condition "", Waiting or Active (not Completed)."""
        return self._batch_status(batch, now)["status"] != "Completed"

    def _request_stop(self, jobs: list[SimJob]) -> None:
        now = self._now()
        for job in jobs:
            phase = self._view(job, now)["phase"]
            if job.stop_requested is None and phase not in ("Succeeded", "Failed", "Stopped"):
                job.stop_requested = now

    def _prune(self, kind: str) -> None:
        """radix-public-site docs/guides/jobs (configure-jobs): "Maximum 10 single completed jobs remains in the
        history of a job component ... The same rule is for batches"."""
        now = self._now()
        finished = [
            b for b in self.batches.values() if b.kind == kind and self._batch_status(b, now)["status"] == "Completed"
        ]
        finished.sort(key=lambda b: b.created)
        for batch in finished[: max(0, len(finished) - self.keep_finished)]:
            self.batches.pop(batch.name, None)


def _terminate(attempt: Attempt, at: datetime, traps_sigterm: bool) -> None:
    """Kubernetes ends the container: SIGTERM at `at`, SIGKILL after the grace period (radix-config
    timeLimitSeconds). A job that handles SIGTERM exits 143 at once; one that ignores it and would still be running
    is killed (137); one that finishes within the grace period ends as it would have."""
    if traps_sigterm:
        attempt.ended, attempt.exit_code, attempt.reason, attempt.message = max(at, attempt.started), 143, "Error", ""
    elif at + timedelta(seconds=GRACE_SECONDS) < attempt.ended:
        attempt.ended = max(at + timedelta(seconds=GRACE_SECONDS), attempt.started)
        attempt.exit_code, attempt.reason, attempt.message = 137, "Error", ""


def _policy_action(rules: list[dict[str, Any]], code: int) -> tuple[str, Optional[int]]:
    """pod-failure-policy.md / failurepolicy.go: rules in order, the first whose onExitCodes matches decides;
    none matching is the default (Count)."""
    for index, rule in enumerate(rules):
        on = rule.get("onExitCodes") or {}
        inside = code in (on.get("values") or [])
        if (on.get("operator") == "In" and inside) or (on.get("operator") == "NotIn" and not inside):
            return str(rule.get("action")), index
    return "Count", None


def _invalid_policy(policy: Any) -> Optional[str]:
    """radixapptypes.go RadixJobComponentFailurePolicy: rules <= 20; action FailJob|Ignore|Count; operator
    In|NotIn; 1..255 values, each >= 0, a set. (Kubernetes' own rule that In may not list 0 is checked when the
    operator creates the Job, after the scheduler answered: not modelled.)"""
    if policy is None:
        return None
    field_name = "spec.jobs[0].failurePolicy"
    rules = policy.get("rules") if isinstance(policy, dict) else None
    if not isinstance(rules, list):
        return "payload is invalid"
    if len(rules) > 20:
        return f"{field_name}.rules is invalid: must have at most 20 items"
    for index, rule in enumerate(rules):
        on = rule.get("onExitCodes") if isinstance(rule, dict) else None
        where = f"{field_name}.rules[{index}]"
        if not isinstance(on, dict) or rule.get("action") not in ("FailJob", "Ignore", "Count"):
            return f'{where}.action is invalid: supported values: "FailJob", "Ignore", "Count"'
        values = on.get("values")
        if on.get("operator") not in ("In", "NotIn"):
            return f'{where}.onExitCodes.operator is invalid: supported values: "In", "NotIn"'
        if (
            not isinstance(values, list)
            or not 1 <= len(values) <= 255
            or not all(isinstance(v, int) and 0 <= v <= INT32_MAX for v in values)
            or len(set(values)) != len(values)
        ):
            return f"{where}.onExitCodes.values is invalid"
    return None


JOB_NAME = re.compile(r"^batch-[a-z0-9]{16}-\d{14}-[a-z0-9]{8}-[a-z0-9]{8}$")
