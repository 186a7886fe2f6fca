"""A worked example of a third-party runner, loaded without touching the core.

Load it with the app setting `JOB_RUNNER_MODULES=examples.third_party_runner` (a comma-separated list of
importable modules), or ship it in a distribution with an entry point:

    [project.entry-points."dm_job.runners"]
    echo = "my_package.echo_runner"

A job uses it with `"runner": {"type": "dmss://Example/Blueprints/Echo", "message": "hello", "seconds": 2}`:
it "runs" for `seconds` on the app clock, logs `message`, and returns it as the result. All its state is in the
handle (JSON, no secrets), so any instance of the app can carry on polling after a restart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runners.base import ConfigError, JobSpec, Runner, RunnerStatus
from shared.platform import clock
from shared.jobs.status import JobStatus


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    message: str = Field(min_length=1)
    seconds: float = Field(default=1.0, ge=0, le=3600)


class EchoRunner(Runner):
    type_names = ("dmss://Example/Blueprints/Echo",)
    local = False  # runs nothing on the host: allowed in the cloud

    def validate(self, config: dict[str, Any]) -> None:
        try:
            EchoConfig.model_validate(config)
        except ValidationError as error:
            raise ConfigError(
                "Echo runner: "
                + "; ".join(f"runner.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            ) from None

    def start(self, job: JobSpec) -> dict[str, Any]:
        config = EchoConfig.model_validate(job.config)
        return {
            "uid": job.uid,
            "message": config.message,
            "until": clock.now().timestamp() + config.seconds,
            "stopped": False,
        }

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        if clock.now().timestamp() < handle["until"]:
            return RunnerStatus(JobStatus.RUNNING, log=["echoing..."])
        return RunnerStatus(JobStatus.COMPLETED, log=[handle["message"]], exit_code=0, message="echoed")

    def stop(self, handle: dict[str, Any]) -> str:
        return "nothing to stop: an echo ends by itself"

    def result(self, handle: dict[str, Any]) -> str | None:
        return handle["message"]

    def cleanup(self, handle: dict[str, Any]) -> None:
        pass


RUNNERS = [EchoRunner]
