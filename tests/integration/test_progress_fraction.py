"""Progress is a fraction from 0 to 1: the DM web app's job plugin shows `Math.round(percentage * 100)%`
(dm-core-plugins, common.tsx `Progress`), so 1.0 is "100%" and 40 would be "4000%"."""

import json
from datetime import datetime, timezone

import pytest

from runners.base import JobSpec, RunnerStatus
from runners.simulated import SimulatedRunner
from shared import service
from shared.jobs import transitions
from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.errors import ApiError

GOOD = {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Shell", "script": "true"}}
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


class Recorder:
    def start(self, uid, input):
        pass

    def raise_stop(self, uid):
        pass


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (0, 0.0),
        (0.4, 0.4),
        (1, 1.0),
        (1.0, 1.0),
        (40, 0.4),
        (100.0, 1.0),
        (250, 1.0),
        (-3, 0.0),
        (float("nan"), None),
    ],
)
def test_fraction(value, expected):
    assert transitions.fraction(value) == expected


def _ending(seen):
    return transitions.Ending(reason=None, seen=seen, problem=None, log_ref=None, result_ref=None, lines=[])


def test_a_job_that_completes_without_reporting_ends_at_one():
    record = JobRecord(uid="u", status=JobStatus.RUNNING, percentage=0.5)
    transitions.finished(record, _ending(RunnerStatus(JobStatus.COMPLETED, percentage=100.0)), NOW)
    assert record.status == JobStatus.COMPLETED and record.percentage == 1.0


def test_a_job_that_reported_keeps_what_it_said():
    record = JobRecord(uid="u", status=JobStatus.RUNNING, percentage=0.5, externally_reported=True)
    transitions.finished(record, _ending(RunnerStatus(JobStatus.COMPLETED, percentage=100.0)), NOW)
    assert record.status == JobStatus.COMPLETED and record.percentage == 0.5


def test_a_runner_counting_in_percent_is_shown_as_a_fraction():
    record = JobRecord(uid="u", status=JobStatus.RUNNING)
    transitions.observed(record, RunnerStatus(JobStatus.RUNNING, percentage=37.5), [])
    assert record.percentage == 0.375
    transitions.observed(record, RunnerStatus(JobStatus.RUNNING, percentage=0.8), [])
    assert record.percentage == 0.8


def test_the_simulated_runner_reports_fractions():
    previous = clock.get_clock()
    fake = clock.ManualClock()
    clock.set_clock(fake)
    try:
        runner = SimulatedRunner()
        handle = runner.start(JobSpec(uid="u", config={"durationSeconds": 10}, environment={}, time_limit_seconds=60))
        fake.advance(4)
        assert runner.status(handle).percentage == 0.4
        fake.advance(10)
        done = runner.status(handle)
        assert done.state == JobStatus.COMPLETED and done.percentage == 1.0
    finally:
        clock.set_clock(previous)


def test_status_body_of_a_record_stored_in_percent_shows_a_fraction(storage_env):
    uid = service.start_job(GOOD, caller=None, orchestrations=Recorder()).uid

    def old_style(record):
        record.percentage = 100.0  # what this service stored before progress was a fraction

    store().update(uid, old_style)
    assert service.get_job(uid)["percentage"] == 1.0


@pytest.mark.parametrize("value", [40, 100, 1.5, -0.1])
def test_progress_outside_zero_to_one_is_refused_and_nothing_is_stored(storage_env, value):
    uid = service.start_job(GOOD, caller=None, orchestrations=Recorder()).uid
    token = store().get(uid).job_token
    before = store().get(uid)
    body = json.dumps({"percentage": value, "logs": "should not land", "status": "running"}).encode()
    with pytest.raises(ApiError) as raised:
        service.report_progress(uid, body, "false", job_token=token)
    assert raised.value.status == 422
    assert "fraction from 0 to 1" in raised.value.message and "0.4 for 40 %" in raised.value.message
    after = store().get(uid)
    assert (after.percentage, after.reported_log, after.externally_reported, after.status) == (
        before.percentage,
        before.reported_log,
        before.externally_reported,
        before.status,
    )


@pytest.mark.parametrize("value", [0, 0.0, 0.4, 1, 1.0])
def test_progress_within_zero_to_one_is_taken_as_it_is(storage_env, value):
    uid = service.start_job(GOOD, caller=None, orchestrations=Recorder()).uid
    token = store().get(uid).job_token
    body = json.dumps({"percentage": value, "logs": None, "status": None}).encode()
    assert service.report_progress(uid, body, "false", job_token=token) == {"response": "OK"}
    assert service.get_job(uid, job_token=token)["percentage"] == float(value)
