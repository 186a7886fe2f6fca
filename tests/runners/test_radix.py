"""Radix runner: request shape, status mapping, retries, time limits, OOM, stop, failure policy, scheduler errors,
against the stand-in written from radix-operator / radix-job-scheduler (tests/standins/radix.py)."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from runners.base import ConfigError, JobSpec, RetryLater, RunnerError
from runners.config import parse_config
from runners.radix import RadixConfig, RadixRunner, map_radix_status
from shared.jobs.status import JobStatus
from tests.standins.radix import JOB_NAME, RadixStandIn

RADIX = "dmss://WorkflowDS/Blueprints/Radix"


def spec(radix, env=None, time_limit=600, **extra):
    config = {"type": RADIX, "jobName": "compute", "schedulerPort": str(radix.port), **extra}
    return JobSpec(uid=str(uuid.uuid4()), config=config, environment=env or {"A": "1"}, time_limit_seconds=time_limit)


def scheduler_view(radix, handle):
    """What the scheduler itself answers for the job (to show what the runner is reading)."""
    return requests.get(f"{radix.url}/api/v1/jobs/{handle['name']}", timeout=5).json()


def run_until_final(runner, handle, clock, step=1.0, limit=600):
    seen = []
    for _ in range(int(limit / step)):
        status = runner.status(handle)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if status.finished:
            return status, seen
        clock.advance(step)
    pytest.fail(f"not finished: {seen}")


# --- mapping of the scheduler's answers (models/v1/job_status.go shapes) ------------------------------------


def pod(phase, exit_code=0, reason=None, message=None, index=0, start="2026-01-01T00:00:01Z", end=None):
    body = {"name": "p", "created": "2026-01-01T00:00:00Z", "replicaStatus": {"status": phase}, "exitCode": exit_code}
    if start:
        body["startTime"] = start
    if end:
        body["endTime"] = end
    if reason:
        body["reason"] = reason
    if message:
        body["statusMessage"] = message
    if index:
        body["podIndex"] = index
    return body


def job(status, pods=(), ended=None, message=None, started="2026-01-01T00:00:00Z"):
    body = {
        "name": "batch-x-y",
        "created": started,
        "started": started,
        "ended": ended,
        "status": status,
        "updated": None,
        "podStatuses": list(pods),
        "DeploymentName": "",
    }
    if message:
        body["message"] = message
    return body


ENDED = "2026-01-01T00:00:30Z"


@pytest.mark.parametrize(
    "body,state,message,exit_code",
    [
        (job("Waiting"), JobStatus.STARTING, "Radix job waiting", None),
        (
            job("Active", [pod("Pending", reason="ContainerCreating", start=None)]),
            JobStatus.STARTING,
            "Radix job active",
            None,
        ),
        # PodStatus.exitCode is always there, 0 until the container ends: a running job has no exit code yet
        (job("Running", [pod("Running")]), JobStatus.RUNNING, "Radix job running", None),
        (job("Stopping", [pod("Running")]), JobStatus.RUNNING, "Radix job stopping", None),
        (
            job("Succeeded", [pod("Succeeded", 0, "Completed", end=ENDED)], ended=ENDED),
            JobStatus.COMPLETED,
            "Radix job succeeded",
            0,
        ),
        (job("Completed", ended=ENDED), JobStatus.COMPLETED, "Radix job completed", 0),
        (
            job(
                "Failed",
                [pod("Failed", 2, "Error", end=ENDED)],
                ended=ENDED,
                message="Job has reached the specified backoff limit",
            ),
            JobStatus.FAILED,
            "Radix job failed with exit code 2: Job has reached the specified backoff limit",
            2,
        ),
        # every attempt so far failed, `ended` null: Kubernetes is about to start the next one
        (
            job("Failed", [pod("Failed", 3, "Error", end=ENDED)]),
            JobStatus.RUNNING,
            "Radix job retrying: attempt 1 failed with exit code 3 (Error); Kubernetes starts the next attempt",
            None,
        ),
        (
            job("Active", [pod("Failed", 3, "Error", end=ENDED), pod("Pending", index=1, start=None)]),
            JobStatus.RUNNING,
            "Radix job retrying: attempt 2 is active",
            None,
        ),
        # a stopped job's pods read Stopped with exitCode 0 although they never exited
        (job("Stopped", [pod("Stopped")], ended=ENDED), JobStatus.FAILED, "Radix job stopped", None),
        (
            job(
                "Failed",
                [pod("Failed", 137, "OOMKilled", "Out of memory.", end=ENDED)],
                ended=ENDED,
                message="Job has reached the specified backoff limit",
            ),
            JobStatus.FAILED,
            "Radix job ran out of memory (OOMKilled, exit code 137): raise the memory of the job component "
            "(resources.limits.memory): Job has reached the specified backoff limit; Out of memory.",
            137,
        ),
        # schedulers before radix-job-scheduler 2edb1e6 (2024-07) had a DeadlineExceeded status
        (
            job(
                "DeadlineExceeded", message="Pod was active on the node longer than the specified deadline", ended=ENDED
            ),
            JobStatus.FAILED,
            "Radix job time limit exceeded: Pod was active on the node longer than the specified deadline",
            None,
        ),
        (job("Mystery"), JobStatus.UNKNOWN, "Radix job mystery", None),
    ],
)
def test_status_mapping(body, state, message, exit_code):
    fields = map_radix_status(body)
    assert (fields["state"], fields["message"], fields["exit_code"]) == (state, message, exit_code)


def test_a_kill_at_the_time_limit_is_named_with_the_limit():
    killed = job(
        "Failed",
        [pod("Failed", 137, "Error", end=ENDED)],
        ended=ENDED,
        message="Job has reached the specified backoff limit",
    )
    assert map_radix_status(killed, time_limit=30)["message"] == (
        "Radix job time limit exceeded (30 s): killed with exit code 137: Job has reached the specified backoff limit"
    )
    # the same kill well before the limit is not a time limit
    assert map_radix_status(killed, time_limit=3600)["message"].startswith("Radix job failed with exit code 137")


# --- configuration -----------------------------------------------------------------------------------------

RULE = {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ({"jobName": None}, "runner.jobName"),
        ({"jobName": "Bad_Name"}, "runner.jobName"),
        ({"schedulerPort": "http"}, "schedulerPort must be a port number"),
        ({"schedulerPort": None}, "runner.schedulerPort"),
        ({"backoffLimit": -1}, "runner.backoffLimit: Input should be greater than or equal to 0"),
        ({"backoffLimit": "many"}, "runner.backoffLimit"),
        ({"backoffLimit": True}, "runner.backoffLimit: backoffLimit must be a whole number of retries"),
        ({"failurePolicy": {"rules": [{**RULE, "action": "Retry"}]}}, "runner.failurePolicy.rules.0.action"),
        (
            {"failurePolicy": {"rules": [{**RULE, "onExitCodes": {"operator": "Maybe", "values": [1]}}]}},
            "runner.failurePolicy.rules.0.onExitCodes.operator",
        ),
        (
            {"failurePolicy": {"rules": [{**RULE, "onExitCodes": {"operator": "In", "values": []}}]}},
            "runner.failurePolicy.rules.0.onExitCodes.values: List should have at least 1 item",
        ),
        (
            {"failurePolicy": {"rules": [{**RULE, "onExitCodes": {"operator": "In", "values": [0]}}]}},
            "exit code 0 cannot be used with the In operator",
        ),
        (
            {"failurePolicy": {"rules": [{**RULE, "onExitCodes": {"operator": "NotIn", "values": [1, 1]}}]}},
            "the list must not contain duplicates",
        ),
        (
            {"failurePolicy": {"rules": [{**RULE, "onExitCodes": {"operator": "NotIn", "values": [-1]}}]}},
            "exit codes are integers from 0 to 2147483647",
        ),
        ({"failurePolicy": {"rules": [RULE] * 21}}, "runner.failurePolicy.rules: List should have at most 20 items"),
        ({"failurePolicy": {"rules": [{**RULE, "onExitCode": {}}]}}, "runner.failurePolicy.rules.0.onExitCode"),
        ({"failurePolicy": [RULE]}, "runner.failurePolicy"),
    ],
)
def test_validation(bad, fragment):
    config = {"type": RADIX, "jobName": "compute", "schedulerPort": "8080", **bad}
    with pytest.raises(ConfigError) as caught:
        RadixRunner().validate(config)
    assert fragment in str(caught.value), str(caught.value)


def test_start_request(radix):
    job_spec = spec(radix, env={"DMSS_TOKEN": "t", "JOB_DMSS_ID": "DS/$1"}, imageTagName="v2")
    handle = RadixRunner().start(job_spec)
    sent = radix.jobs[handle["name"]].request
    assert sent == {
        "payload": json.dumps({"DMSS_TOKEN": "t", "JOB_DMSS_ID": "DS/$1"}),
        "jobId": job_spec.uid,
        "timeLimitSeconds": 600,
        "imageTagName": "v2",
    }
    assert handle == {
        "scheduler": radix.url,
        "name": handle["name"],
        "jobName": "compute",
        "jobId": job_spec.uid,
        "timeLimitSeconds": 600,
    }
    assert JOB_NAME.match(handle["name"]), handle["name"]  # batch-{component}{pad}-{timestamp}-{8}-{8}
    assert "t" not in handle.values()


def test_backoff_limit_and_failure_policy_are_passed_through(radix):
    policy = {"rules": [RULE, {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [143]}}]}
    handle = RadixRunner().start(spec(radix, backoffLimit=3, failurePolicy=policy))
    sent = radix.jobs[handle["name"]].request
    assert sent["backoffLimit"] == 3 and sent["failurePolicy"] == policy
    assert handle["backoffLimit"] == 3


# --- what a user reads, against the stand-in ----------------------------------------------------------------


def test_a_retrying_job_stays_running_until_it_succeeds(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "2", "EXIT_CODES": "3,3,0"}, backoffLimit=2))
    manual_clock.advance(3.5)  # the first attempt failed; Kubernetes waits 10 s before the next
    assert scheduler_view(radix, handle)["status"] == "Failed" and scheduler_view(radix, handle)["ended"] is None
    status = runner.status(handle)
    assert status.state == JobStatus.RUNNING and status.exit_code is None
    assert status.message == (
        "Radix job retrying: attempt 1 failed with exit code 3 (Error); Kubernetes starts the "
        "next attempt, backoffLimit 2"
    )
    final, seen = run_until_final(runner, handle, manual_clock)
    assert JobStatus.FAILED not in seen, seen
    assert final.state == JobStatus.COMPLETED and final.exit_code == 0
    assert final.message == "Radix job succeeded"
    assert len(scheduler_view(radix, handle)["podStatuses"]) == 3


def test_a_retrying_job_can_be_stopped(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "2", "EXIT_CODE": "3"}, backoffLimit=3))
    manual_clock.advance(3.5)
    assert scheduler_view(radix, handle)["status"] == "Failed"  # between attempts
    assert runner.stop(handle) == f"Radix job {handle['name']} stopping"  # the Kubernetes Job is still active
    manual_clock.advance(radix.stop_seconds)
    raw = scheduler_view(radix, handle)
    # GetScheduledJobStatus reads Failed for a job whose pods all failed, even once it is Stopped; `ended` is set
    assert (raw["status"], raw["ended"] is not None) == ("Failed", True)
    status = runner.status(handle)
    assert (status.state, status.message, status.exit_code) == (
        JobStatus.FAILED,
        "Radix job failed with exit code 3",
        3,
    )


def test_a_job_whose_retries_are_spent_fails_with_the_last_exit_code(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "1", "EXIT_CODE": "3"}, backoffLimit=1))
    final, seen = run_until_final(runner, handle, manual_clock)
    assert seen[-2:] == [JobStatus.RUNNING, JobStatus.FAILED]
    assert final.exit_code == 3
    assert final.message == (
        "Radix job failed with exit code 3 after 2 attempts: Job has reached the specified backoff limit"
    )


def test_a_fail_job_rule_ends_the_retries(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"EXIT_CODE": "42"}, backoffLimit=5, failurePolicy={"rules": [RULE]}))
    final, _ = run_until_final(runner, handle, manual_clock)
    assert final.exit_code == 42
    assert final.message.startswith("Radix job failed with exit code 42: Container compute for pod app-dev/")
    assert final.message.endswith("failed with exit code 42 matching FailJob rule at index 0")
    assert len(scheduler_view(radix, handle)["podStatuses"]) == 1


@pytest.mark.parametrize("traps,exit_code", [(True, 143), (False, 137)])
def test_time_limit_exceeded_names_the_limit(radix, manual_clock, traps, exit_code):
    runner = RadixRunner()
    env = {"SLEEP_SECONDS": "300", **({"TRAPS_SIGTERM": "1"} if traps else {})}
    handle = runner.start(spec(radix, env=env, time_limit=5))
    final, _ = run_until_final(runner, handle, manual_clock)
    assert final.state == JobStatus.FAILED and final.exit_code == exit_code
    assert final.message == (
        f"Radix job time limit exceeded (5 s): killed with exit code {exit_code}: Job has "
        "reached the specified backoff limit"
    )


def test_time_limit_on_the_kubernetes_job_is_named_too(manual_clock, monkeypatch):
    """The Job-level deadline (activeDeadlineSeconds on the Job, as Kubernetes documents it) says so itself."""
    radix = RadixStandIn(deadline_level="job").start()
    monkeypatch.setenv("RADIX_SCHEDULER_URL_TEMPLATE", "http://127.0.0.1:{schedulerPort}")
    try:
        runner = RadixRunner()
        handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "300", "TRAPS_SIGTERM": "1"}, time_limit=5))
        final, _ = run_until_final(runner, handle, manual_clock)
        assert final.message == (
            "Radix job time limit exceeded (5 s): killed with exit code 143: Job was active "
            "longer than specified deadline"
        )
    finally:
        radix.stop()


def test_out_of_memory_is_named(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"OOM": "1"}))
    final, _ = run_until_final(runner, handle, manual_clock)
    assert final.exit_code == 137
    assert final.message == (
        "Radix job ran out of memory (OOMKilled, exit code 137): raise the memory of the job "
        "component (resources.limits.memory): Job has reached the specified backoff limit; "
        "Out of memory."
    )


def test_stopping_is_running_until_stopped_and_a_stopped_job_has_no_exit_code(radix, manual_clock):
    radix.stop_seconds = 5
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "100"}))
    manual_clock.advance(3)
    assert runner.stop(handle) == f"Radix job {handle['name']} stopping"
    status = runner.status(handle)
    assert (status.state, status.message) == (JobStatus.RUNNING, "Radix job stopping")
    manual_clock.advance(6)
    raw = scheduler_view(radix, handle)
    assert raw["status"] == "Stopped" and raw["podStatuses"][0]["exitCode"] == 0  # as the scheduler shows it
    status = runner.status(handle)
    assert (status.state, status.message, status.exit_code) == (JobStatus.FAILED, "Radix job stopped", None)


def test_stopping_a_finished_job(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "1"}))
    manual_clock.advance(5)
    refused = requests.post(f"{radix.url}/api/v1/jobs/{handle['name']}/stop", timeout=5)
    batch = handle["name"].rsplit("-", 1)[0]
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "status": "Failure",
            "message": f"cannot stop the job {batch} with the status Completed",
            "reason": "BadRequest",
            "code": 400,
        },
    )
    assert runner.stop(handle) == f"Radix job {handle['name']} had already ended"


def test_scheduler_errors_carry_their_message(radix):
    radix.fail_next_posts = [(422, "imageTagName v9 is not a valid tag"), (500, "etcd unavailable")]
    runner = RadixRunner()
    with pytest.raises(RunnerError) as caught:
        runner.start(spec(radix))
    assert not isinstance(caught.value, RetryLater)
    assert str(caught.value) == (
        "Radix job scheduler refused the job: imageTagName v9 is not a valid tag (Invalid, HTTP 422)"
    )
    with pytest.raises(RetryLater, match="etcd unavailable"):
        runner.start(spec(radix))


def test_scheduler_rejects_what_its_crd_rejects(radix):
    """Without the runner's validation, the scheduler itself refuses (422 Invalid)."""
    response = requests.post(f"{radix.url}/api/v1/jobs", json={"payload": "{}", "backoffLimit": -1}, timeout=5)
    assert response.status_code == 422 and response.json()["reason"] == "Invalid"
    response = requests.post(f"{radix.url}/api/v1/jobs", json={"payload": {"not": "a string"}}, timeout=5)
    assert (response.status_code, response.json()["message"]) == (422, "payload is invalid")


