"""Radix runner: a job on a Radix job scheduler (Equinor's PaaS), one scheduler per job component.

Config (`dmss://WorkflowDS/Blueprints/Radix`): `jobName` (required: the job component, also the scheduler's host
name), `schedulerPort` (required, a string), `imageTagName` (optional), and Radix's own retry settings, passed
through as given: `backoffLimit` (retries after a failed attempt, >= 0) and `failurePolicy`
(`{"rules": [{"action": "FailJob"|"Ignore"|"Count", "onExitCodes": {"operator": "In"|"NotIn", "values": [...]}}]}`,
Kubernetes' podFailurePolicy; the names are radix-job-scheduler's models/common/failurepolicy.go). The scheduler URL
comes from the RADIX_SCHEDULER_URL_TEMPLATE setting (default `http://{jobName}:{schedulerPort}`).

start:  POST {scheduler}/api/v1/jobs {"payload": JSON of the environment, "jobId": uid,
        "timeLimitSeconds": time limit, "imageTagName"?, "backoffLimit"?, "failurePolicy"?}; the scheduler
        mounts the payload as a file in the job. Radix enforces the time limit (per attempt).
status: GET {scheduler}/api/v1/jobs/{name}, read as the scheduler answers (see `map_radix_status`):
        Running -> running; Succeeded/Completed -> completed; Stopped -> failed ("stopped"); Waiting/Active ->
        starting; Stopping -> running ("stopping": the replica still exists); Failed -> failed, EXCEPT while
        `ended` is null: the scheduler reports Failed whenever every attempt so far has failed, also while
        Kubernetes is about to start the next one (backoffLimit > 0), so that is "retrying" (running). A failed
        job says why: time limit exceeded (with the limit), out of memory (OOMKilled), or the exit code of its
        last attempt; a job that never terminated a container (stopped, running) claims no exit code.
        A job the scheduler no longer knows (it keeps the last 10) -> failed, "outcome unknown".
        Idempotent: the scheduler does not keep jobIds unique, so `start` first lists the component's jobs
        (GET {scheduler}/api/v1/jobs) and, when a single job with jobId = uid exists (an earlier start whose
        answer was lost), answers its handle and posts nothing. Starts of one job in this process take turns.
        (Two hosts starting the same job at the same moment could still both post; the scheduler also forgets
        all but its last 10 finished jobs.)
stop:   POST .../jobs/{name}/stop, falling back to DELETE .../jobs/{name} on 404/405 (older schedulers).
cleanup: DELETE .../jobs/{name} (404 is fine). Stop and cleanup also delete any other job of the component with
        the same jobId (a duplicate such a race made).
logs/result: the scheduler API has neither; logs are the scheduler's status message, result is None (Radix jobs
        report through DMSS and the progress PUT).
Scheduler errors {"status", "message", "reason", "code"} are reported with their message; 5xx, 429 and connection
errors are RetryLater, on every call (cleanup included).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any, Literal, Optional
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.jobs.status import JobStatus
from shared.platform import settings

from .base import FailureReason, JobSpec, RetryLater, Runner, RunnerError, RunnerStatus, UidLocks, no_secrets_in_errors
from .config import parse_config

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
RETRY_SECONDS = 30.0
INT32_MAX = 2**31 - 1
KILLED_EXIT_CODES = (137, 143)  # SIGKILL, SIGTERM: how a container ends when Kubernetes kills it

# radix-job-scheduler models/v1/job_status.go, JobStatus.status: Running, Succeeded, Failed, Waiting, Stopping,
# Stopped, Active, Completed. "DeadlineExceeded" was one too until radix-job-scheduler 2edb1e6 (2024-07-09, "Add
# status rules ... Removed status DeadlineExceeded"); older schedulers may still send it.
STATE_MAP = {
    "running": JobStatus.RUNNING,
    "stopping": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "stopped": JobStatus.FAILED,
    "deadlineexceeded": JobStatus.FAILED,
    "waiting": JobStatus.STARTING,
    "active": JobStatus.STARTING,
}


# --- configuration -----------------------------------------------------------------------------------------


class OnExitCodes(BaseModel):
    """radix-job-scheduler models/common/failurepolicy.go FailurePolicyRuleOnExitCodes (CRD limits from
    radix-operator pkg/apis/radix/v1/radixapptypes.go: 1..255 values, each >= 0, a set)."""

    model_config = ConfigDict(extra="forbid")

    operator: Literal["In", "NotIn"]
    values: list[int] = Field(min_length=1, max_length=255)

    @field_validator("values")
    @classmethod
    def _values(cls, values: list[int]) -> list[int]:
        if any(v < 0 or v > INT32_MAX for v in values):
            raise ValueError("exit codes are integers from 0 to 2147483647")
        if len(set(values)) != len(values):
            raise ValueError("the list must not contain duplicates")
        return values

    @model_validator(mode="after")
    def _zero(self) -> "OnExitCodes":
        if self.operator == "In" and 0 in self.values:  # "Value '0' cannot be used for the In operator"
            raise ValueError("exit code 0 cannot be used with the In operator (a replica that exits 0 succeeded)")
        return self


class FailurePolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["FailJob", "Ignore", "Count"]
    onExitCodes: OnExitCodes


class FailurePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[FailurePolicyRule] = Field(max_length=20)


class RadixConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    jobName: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    schedulerPort: str = Field(min_length=1)
    imageTagName: Optional[str] = None
    backoffLimit: Optional[int] = Field(default=None, ge=0, le=INT32_MAX)
    failurePolicy: Optional[FailurePolicy] = None
    environmentVariables: list[str] = Field(default_factory=list)

    @field_validator("schedulerPort", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not (value.isdigit() and 0 < int(value) < 65536):
            raise ValueError("schedulerPort must be a port number (1-65535) given as a string")
        return value

    @field_validator("backoffLimit", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("backoffLimit must be a whole number of retries")
        return value

    @field_validator("environmentVariables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return [] if value is None else value


# --- reading the scheduler's job status --------------------------------------------------------------------


def _time(value: Any) -> Optional[datetime]:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's attempts, oldest first (`podIndex` is omitted for the first: Go's omitempty on 0)."""
    pods = [p for p in job.get("podStatuses") or [] if isinstance(p, dict)]
    return sorted(pods, key=lambda p: p.get("podIndex") or 0)


