"""The retry decision (shared/jobs/retry.py) and the policy's validation (shared/jobs/models.py RetryPolicy), pure,
plus the attempt bookkeeping in shared/jobs/transitions.py (attempt_ended) that applies it to a job record."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from runners.aci_state import map_group
from runners.base import FailureReason, JobSpec, RunnerStatus
from runners.local_container import map_container_state
from runners.radix import map_radix_status
from shared.jobs import retry, transitions
from shared.jobs.models import Job, RetryPolicy
from shared.jobs.record import JobRecord, current_attempt
from shared.jobs.status import JobStatus
from shared.jobs.validation import validate_job
from shared.platform.errors import ValidationFailed
from tests.runners.test_aci import BACKOFF, PULL_FAILED, PULLING, group_json
from tests.runners.test_radix import ENDED, pod
from tests.runners.test_radix import job as radix_job

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
FAR = NOW + timedelta(days=1)
OOM = FailureReason.OUT_OF_MEMORY


def policy(**values) -> RetryPolicy:
    return RetryPolicy.model_validate({"maxAttempts": 3, **values})


# ---- backoff ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, waits",
    [
        ({}, [10, 20, 40, 80]),  # defaults: 10 s doubling
        ({"backoffSeconds": 5, "backoffFactor": 1}, [5, 5, 5, 5]),
        ({"backoffSeconds": 3, "backoffFactor": 1.5}, [3, 4.5, 6.75, 10.125]),
        ({"backoffSeconds": 10, "maxBackoffSeconds": 25}, [10, 20, 25, 25]),
        ({"backoffSeconds": 0}, [0, 0, 0, 0]),
        ({"backoffSeconds": 86400, "backoffFactor": 10, "maxBackoffSeconds": 86400}, [86400] * 4),
    ],
)
def test_backoff_grows_by_the_factor_up_to_the_cap(values, waits):
    assert [retry.backoff(policy(**values), n) for n in (1, 2, 3, 4)] == waits


def test_backoff_never_overflows():
    huge = policy(maxAttempts=20, backoffSeconds=86400, backoffFactor=10, maxBackoffSeconds=86400)
    assert retry.backoff(huge, 10_000) == 86400


# ---- which failures -----------------------------------------------------------------------------------------------
CODES = [None, 1, 2, 137]
REASONS = [None, *FailureReason]


@pytest.mark.parametrize("code, reason", list(itertools.product(CODES, REASONS)))
def test_without_filters_every_failure_is_retried(code, reason):
    assert retry.selected(policy(), retry.Failure(code, reason))


@pytest.mark.parametrize("code, reason", list(itertools.product(CODES, REASONS)))
def test_on_exit_codes_selects_only_those_codes_unless_on_reasons_names_the_reason(code, reason):
    assert retry.selected(policy(onExitCodes=[1, 137]), retry.Failure(code, reason)) == (code in (1, 137))
    both = policy(onExitCodes=[1], onReasons=["out-of-memory"])
    assert retry.selected(both, retry.Failure(code, reason)) == (code == 1 or reason == OOM)


@pytest.mark.parametrize("code, reason", list(itertools.product(CODES, REASONS)))
def test_not_on_exit_codes_excludes_those_codes_and_nothing_else(code, reason):
    assert retry.selected(policy(notOnExitCodes=[2]), retry.Failure(code, reason)) == (code != 2)
    # it excludes even a failure whose reason onReasons selects
    with_reasons = policy(notOnExitCodes=[137], onReasons=["out-of-memory"])
    assert retry.selected(with_reasons, retry.Failure(code, reason)) == (reason == OOM and code != 137)


@pytest.mark.parametrize("code, reason", list(itertools.product(CODES, REASONS)))
def test_on_reasons_selects_only_those_reasons(code, reason):
    chosen = policy(onReasons=["image-pull", "runner-unavailable"])
    wanted = reason in (FailureReason.IMAGE_PULL, FailureReason.RUNNER_UNAVAILABLE)
    assert retry.selected(chosen, retry.Failure(code, reason)) == wanted


# ---- the decision ----------------------------------------------------------------------------------------------------
def test_no_policy_never_retries():
    assert retry.decide(None, 1, retry.Failure(1), NOW, FAR) == retry.Decision(False)


def test_retried_with_the_backoff_and_the_note():
    decision = retry.decide(policy(), 1, retry.Failure(1), NOW, FAR)
    assert decision == retry.Decision(True, 10.0, "attempt 2 of 3 after exit code 1")
    assert retry.decide(policy(), 2, retry.Failure(1), NOW, FAR) == retry.Decision(
        True, 20.0, "attempt 3 of 3 after exit code 1"
    )


def test_the_last_attempt_is_not_retried():
    decision = retry.decide(policy(), 3, retry.Failure(1), NOW, FAR)
    assert not decision.retry and decision.why == "attempt 3 of 3: no attempts left"
    assert not retry.decide(policy(maxAttempts=1), 1, retry.Failure(1), NOW, FAR).retry


def test_an_excluded_failure_says_why():
    decision = retry.decide(policy(notOnExitCodes=[2]), 1, retry.Failure(2), NOW, FAR)
    assert not decision.retry and decision.why == "attempt 1 of 3: exit code 2 is not retried"


@pytest.mark.parametrize("left, retried", [(10.0, False), (9.0, False), (10.5, True), (None, True)])
def test_no_retry_whose_wait_would_reach_the_deadline(left, retried):
    deadline = None if left is None else NOW + timedelta(seconds=left)
    decision = retry.decide(policy(), 1, retry.Failure(1), NOW, deadline)
    assert decision.retry == retried
    if not retried:
        assert "time limit" in decision.why


def test_a_time_limit_failure_at_the_deadline_is_never_retried():
    everything = policy(onReasons=["time-limit"], backoffSeconds=0)
    assert not retry.decide(everything, 1, retry.Failure(None, FailureReason.TIME_LIMIT), NOW, NOW).retry


@pytest.mark.parametrize(
    "failure, text",
    [
        (retry.Failure(1), "exit code 1"),
        (retry.Failure(137, OOM), "out-of-memory (exit code 137)"),
        (retry.Failure(None, FailureReason.RUNNER_UNAVAILABLE), "runner-unavailable"),
        (retry.Failure(), "a failure"),
    ],
)
def test_failures_are_described(failure, text):
    assert failure.describe() == text
    assert retry.note(2, 3, failure) == f"attempt 2 of 3 after {text}"


# ---- validation ------------------------------------------------------------------------------------------------------
def job(retry_value) -> dict:
    return {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Shell", "script": "true"}, "retry": retry_value}


@pytest.mark.parametrize(
    "bad, where",
    [
        ({}, "retry.maxAttempts"),
        ({"maxAttempts": 0}, "retry.maxAttempts"),
        ({"maxAttempts": 21}, "retry.maxAttempts"),
        ({"maxAttempts": True}, "retry.maxAttempts"),
        ({"maxAttempts": "3"}, "retry.maxAttempts"),
        ({"maxAttempts": 2.0}, "retry.maxAttempts"),
        ({"maxAttempts": 3, "backoffSeconds": -1}, "retry.backoffSeconds"),
        ({"maxAttempts": 3, "backoffSeconds": 86401}, "retry.backoffSeconds"),
        ({"maxAttempts": 3, "backoffSeconds": 1.5}, "retry.backoffSeconds"),
        ({"maxAttempts": 3, "backoffFactor": 0.5}, "retry.backoffFactor"),
        ({"maxAttempts": 3, "backoffFactor": 11}, "retry.backoffFactor"),
        ({"maxAttempts": 3, "backoffFactor": False}, "retry.backoffFactor"),
        ({"maxAttempts": 3, "backoffSeconds": 60, "maxBackoffSeconds": 30}, "retry"),
        ({"maxAttempts": 3, "onExitCodes": [1], "notOnExitCodes": [2]}, "retry"),
        ({"maxAttempts": 3, "onExitCodes": []}, "retry.onExitCodes"),
        ({"maxAttempts": 3, "onExitCodes": [0]}, "retry.onExitCodes.0"),
        ({"maxAttempts": 3, "onExitCodes": [256]}, "retry.onExitCodes.0"),
        ({"maxAttempts": 3, "onExitCodes": ["1"]}, "retry.onExitCodes.0"),
        ({"maxAttempts": 3, "onExitCodes": [1, 1]}, "retry"),
        ({"maxAttempts": 3, "notOnExitCodes": list(range(1, 53))}, "retry.notOnExitCodes"),
        ({"maxAttempts": 3, "onReasons": ["oom"]}, "retry.onReasons.0"),
        ({"maxAttempts": 3, "onReasons": ["time-limit", "time-limit"]}, "retry"),
        ({"maxAttempts": 3, "maxAttempt": 3}, "retry.maxAttempt"),  # a misspelt key is refused, not ignored
        ([3], "retry"),
        ("3", "retry"),
    ],
)
def test_bad_policies_are_refused_with_422_naming_the_field(bad, where):
    with pytest.raises(ValidationFailed) as refused:
        validate_job(job(bad))
    assert refused.value.status == 422
    places = [item["loc"].removesuffix(".int").removesuffix(".float") for item in refused.value.data]
    assert where in places, refused.value.data


def test_a_recurring_jobs_template_policy_is_validated_too(monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    recurring = {
        "type": "JOBCORE:RecurringJob",
        "runner": {"type": "JOBCORE:Shell", "script": "true"},
        "schedule": {"type": "JOBCORE:CronJob", "cron": "0 * * * *"},
        "applicationInput": job({"maxAttempts": 0}),
    }
    with pytest.raises(ValidationFailed):
        validate_job(recurring)
    recurring["applicationInput"] = job({"maxAttempts": 2})
    assert validate_job(recurring).applicationInput["retry"] == {"maxAttempts": 2}


def test_a_valid_policy_is_kept_with_its_defaults():
    kept = Job.model_validate(job({"maxAttempts": 3, "onReasons": ["out-of-memory"]})).dump()["retry"]
    assert kept == {
        "maxAttempts": 3,
        "backoffSeconds": 10,
        "backoffFactor": 2,
        "maxBackoffSeconds": 3600,
        "onReasons": ["out-of-memory"],
    }
    assert Job.model_validate(job(None)).retry is None


# ---- attempt identity on the runner ----------------------------------------------------------------------------------
def test_an_attempt_is_named_after_the_uid_and_its_number():
    spec = JobSpec(uid="u", config={}, environment={}, time_limit_seconds=1)
    assert spec.run_id == "u"  # the first attempt: named as every job was before retries
    assert JobSpec(uid="u", config={}, environment={}, time_limit_seconds=1, attempt=3).run_id == "u-a3"


# ---- the record through attempts (transitions.attempt_ended) ---------------------------------------------------------
def running(attempt: int = 1) -> JobRecord:
    record = JobRecord(uid="u", status=JobStatus.RUNNING, time_limit_seconds=3600, started=NOW)
    transitions.launched(record, {"pid": attempt}, attempt=attempt, now=NOW)
    return record


def ending(code: int, reason: str | None = None, state: JobStatus = JobStatus.FAILED) -> transitions.Ending:
    seen = RunnerStatus(state, log=[f"exit {code}"], exit_code=code, message=f"exit code {code}")
    return transitions.Ending(reason, seen, None, "log-ref", "result-ref", ["exit"])


def plan(attempt: int, **values) -> transitions.AttemptPlan:
    return transitions.AttemptPlan(policy(**values), attempt, FAR)


def test_a_retried_attempt_is_closed_and_the_job_starts_again_without_a_final_status():
    record = running()
    transitions.attempt_ended(record, ending(1), plan(1), NOW)
    assert record.status == JobStatus.STARTING and record.ended is None
    assert record.message == "attempt 2 of 3 after exit code 1: starts in 10 s"
    assert record.handle is None and current_attempt(record) == 2
    first = record.attempts[0]
    assert first["status"] == "failed" and first["exitCode"] == 1 and first["retryIn"] == 10.0
    assert first["logRef"] == "log-ref" and first["handle"] == {"pid": 1}
    transitions.launched(record, {"pid": 2}, attempt=2, now=NOW)
    assert record.message == "attempt 2 of 3 after exit code 1"


def test_the_last_attempt_finishes_the_job_with_the_count():
    record = running()
    for attempt in (1, 2):
        transitions.attempt_ended(record, ending(1), plan(attempt), NOW)
        transitions.launched(record, {"pid": attempt + 1}, attempt=attempt + 1, now=NOW)
    transitions.attempt_ended(record, ending(0, state=JobStatus.COMPLETED), plan(3), NOW)
    assert record.status == JobStatus.COMPLETED and record.ended == NOW
    assert record.message == "exit code 0 (attempt 3 of 3)"
    assert [(a["attempt"], a["status"], a["exitCode"]) for a in record.attempts] == [
        (1, "failed", 1),
        (2, "failed", 1),
        (3, "completed", 0),
    ]


def test_a_job_that_completes_at_once_keeps_its_message():
    record = running()
    transitions.attempt_ended(record, ending(0, state=JobStatus.COMPLETED), plan(1), NOW)
    assert record.message == "exit code 0" and len(record.attempts) == 1


def test_an_excluded_exit_code_fails_the_job_saying_why():
    record = running()
    transitions.attempt_ended(record, ending(2), plan(1, notOnExitCodes=[2]), NOW)
    assert record.status == JobStatus.FAILED
    assert record.message == "exit code 2 (attempt 1 of 3: exit code 2 is not retried)"


def test_a_stop_wins_over_a_retry_and_a_next_attempt_that_never_started_is_dropped():
    record = running()
    transitions.stop_requested(record, "stopped by alice", NOW)
    transitions.attempt_ended(record, ending(1), plan(1), NOW)
    assert record.status == JobStatus.REMOVED and len(record.attempts) == 1
    record = running()
    transitions.attempt_ended(record, ending(1), plan(1), NOW)  # retried: attempt 2 waits
    transitions.stop_requested(record, "stopped by alice", NOW)
    stopped = transitions.Ending(transitions.STOPPED, None, None, None, None, [])
    transitions.attempt_ended(record, stopped, plan(2), NOW)
    assert record.status == JobStatus.REMOVED and record.message == "stopped by alice"
    assert [a["attempt"] for a in record.attempts] == [1]


def test_a_late_finish_of_an_earlier_attempt_changes_nothing():
    record = running()
    transitions.attempt_ended(record, ending(1), plan(1), NOW)
    before = [dict(a) for a in record.attempts], record.status
    transitions.attempt_ended(record, ending(1), plan(1), NOW)
    assert ([dict(a) for a in record.attempts], record.status) == before


def test_a_refused_start_is_classified_by_the_runners_reason():
    record = JobRecord(uid="u", status=JobStatus.STARTING)
    transitions.attempt_refused(record, 1, "image not found", FailureReason.IMAGE_PULL)
    refused = transitions.Ending(transitions.START_REFUSED, None, None, None, None, [])
    transitions.attempt_ended(record, refused, plan(1, onReasons=["image-pull"]), NOW)
    assert record.status == JobStatus.STARTING and record.attempts[0]["reason"] == "image-pull"
    assert record.message.startswith("attempt 2 of 3 after image-pull")


def test_a_time_limit_ends_the_job():
    record = running()
    timeout = transitions.Ending(transitions.TIMEOUT, None, None, None, None, [])
    transitions.attempt_ended(record, timeout, transitions.AttemptPlan(policy(), 1, NOW), NOW)
    assert record.status == JobStatus.FAILED and "time limit" in record.message
    assert record.attempts[0]["reason"] == "time-limit"


def test_a_job_that_reported_failed_is_retried_and_its_report_forgotten():
    record = running()
    report = transitions.Progress(None, JobStatus.FAILED, ["bad"], False, 10, NOW)
    transitions.reported(record, report)
    transitions.attempt_ended(record, ending(1), plan(1), NOW)
    assert record.status == JobStatus.STARTING and not record.externally_reported


def test_validation_error_type_is_pydantic():
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"maxAttempts": 3, "onExitCodes": [1], "notOnExitCodes": [2]})


# ---- runners classify their failures (what onReasons selects on) ------------------------------------------------
def test_a_container_killed_for_memory_is_out_of_memory():
    oom = map_container_state({"Status": "exited", "ExitCode": 137, "OOMKilled": True})
    assert (oom["reason"], oom["exit_code"]) == (OOM, 137)
    assert map_container_state({"Status": "exited", "ExitCode": 1})["reason"] is None


def test_radix_names_time_limits_and_memory():
    limit = radix_job("Failed", [pod("Failed", 137, "Error", end=ENDED)], ended=ENDED)
    assert map_radix_status(limit, time_limit=30)["reason"] == FailureReason.TIME_LIMIT
    memory = radix_job("Failed", [pod("Failed", 137, "OOMKilled", end=ENDED)], ended=ENDED)
    assert map_radix_status(memory, time_limit=3600)["reason"] == OOM
    plain = radix_job("Failed", [pod("Failed", 1, "Error", end=ENDED)], ended=ENDED)
    assert map_radix_status(plain, time_limit=3600)["reason"] is None


def test_aci_names_an_image_it_cannot_pull():
    pulled = map_group(group_json("Creating", "Waiting", events=[PULLING, PULL_FAILED, BACKOFF]))
    assert pulled["reason"] == FailureReason.IMAGE_PULL