def test_unreachable_scheduler_is_retry_later(monkeypatch):
    monkeypatch.setenv("RADIX_SCHEDULER_URL_TEMPLATE", "http://127.0.0.1:{schedulerPort}")
    job_spec = JobSpec(
        uid="u",
        config={"type": RADIX, "jobName": "compute", "schedulerPort": "9"},
        environment={},
        time_limit_seconds=60,
    )
    with pytest.raises(RetryLater, match=r"Radix job scheduler compute:9 not reachable \(ConnectionError\)"):
        RadixRunner().start(job_spec)


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


def test_active_for_ever_stays_starting(radix, manual_clock):
    radix.stuck_active = True
    runner = RadixRunner()
    handle = runner.start(spec(radix))
    manual_clock.advance(600)
    assert runner.status(handle).state == JobStatus.STARTING


# --- the stand-in answers as the scheduler's models say -------------------------------------------------------


def test_stand_in_job_status_shape(radix, manual_clock):
    handle = RadixRunner().start(spec(radix, env={"SLEEP_SECONDS": "10"}))
    waiting = scheduler_view(radix, handle)
    assert waiting["status"] == "Waiting" and waiting["created"] is None and "podStatuses" not in waiting
    manual_clock.advance(3)
    running = scheduler_view(radix, handle)
    assert running["status"] == "Running" and running["ended"] is None and running["updated"] is None
    assert "DeploymentName" in running  # a Go field without a json tag
    (pod_status,) = running["podStatuses"]
    assert pod_status["exitCode"] == 0 and pod_status["replicaStatus"] == {"status": "Running"}
    assert "statusMessage" not in pod_status and "message" not in pod_status and "podIndex" not in pod_status
    assert requests.get(f"{radix.url}/api/v1/nowhere", timeout=5).text == "404 page not found"


