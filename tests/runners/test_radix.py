"""Radix runner: request shape, status mapping, stop fallback, scheduler errors, against the stand-in."""
from __future__ import annotations

import json
import uuid

import pytest

from runners.base import ConfigError, JobSpec, RetryLater, RunnerError
from runners.radix import RadixRunner, map_radix_status
from shared.jobs.status import JobStatus

RADIX = "dmss://WorkflowDS/Blueprints/Radix"


def spec(radix, env=None, **extra):
    config = {"type": RADIX, "jobName": "compute", "schedulerPort": str(radix.port), **extra}
    return JobSpec(uid=str(uuid.uuid4()), config=config, environment=env or {"A": "1"}, time_limit_seconds=600)


@pytest.mark.parametrize("status,state,fragment", [
    ({"status": "Waiting"}, JobStatus.STARTING, "waiting"),
    ({"status": "Active"}, JobStatus.STARTING, "active"),
    ({"status": "Running"}, JobStatus.RUNNING, "running"),
    ({"status": "Stopping"}, JobStatus.RUNNING, "stopping"),
    ({"status": "Succeeded"}, JobStatus.COMPLETED, "succeeded"),
    ({"status": "Completed"}, JobStatus.COMPLETED, "completed"),
    ({"status": "Failed", "podStatuses": [{"exitCode": 2}]}, JobStatus.FAILED, "failed with exit code 2"),
    ({"status": "Stopped"}, JobStatus.FAILED, "stopped"),
    ({"status": "DeadlineExceeded", "message": "too long"}, JobStatus.FAILED, "time limit exceeded (DeadlineExceeded): too long"),
    ({"status": "Mystery"}, JobStatus.UNKNOWN, "mystery"),
])
def test_status_mapping(status, state, fragment):
    fields = map_radix_status(status)
    assert fields["state"] == state
    assert fragment in fields["message"]


@pytest.mark.parametrize("bad,fragment", [
    ({"jobName": None}, "runner.jobName"),
    ({"jobName": "Bad_Name"}, "runner.jobName"),
    ({"schedulerPort": "http"}, "schedulerPort must be a port number"),
    ({"schedulerPort": None}, "runner.schedulerPort"),
])
def test_validation(bad, fragment):
    config = {"type": RADIX, "jobName": "compute", "schedulerPort": "8080", **bad}
    with pytest.raises(ConfigError) as caught:
        RadixRunner().validate(config)
    assert fragment in str(caught.value)


def test_start_request(radix):
    job = spec(radix, env={"DMSS_TOKEN": "t", "JOB_DMSS_ID": "DS/$1"}, imageTagName="v2")
    handle = RadixRunner().start(job)
    sent = radix.jobs[handle["name"]].request
    assert sent == {"payload": json.dumps({"DMSS_TOKEN": "t", "JOB_DMSS_ID": "DS/$1"}), "jobId": job.uid,
                    "timeLimitSeconds": 600, "imageTagName": "v2"}
    assert handle == {"scheduler": radix.url, "name": handle["name"], "jobName": "compute"}
    assert "t" not in handle.values()


def test_scheduler_errors_carry_their_message(radix):
    radix.fail_next_posts = [(422, "imageTagName v9 is not a valid tag"), (500, "etcd unavailable")]
    runner = RadixRunner()
    with pytest.raises(RunnerError) as caught:
        runner.start(spec(radix))
    assert not isinstance(caught.value, RetryLater)
    assert str(caught.value) == ("Radix job scheduler refused the job: imageTagName v9 is not a valid tag "
                                 "(Invalid, HTTP 422)")
    with pytest.raises(RetryLater, match="etcd unavailable"):
        runner.start(spec(radix))


def test_unreachable_scheduler_is_retry_later(monkeypatch):
    monkeypatch.setenv("RADIX_SCHEDULER_URL_TEMPLATE", "http://127.0.0.1:{schedulerPort}")
    job = JobSpec(uid="u", config={"type": RADIX, "jobName": "compute", "schedulerPort": "9"}, environment={},
                  time_limit_seconds=60)
    with pytest.raises(RetryLater, match="not reachable"):
        RadixRunner().start(job)


def test_default_url_template(monkeypatch):
    monkeypatch.delenv("RADIX_SCHEDULER_URL_TEMPLATE", raising=False)
    from runners.radix import RadixConfig

    cfg = RadixConfig.model_validate({"type": RADIX, "jobName": "compute", "schedulerPort": 8000})
    assert RadixRunner.scheduler_url(cfg) == "http://compute:8000"


def test_stop_falls_back_to_delete_on_old_schedulers(radix, manual_clock):
    radix.stop_endpoint = False
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "100"}))
    manual_clock.advance(3)
    assert runner.stop(handle) == f"Radix job {handle['name']} deleted"
    assert ("POST", f"/api/v1/jobs/{handle['name']}/stop", 404) in radix.requests
    assert ("DELETE", f"/api/v1/jobs/{handle['name']}", 200) in radix.requests
    assert runner.stop(handle) == f"Radix job {handle['name']} already gone"
    status = runner.status(handle)
    assert status.state == JobStatus.FAILED and "no longer known" in status.message


def test_stopping_is_running_until_stopped(radix, manual_clock):
    radix.stop_seconds = 5
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "100"}))
    manual_clock.advance(3)
    runner.stop(handle)
    status = runner.status(handle)
    assert status.state == JobStatus.RUNNING and "stopping" in status.message
    manual_clock.advance(6)
    status = runner.status(handle)
    assert status.state == JobStatus.FAILED and "stopped" in status.message


def test_active_for_ever_stays_starting(radix, manual_clock):
    radix.stuck_active = True
    runner = RadixRunner()
    handle = runner.start(spec(radix))
    manual_clock.advance(600)
    assert runner.status(handle).state == JobStatus.STARTING