def _replica(pod: dict[str, Any]) -> str:
    return str((pod.get("replicaStatus") or {}).get("status") or "")


def _terminated(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempts whose container terminated. PodStatus.exitCode has no omitempty: it reads 0 until then."""
    return [p for p in pods if _replica(p) in ("Succeeded", "Failed")]


def _deadline_named(job: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """Radix or Kubernetes says a deadline ended it: an old scheduler's DeadlineExceeded status, the Job-level
    "Job was active longer than specified deadline", the pod-level "Pod was active on the node longer than the
    specified deadline" or reason DeadlineExceeded."""
    texts = [str(job.get("status") or ""), str(job.get("message") or "")]
    for pod in pods:
        texts += [str(pod.get("reason") or ""), str(pod.get("statusMessage") or "")]
    return any("deadline" in text.lower() for text in texts)


def _killed_at_limit(job: dict[str, Any], last: Optional[dict[str, Any]], limit: Optional[int]) -> bool:
    """Radix puts timeLimitSeconds on the pod (radix-operator pkg/apis/batch/kubejob.go: PodSpec
    ActiveDeadlineSeconds), and the operator reports the pod by its container's termination (reason Error, exit
    code 137 or 143), so a time-limit kill is usually recognisable only as: killed, after running the limit."""
    if last is None or limit is None or last.get("exitCode") not in KILLED_EXIT_CODES:
        return False
    if str(last.get("reason") or "") == "OOMKilled":
        return False
    started, ended = _time(job.get("started")), _time(job.get("ended"))
    return started is not None and ended is not None and (ended - started).total_seconds() >= limit


def _failure(job: dict[str, Any], pods: list[dict[str, Any]], limit: Optional[int]) -> dict[str, Any]:
    terminated = _terminated(pods)
    last = terminated[-1] if terminated else None
    code = last.get("exitCode") if last is not None else None
    attempts = f" after {len(pods)} attempts" if len(pods) > 1 else ""
    detail = "; ".join(
        t for t in (str(job.get("message") or ""), str((last or {}).get("statusMessage") or "").replace("\n", " ")) if t
    )
    reason = None
    if _deadline_named(job, pods) or _killed_at_limit(job, last, limit):
        reason = FailureReason.TIME_LIMIT
        text = "time limit exceeded" + (f" ({limit} s)" if limit else "")
        if code in KILLED_EXIT_CODES:
            text += f": killed with exit code {code}"
    elif last is not None and str(last.get("reason") or "") == "OOMKilled":
        reason = FailureReason.OUT_OF_MEMORY
        text = (
            f"ran out of memory (OOMKilled, exit code {code}){attempts}: raise the memory of the job "
            "component (resources.limits.memory)"
        )
    elif code is not None:
        text = f"failed with exit code {code}{attempts}"
    else:
        text = f"failed{attempts}"
    return {
        "state": JobStatus.FAILED,
        "message": f"Radix job {text}" + (f": {detail}" if detail else ""),
        "exit_code": code,
        "reason": reason,
    }


def _retrying(job: dict[str, Any], pods: list[dict[str, Any]], backoff_limit: Optional[int]) -> dict[str, Any]:
    terminated = _terminated(pods)
    last = terminated[-1] if terminated else {}
    reason = f" ({last['reason']})" if last.get("reason") else ""
    limit = f", backoffLimit {backoff_limit}" if backoff_limit is not None else ""
    text = (
        f"Radix job retrying: attempt {len(pods)} failed with exit code {last.get('exitCode')}{reason}; "
        f"Kubernetes starts the next attempt{limit}"
    )
    return {"state": JobStatus.RUNNING, "message": text[:1000], "exit_code": None}


def map_radix_status(
    job: dict[str, Any], time_limit: Optional[int] = None, backoff_limit: Optional[int] = None
) -> dict[str, Any]:
    """A scheduler job status body (radix-job-scheduler models/v1/job_status.go) -> RunnerStatus fields."""
    raw = str(job.get("status") or "")
    status = raw.lower()
    state = STATE_MAP.get(status, JobStatus.UNKNOWN)
    pods = _pods(job)
    if status == "failed" and not job.get("ended"):
        # pkg/internal/job_status.go GetScheduledJobStatus: Failed as soon as all pods so far failed, while the
        # Kubernetes Job is still active; `ended` is set only from the Job's Failed condition (radix-operator
        # pkg/apis/batch/status.go). Until then Kubernetes may start another attempt (backoffLimit).
        return _retrying(job, pods, backoff_limit)
    if state == JobStatus.FAILED and status != "stopped":
        fields = _failure(job, pods, time_limit)
        fields["message"] = fields["message"][:1000]
        return fields
    message = str(job.get("message") or "")
    if status == "stopped":
        text = "stopped"  # its pods show exitCode 0 without having exited: no exit code
    elif state == JobStatus.STARTING and _terminated(pods):  # an attempt failed and the next one is starting
        state, text = JobStatus.RUNNING, f"retrying: attempt {len(pods)} is {status}"
    elif state == JobStatus.RUNNING and len(pods) > 1 and status == "running":
        text = f"running (attempt {len(pods)})"
    else:
        text = status or "unknown"
    exit_code = None
    if state == JobStatus.COMPLETED:
        terminated = _terminated(pods)
        exit_code = terminated[-1].get("exitCode") if terminated else 0
    if message and state != JobStatus.COMPLETED:
        text += f": {message}"
    return {"state": state, "message": f"Radix job {text}"[:1000], "exit_code": exit_code}


def _scheduler_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        reason = body.get("reason") or ""
        return f"{body['message']}" + (
            f" ({reason}, HTTP {response.status_code})" if reason else f" (HTTP {response.status_code})"
        )
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


def _unreachable(error: Exception, where: str = "") -> RetryLater:
    return RetryLater(
        f"Radix job scheduler{where} not reachable ({type(error).__name__}); retrying in {RETRY_SECONDS:g} s",
        RETRY_SECONDS,
    )


def _transient(response: requests.Response) -> Optional[RetryLater]:
    if response.status_code >= 500 or response.status_code == 429:
        wait = _retry_after(response)
        return RetryLater(f"Radix job scheduler answered: {_scheduler_error(response)}; retrying in {wait:g} s", wait)
    return None


class RadixRunner(Runner):
    type_names = ("dmss://WorkflowDS/Blueprints/Radix",)
    local = False

    def __init__(self, session: Optional[requests.Session] = None):
        self._session = session
        self._lock = threading.Lock()
        self._starting = UidLocks()

    def _http(self) -> requests.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = requests.Session()
                    session.trust_env = False  # a scheduler is inside the cluster: never through a proxy
                    self._session = session
        return self._session

    def _request(self, method: str, url: str, where: str = "", **kwargs: Any) -> requests.Response:
        """One HTTP call; an unreachable scheduler is RetryLater."""
        try:
            return self._http().request(method, url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs)
        except requests.RequestException as error:
            raise _unreachable(error, where) from None

    @staticmethod
    def scheduler_url(cfg: RadixConfig) -> str:
        template = settings.get("RADIX_SCHEDULER_URL_TEMPLATE")
        try:
            return template.format(jobName=cfg.jobName, schedulerPort=cfg.schedulerPort).rstrip("/")
        except (KeyError, IndexError, ValueError) as error:
            raise RunnerError(
                f"RADIX_SCHEDULER_URL_TEMPLATE is invalid ({type(error).__name__}): use "
                "{jobName} and {schedulerPort}"
            ) from None

    def validate(self, config: dict[str, Any]) -> None:
        parse_config(RadixConfig, config)

    @staticmethod
    def _job_body(cfg: RadixConfig, job: JobSpec) -> dict[str, Any]:
        body: dict[str, Any] = {
            "payload": json.dumps(job.environment),
            "jobId": job.run_id,  # the uid, or <uid>-a<n> for attempt n of a retried job
            "timeLimitSeconds": int(job.time_limit_seconds),
        }
        if cfg.imageTagName:
            body["imageTagName"] = cfg.imageTagName
        if cfg.backoffLimit is not None:
            body["backoffLimit"] = cfg.backoffLimit
        if cfg.failurePolicy is not None:
            body["failurePolicy"] = cfg.failurePolicy.model_dump()
        return body

    @staticmethod
    def _handle(base: str, name: str, cfg: RadixConfig, job: JobSpec) -> dict[str, Any]:
        handle: dict[str, Any] = {
            "scheduler": base,
            "name": name,
            "jobName": cfg.jobName,
            "jobId": job.run_id,  # the uid, or <uid>-a<n> for attempt n of a retried job
            "timeLimitSeconds": int(job.time_limit_seconds),
        }
        if cfg.backoffLimit is not None:
            handle["backoffLimit"] = cfg.backoffLimit
        return handle

    def _jobs_with_id(self, base: str, job_id: str, where: str = "") -> list[dict[str, Any]]:
        """The component's single jobs whose jobId is `job_id`, oldest first. A scheduler that cannot list its
        jobs (404/405) gives an empty list."""
        response = self._request("GET", f"{base}/api/v1/jobs", where)
        retry = _transient(response)
        if retry:
            raise retry
        if response.status_code in (404, 405):
            return []
        if response.status_code >= 300:
            raise RunnerError(f"Radix job scheduler could not list its jobs: {_scheduler_error(response)}")
        try:
            jobs = response.json()
        except ValueError:
            raise RunnerError("Radix job scheduler answered a job list that is not JSON") from None
        found = (
            [
                j
                for j in jobs
                if isinstance(j, dict) and j.get("jobId") == job_id and not j.get("batchName") and j.get("name")
            ]
            if isinstance(jobs, list)
            else []
        )
        # oldest first; `created` stays null until the job has a pod, so those are the newest
        return sorted(found, key=lambda j: (j.get("created") is None, str(j.get("created") or ""), str(j["name"])))

    def find(self, job: JobSpec) -> dict[str, Any] | None:
        cfg: RadixConfig = parse_config(RadixConfig, job.config)
        base = self.scheduler_url(cfg)
        found = self._jobs_with_id(base, job.run_id, f" {cfg.jobName}:{cfg.schedulerPort}")
        return self._handle(base, found[0]["name"], cfg, job) if found else None

    def start(self, job: JobSpec) -> dict[str, Any]:
        with no_secrets_in_errors(job):
            return self._start(job)

    def _start(self, job: JobSpec) -> dict[str, Any]:
        cfg: RadixConfig = parse_config(RadixConfig, job.config)
        base = self.scheduler_url(cfg)
        where = f" {cfg.jobName}:{cfg.schedulerPort}"
        with self._starting.hold(job.uid):
            found = self._jobs_with_id(base, job.run_id, where)
            if found:  # posted before (a retried start, or one that died before its handle was stored)
                return self._handle(base, found[0]["name"], cfg, job)
            response = self._request("POST", f"{base}/api/v1/jobs", where, json=self._job_body(cfg, job))
        retry = _transient(response)
        if retry:
            raise retry
        if response.status_code >= 300:
            raise RunnerError(f"Radix job scheduler refused the job: {_scheduler_error(response)}")
        try:
            name = response.json()["name"]
        except (ValueError, KeyError, TypeError):
            raise RunnerError("Radix job scheduler answered without a job name") from None
        return self._handle(base, name, cfg, job)

    def _job_url(self, handle: dict[str, Any]) -> str:
        return f"{handle['scheduler']}/api/v1/jobs/{quote(handle['name'], safe='')}"

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        response = self._request("GET", self._job_url(handle))
        if response.status_code == 404:
            return RunnerStatus(
                JobStatus.FAILED,
                message=f"Radix job {handle['name']} is no longer known to its "
                "scheduler (it keeps only the last 10 finished jobs): outcome unknown",
            )
        retry = _transient(response)
        if retry:
            raise retry
        if response.status_code >= 300:
            raise RunnerError(f"Radix job scheduler: {_scheduler_error(response)}")
        try:
            body = response.json()
        except ValueError:
            raise RunnerError("Radix job scheduler answered a job status that is not JSON") from None
        fields = map_radix_status(
            body if isinstance(body, dict) else {}, handle.get("timeLimitSeconds"), handle.get("backoffLimit")
        )
        return RunnerStatus(log=[fields["message"]], **fields)

    def stop(self, handle: dict[str, Any]) -> str:
        message = self._stop_one(handle)
        self._delete_duplicates(handle)
        return message

    def _stop_one(self, handle: dict[str, Any]) -> str:
        url = self._job_url(handle)
        response = self._request("POST", f"{url}/stop")
        verb = "stopping"
        if response.status_code in (404, 405):  # an old scheduler without /stop, or a job already gone
            response = self._request("DELETE", url)
            if response.status_code == 404:
                return f"Radix job {handle['name']} already gone"
            verb = "deleted"
        if response.status_code < 300:
            return f"Radix job {handle['name']} {verb}"
        retry = _transient(response)
        if retry:
            raise retry
        if response.status_code in (400, 409):  # "cannot stop the job ... with the status Completed"
            if self.status(handle).finished:
                return f"Radix job {handle['name']} had already ended"
        raise RunnerError(f"Radix job scheduler refused to stop the job: {_scheduler_error(response)}")

    def _delete(self, handle: dict[str, Any], name: str) -> None:
        response = self._request("DELETE", self._job_url({**handle, "name": name}))
        if response.status_code in (200, 202, 204, 404):
            return
        retry = _transient(response)
        if retry:
            raise retry
        raise RunnerError(f"Radix job scheduler refused to delete the job: {_scheduler_error(response)}")

    def _delete_duplicates(self, handle: dict[str, Any]) -> None:
        """Delete the component's other jobs with this job's jobId (a start raced by another host's)."""
        if not handle.get("jobId"):
            return
        for job in self._jobs_with_id(handle["scheduler"], handle["jobId"]):
            if job["name"] != handle["name"]:
                self._delete(handle, job["name"])

    def logs(self, handle: dict[str, Any]) -> str:
        try:
            return "\n".join(self.status(handle).log)
        except RunnerError:
            return ""

    def result(self, handle: dict[str, Any]) -> str | None:
        return None

    def cleanup(self, handle: dict[str, Any]) -> None:
        self._delete(handle, handle["name"])
        self._delete_duplicates(handle)


def _retry_after(response: requests.Response) -> float:
    """Retry-After in seconds (delta-seconds only; HTTP-dates fall back to the default), 1 s .. 1 h."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return RETRY_SECONDS
    return min(max(seconds, 1.0), 3600.0)


RUNNERS = [RadixRunner]