def test_stand_in_batches(radix, manual_clock):
    body = {
        "batchId": "b1",
        "defaultRadixJobComponentConfig": {"backoffLimit": 0},
        "jobScheduleDescriptions": [
            {"jobId": "ok", "payload": '{"SLEEP_SECONDS": "1"}'},
            {"jobId": "bad", "payload": '{"EXIT_CODE": "2"}'},
        ],
    }
    batch = requests.post(f"{radix.url}/api/v1/batches", json=body, timeout=5).json()
    assert batch["status"] == "Waiting" and batch["batchType"] == "batch" and batch["batchId"] == "b1"
    assert [j["jobId"] for j in batch["jobStatuses"]] == ["ok", "bad"]
    manual_clock.advance(5)
    done = requests.get(f"{radix.url}/api/v1/batches/{batch['name']}", timeout=5).json()
    assert done["status"] == "Completed" and [j["status"] for j in done["jobStatuses"]] == ["Succeeded", "Failed"]
    refused = requests.post(f"{radix.url}/api/v1/batches/{batch['name']}/stop", timeout=5)
    assert refused.status_code == 400
    assert refused.json()["message"] == f"cannot stop the batch {batch['name']} with the status Completed"
    deleted = requests.delete(f"{radix.url}/api/v1/batches/{batch['name']}", timeout=5).json()
    assert deleted == {"status": "Success", "message": f"batch {batch['name']} successfully deleted", "code": 200}


