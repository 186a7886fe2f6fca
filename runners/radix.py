"""Radix runner: a job on a Radix job scheduler (Equinor's PaaS), one scheduler per job component.

Config (`dmss://WorkflowDS/Blueprints/Radix`): `jobName` (required: the job component, also the scheduler's host
name), `schedulerPort` (required, a string), `imageTagName` (optional). The scheduler URL comes from the
RADIX_SCHEDULER_URL_TEMPLATE setting (default `http://{jobName}:{schedulerPort}`).

start:  POST {scheduler}/api/v1/jobs {"payload": JSON of the environment, "jobId": uid,
        "timeLimitSeconds": time limit, "imageTagName"?}; the scheduler mounts the payload as a file in the job.
status: GET {scheduler}/api/v1/jobs/{name}:
        Running -> running; Succeeded/Completed -> completed; Failed/Stopped/DeadlineExceeded -> failed (the message
        says which); Waiting/Active -> starting; Stopping -> running (not final: the replica still exists; the
        next poll sees Stopped, i.e. failed) with message "stopping"; a job the scheduler no longer knows (it keeps
        only the last 10 finished jobs) -> failed, "outcome unknown".
stop:   POST .../jobs/{name}/stop, falling back to DELETE .../jobs/{name} on 404/405 (older schedulers).
cleanup: DELETE .../jobs/{name} (404 is fine).
logs/result: the scheduler API has neither; logs are the scheduler's status message, result is None (Radix jobs
        report through DMSS and the progress PUT).
Scheduler errors {"status", "message", "reason", "code"} are reported with their message; 5xx and connection
errors at start are RetryLater.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Optional
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.jobs.status import JobStatus
from shared.platform import settings

from .base import JobSpec, RetryLater, Runner, RunnerError, RunnerStatus
from .config import parse_config

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
RETRY_SECONDS = 30.0

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


class RadixConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    jobName: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    schedulerPort: str = Field(min_length=1)
    imageTagName: Optional[str] = None
    environmentVariables: list[str] = Field(default_factory=list)

    @field_validator("schedulerPort", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not (value.isdigit() and 0 < int(value) < 65536):
            raise ValueError("schedulerPort must be a port number (1-65535) given as a string")
        return value

    @field_validator("environmentVariables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return [] if value is None else value


def map_radix_status(job: dict[str, Any]) -> dict[str, Any]:
    """A scheduler job status body -> RunnerStatus fields."""
    raw = str(job.get("status") or "")
    state = STATE_MAP.get(raw.lower(), JobStatus.UNKNOWN)
    message = str(job.get("message") or "")
    exit_code = None
    for pod in job.get("podStatuses") or []:
        if pod.get("exitCode") is not None:
            exit_code = pod.get("exitCode")
        if not message and pod.get("message"):
            message = str(pod["message"])
    if raw.lower() == "stopping":
        text = "stopping"
    elif state == JobStatus.FAILED:
        text = {"stopped": "stopped", "deadlineexceeded": "time limit exceeded (DeadlineExceeded)"}.get(
            raw.lower(), "failed")
        if exit_code is not None and raw.lower() == "failed":
            text += f" with exit code {exit_code}"
    else:
        text = raw.lower() or "unknown"
    if message:
        text += f": {message}"
    return {"state": state, "message": f"Radix job {text}"[:1000], "exit_code": exit_code}


def _scheduler_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        reason = body.get("reason") or ""
        return f"{body['message']}" + (f" ({reason}, HTTP {response.status_code})" if reason
                                      else f" (HTTP {response.status_code})")
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


class RadixRunner(Runner):
    type_names = ("dmss://WorkflowDS/Blueprints/Radix",)
    local = False

    def __init__(self, session: Optional[requests.Session] = None):
        self._session = session
        self._lock = threading.Lock()

    def _http(self) -> requests.Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = requests.Session()
                    session.trust_env = False  # a scheduler is inside the cluster: never through a proxy
                    self._session = session
        return self._session

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return self._http().request(method, url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs)

    @staticmethod
    def scheduler_url(cfg: RadixConfig) -> str:
        template = settings.get("RADIX_SCHEDULER_URL_TEMPLATE")
        try:
            return template.format(jobName=cfg.jobName, schedulerPort=cfg.schedulerPort).rstrip("/")
        except (KeyError, IndexError, ValueError) as error:
            raise RunnerError(f"RADIX_SCHEDULER_URL_TEMPLATE is invalid ({type(error).__name__}): use "
                              "{jobName} and {schedulerPort}") from None

    def validate(self, config: dict[str, Any]) -> None:
        parse_config(RadixConfig, config)

    def start(self, job: JobSpec) -> dict[str, Any]:
        cfg: RadixConfig = parse_config(RadixConfig, job.config)
        base = self.scheduler_url(cfg)
        body: dict[str, Any] = {
            "payload": json.dumps(job.environment),
            "jobId": job.uid,
            "timeLimitSeconds": int(job.time_limit_seconds),
        }
        if cfg.imageTagName:
            body["imageTagName"] = cfg.imageTagName
        try:
            response = self._request("POST", f"{base}/api/v1/jobs", json=body)
        except requests.RequestException as error:
            raise RetryLater(f"Radix job scheduler {cfg.jobName}:{cfg.schedulerPort} not reachable "
                             f"({type(error).__name__}); retrying in {RETRY_SECONDS:g} s", RETRY_SECONDS) from None
        if response.status_code >= 500 or response.status_code == 429:
            wait = _retry_after(response)
            raise RetryLater(f"Radix job scheduler answered: {_scheduler_error(response)}; retrying in {wait:g} s",
                             wait)
        if response.status_code >= 300:
            raise RunnerError(f"Radix job scheduler refused the job: {_scheduler_error(response)}")
        try:
            name = response.json()["name"]
        except (ValueError, KeyError, TypeError):
            raise RunnerError("Radix job scheduler answered without a job name") from None
        return {"scheduler": base, "name": name, "jobName": cfg.jobName}

    def _job_url(self, handle: dict[str, Any]) -> str:
        return f"{handle['scheduler']}/api/v1/jobs/{quote(handle['name'], safe='')}"

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        try:
            response = self._request("GET", self._job_url(handle))
        except requests.RequestException as error:
            raise RetryLater(f"Radix job scheduler not reachable ({type(error).__name__}); retrying in "
                             f"{RETRY_SECONDS:g} s", RETRY_SECONDS) from None
        if response.status_code == 404:
            return RunnerStatus(JobStatus.FAILED, message=f"Radix job {handle['name']} is no longer known to its "
                                "scheduler (it keeps only the last 10 finished jobs): outcome unknown")
        if response.status_code >= 500 or response.status_code == 429:
            wait = _retry_after(response)
            raise RetryLater(f"Radix job scheduler answered: {_scheduler_error(response)}; retrying in {wait:g} s",
                             wait)
        if response.status_code >= 300:
            raise RunnerError(f"Radix job scheduler: {_scheduler_error(response)}")
        fields = map_radix_status(response.json())
        return RunnerStatus(log=[fields["message"]], **fields)

    def stop(self, handle: dict[str, Any]) -> str:
        url = self._job_url(handle)
        try:
            response = self._request("POST", f"{url}/stop")
            if response.status_code in (404, 405):
                response = self._request("DELETE", url)
                if response.status_code == 404:
                    return f"Radix job {handle['name']} already gone"
                verb = "deleted"
            else:
                verb = "stopping"
        except requests.RequestException as error:
            raise RetryLater(f"Radix job scheduler not reachable ({type(error).__name__}); retrying in "
                             f"{RETRY_SECONDS:g} s", RETRY_SECONDS) from None
        if response.status_code >= 300:
            if response.status_code >= 500:
                raise RetryLater(f"Radix job scheduler answered: {_scheduler_error(response)}", _retry_after(response))
            if response.status_code in (400, 409):  # "not running": stopping an ended job is fine
                current = self.status(handle)
                if current.finished:
                    return f"Radix job {handle['name']} had already ended"
            raise RunnerError(f"Radix job scheduler refused to stop the job: {_scheduler_error(response)}")
        return f"Radix job {handle['name']} {verb}"

    def logs(self, handle: dict[str, Any]) -> str:
        try:
            return "\n".join(self.status(handle).log)
        except RunnerError:
            return ""

    def result(self, handle: dict[str, Any]) -> str | None:
        return None

    def cleanup(self, handle: dict[str, Any]) -> None:
        try:
            response = self._request("DELETE", self._job_url(handle))
        except requests.RequestException as error:
            raise RetryLater(f"Radix job scheduler not reachable ({type(error).__name__}); retrying in "
                             f"{RETRY_SECONDS:g} s", RETRY_SECONDS) from None
        if response.status_code in (200, 202, 204, 404):
            return
        if response.status_code >= 500:
            raise RetryLater(f"Radix job scheduler answered: {_scheduler_error(response)}", _retry_after(response))
        raise RunnerError(f"Radix job scheduler refused to delete the job: {_scheduler_error(response)}")


def _retry_after(response: requests.Response) -> float:
    """Retry-After in seconds (delta-seconds only; HTTP-dates fall back to the default), 1 s .. 1 h."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return RETRY_SECONDS
    return min(max(seconds, 1.0), 3600.0)


RUNNERS = [RadixRunner]
