"""In-process simulated runner: a job that "runs" for a while on the app's clock and ends as told.

Like dramatiq's StubBroker, it lets tests and benchmarks exercise the whole lifecycle (orchestration, polls,
time limits, schedules) without processes or clouds, and with a replaced clock a 24-hour job takes seconds.
Its state is all in the handle (start time, duration, outcome), so it survives a host restart like a real
runner; only stops, and the handles of the jobs it started (a repeated start answers the same handle, as the
other runners do), are remembered in memory. Local-only, as it is no use in production.

Config: `durationSeconds` (default 1), `exitCode` (default 0), `result` (text), `logLines` (lines per
elapsed tenth of the run, default 1), `progress` (report progress, a fraction 0..1, default true).
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.platform import clock
from shared.jobs.models import BLUEPRINTS
from shared.jobs.status import JobStatus

from .base import ConfigError, JobSpec, Runner, RunnerStatus

TYPE = BLUEPRINTS + "Simulated"


class SimulatedConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    durationSeconds: float = Field(default=1.0, ge=0)
    exitCode: int = 0
    result: str | None = None
    logLines: int = Field(default=1, ge=0)
    progress: bool = True


class SimulatedRunner(Runner):
    type_names = (TYPE,)
    local = True

    def __init__(self) -> None:
        self._stopped: set[str] = set()
        self._cleaned: set[str] = set()
        self._started: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.polls = 0  # benchmarks read it

    def validate(self, config: dict[str, Any]) -> None:
        try:
            SimulatedConfig.model_validate(config)
        except ValidationError as error:
            raise ConfigError(f"invalid simulated runner: {error.errors()[0]['msg']}") from error

    def start(self, job: JobSpec) -> dict[str, Any]:
        config = SimulatedConfig.model_validate(job.config)
        with self._lock:  # keyed by run_id: each attempt of a retried job is a run of its own
            if job.run_id not in self._started:
                self._started[job.run_id] = {
                    "uid": job.run_id,
                    "startedAt": clock.now().timestamp(),
                    **config.model_dump(include={"durationSeconds", "exitCode", "result", "logLines", "progress"}),
                }
            return dict(self._started[job.run_id])

    def find(self, job: JobSpec) -> dict[str, Any] | None:
        with self._lock:
            handle = self._started.get(job.run_id)
        return dict(handle) if handle is not None else None

    def launches(self, uid: str) -> int:
        """How many times a job was launched here (0 or 1): tests count runs with it."""
        with self._lock:
            return int(uid in self._started)

    def _elapsed(self, handle: dict[str, Any]) -> float:
        return clock.now().timestamp() - handle["startedAt"]

    def _log(self, handle: dict[str, Any], fraction: float) -> list[str]:
        steps = min(10, int(fraction * 10))
        return [f"step {i + 1}/10" for i in range(steps) for _ in range(handle["logLines"])]

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        with self._lock:
            self.polls += 1
            stopped = handle["uid"] in self._stopped
        duration = handle["durationSeconds"]
        fraction = 1.0 if duration == 0 else min(1.0, self._elapsed(handle) / duration)
        if stopped:
            return RunnerStatus(JobStatus.FAILED, log=self._log(handle, fraction), message="stopped")
        if fraction < 1.0:
            return RunnerStatus(
                JobStatus.RUNNING,
                log=self._log(handle, fraction),
                percentage=round(fraction, 3) if handle["progress"] else None,
            )
        code = handle["exitCode"]
        state = JobStatus.COMPLETED if code == 0 else JobStatus.FAILED
        message = "exit code 0" if code == 0 else f"the job failed with exit code {code}"
        return RunnerStatus(state, log=self._log(handle, 1.0), percentage=1.0, exit_code=code, message=message)

    def stop(self, handle: dict[str, Any]) -> str:
        with self._lock:
            self._stopped.add(handle["uid"])
        return "stopped"

    def result(self, handle: dict[str, Any]) -> str | None:
        return handle.get("result")

    def cleanup(self, handle: dict[str, Any]) -> None:
        with self._lock:
            self._cleaned.add(handle["uid"])
            self._stopped.discard(handle["uid"])
            self._started.pop(handle["uid"], None)

    def cleaned(self, uid: str) -> bool:
        with self._lock:
            return uid in self._cleaned


RUNNERS = [SimulatedRunner]