def test_start_finds_a_job_posted_before_and_cleanup_removes_duplicates(radix, manual_clock):
    """The scheduler keeps no jobId unique: a start whose answer was lost left a job (and a start raced by
    another host a second one). A start adopts the oldest; cleanup deletes every job with the jobId."""
    job_spec = spec(radix)
    body = RadixRunner._job_body(parse_config(RadixConfig, job_spec.config), job_spec)
    first = requests.post(f"{radix.url}/api/v1/jobs", json=body, timeout=5).json()["name"]
    manual_clock.advance(2)
    second = requests.post(f"{radix.url}/api/v1/jobs", json=body, timeout=5).json()["name"]
    runner = RadixRunner()
    handle = runner.start(job_spec)
    assert handle["name"] == first and runner.find(job_spec) == handle
    assert sum(1 for j in radix.jobs.values() if j.job_id == job_spec.uid) == 2  # nothing posted
    runner.cleanup(handle)
    assert first not in radix.jobs and second not in radix.jobs
    runner.cleanup(handle)  # again: harmless


def test_a_scheduler_that_cannot_list_jobs_still_starts_them(radix, monkeypatch):
    original = radix._jobs_route

    def no_list(method, rest, request):
        if not rest and method == "GET":
            return None  # gin's plain 404
        return original(method, rest, request)

    monkeypatch.setattr(radix, "_jobs_route", no_list)
    runner = RadixRunner()
    handle = runner.start(spec(radix))
    assert handle["name"] in radix.jobs
    runner.cleanup(handle)
    assert handle["name"] not in radix.jobs


def test_a_throttled_stop_or_cleanup_is_retry_later(radix, manual_clock):
    runner = RadixRunner()
    handle = runner.start(spec(radix, env={"SLEEP_SECONDS": "100"}))
    radix.fail_next_deletes = [(429, "too many requests")]
    with pytest.raises(RetryLater) as throttled:
        runner.cleanup(handle)
    assert throttled.value.retry_after == 7
    runner.cleanup(handle)
    assert handle["name"] not in radix.jobs


def test_a_refusal_that_echoes_the_payload_carries_no_secret(radix):
    job_spec = spec(radix, env={"TOKEN": "s3cr3t-echoed-back", "JOB_UID": "u-1"})
    radix.fail_next_posts = [(422, 'payload {"TOKEN": "s3cr3t-echoed-back", "JOB_UID": "u-1"} is invalid')]
    with pytest.raises(RunnerError) as refused:
        RadixRunner().start(job_spec)
    assert "s3cr3t-echoed-back" not in str(refused.value) and "***" in str(refused.value)
    assert "u-1" in str(refused.value)  # the service's public values stay readable
