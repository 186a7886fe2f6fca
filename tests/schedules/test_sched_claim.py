"""shared/schedules/tick.py: what `claim` and `finalize` find, as typed outcomes, on records in memory. Pure."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from .conftest import recurring_entity

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform.errors import BadRequest
from shared.schedules.operations import new_state, validate
from shared.schedules.state import Lifecycle, ScheduleRecord
from shared.schedules.tick import (
    LEASE,
    MAX_START_ATTEMPTS,
    Attempt,
    Busy,
    Claimed,
    Done,
    Inactive,
    Lost,
    Moved,
    Retry,
    Stale,
    Suspended,
    claim,
    finalize,
)

UTC = timezone.utc
T0 = datetime(2026, 5, 3, 23, 59, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 5, 4, tzinfo=UTC)
FIRST = "202605040000"  # the bucket of the first fire of every schedule below


def at(minutes: int, seconds: int = 5) -> datetime:
    return MIDNIGHT + timedelta(minutes=minutes, seconds=seconds)


def record_for(cron: str = "*/5 * * * *", runs: list[dict] | None = None, **schedule) -> JobRecord:
    entity = recurring_entity(cron, **schedule)
    state = new_state(validate(entity, T0), T0, runs or [])
    return JobRecord(
        uid="sched", kind="recurring", status=JobStatus.REGISTERED, entity=entity, schedule=state.to_dict()
    )


def running(uid: str = "run-1") -> list[dict]:
    return [
        {
            "uid": uid,
            "scheduled": "2026-05-03T23:55:00Z",
            "started": "2026-05-03T23:55:05Z",
            "status": "running",
            "ended": None,
        }
    ]


def statuses(known: dict[str, str]):
    return known.get


def nobody(run_uid: str) -> str | None:
    raise AssertionError(f"no run status should be asked for ({run_uid})")


# ---- claim --------------------------------------------------------------------------------------------------
def test_a_due_fire_is_claimed_for_this_tick():
    record = record_for()
    outcome = claim(record, FIRST, at(0), "me", nobody)
    assert outcome == Claimed("2026-05-04T00:00:00Z", ())
    assert record.schedule["pending"] == {
        "scheduled": "2026-05-04T00:00:00Z",
        "claimedBy": "me",
        "claimedAt": "2026-05-04T00:00:05Z",
        "stop": [],
        "attempts": 0,
    }


def test_a_claim_within_its_lease_is_busy_and_changes_nothing():
    record = record_for()
    claim(record, FIRST, at(0), "me", nobody)
    before = copy.deepcopy(record.schedule)
    assert claim(record, FIRST, at(0) + LEASE - timedelta(seconds=1), "other", nobody) == Busy()
    assert record.schedule == before


def test_a_claim_past_its_lease_is_taken_over():
    record = record_for()
    claim(record, FIRST, at(0), "me", nobody)
    assert claim(record, FIRST, at(0) + LEASE, "other", nobody) == Claimed("2026-05-04T00:00:00Z", ())
    assert record.schedule["pending"]["claimedBy"] == "other"


def test_a_row_in_the_wrong_bucket_is_stale_and_changes_nothing():
    record = record_for()
    before = copy.deepcopy(record.schedule)
    assert claim(record, "202605032355", at(0), "me", nobody) == Stale(FIRST, "2026-05-04T00:00:00Z")
    assert record.schedule == before


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.schedule.update(state="suspended"),
        lambda r: r.schedule.update(state="removed"),
        lambda r: setattr(r, "status", JobStatus.REMOVED),
        lambda r: setattr(r, "schedule", None),
    ],
)
def test_a_schedule_that_is_not_active_is_inactive(change):
    record = record_for()
    change(record)
    assert claim(record, FIRST, at(0), "me", nobody) == Inactive()


def test_a_fire_past_its_deadline_is_missed_and_the_row_moves():
    record = record_for("0 * * * *", startingDeadlineSeconds=300)
    outcome = claim(record, FIRST, at(3 * 60 + 10), "me", nobody)
    assert outcome == Moved("202605040400", "2026-05-04T04:00:00Z", missed=4)
    assert record.schedule["pending"] is None and record.schedule["counts"]["missed"] == 4


def test_forbid_skips_while_a_run_is_going():
    record = record_for(concurrencyPolicy="Forbid", runs=running())
    outcome = claim(record, FIRST, at(0), "me", statuses({"run-1": "running"}))
    assert outcome == Moved("202605040005", "2026-05-04T00:05:00Z", skipped=1)
    assert record.schedule["runs"][-1]["status"] == "skipped"


def test_replace_claims_with_the_runs_to_stop():
    record = record_for(concurrencyPolicy="Replace", runs=running())
    outcome = claim(record, FIRST, at(0), "me", statuses({"run-1": "running"}))
    assert outcome == Claimed("2026-05-04T00:00:00Z", ("run-1",))
    assert record.schedule["pending"]["stop"] == ["run-1"]


def test_failures_in_a_row_suspend():
    record = record_for(suspendAfterFailures=1, runs=running())
    assert claim(record, FIRST, at(0), "me", statuses({"run-1": "failed"})) == Suspended()
    state = ScheduleRecord.of(record)
    assert state.state is Lifecycle.SUSPENDED and state.due_bucket is None
    assert state.suspended_reason == "1 failed runs in a row (suspendAfterFailures=1)"


def test_no_fire_left_expires_the_schedule_and_completes_the_job():
    record = record_for(endDate="2026-05-04T00:00", startingDeadlineSeconds=60)
    assert claim(record, FIRST, at(10), "me", nobody) == Moved(None, None, missed=1)
    assert record.schedule["state"] == "expired" and record.status == JobStatus.COMPLETED


def test_a_run_nobody_knows_is_no_longer_followed():
    record = record_for(runs=running())
    claim(record, FIRST, at(0), "me", statuses({}))
    assert record.schedule["runs"][0] == {**running()[0], "status": "unknown", "missing": True}


# ---- finalize -----------------------------------------------------------------------------------------------
def claimed(**schedule) -> tuple[JobRecord, Claimed]:
    record = record_for(**schedule)
    return record, claim(record, FIRST, at(0), "me", statuses({"run-1": "running"}))


def test_a_started_run_is_recorded_and_the_row_moves_on():
    record, outcome = claimed()
    final = finalize(record, Attempt(outcome.scheduled, "me", at(0), run_uid="run-2"))
    assert final == Done(Lifecycle.ACTIVE, "202605040005", "2026-05-04T00:05:00Z")
    assert record.schedule["pending"] is None and record.schedule["counts"]["started"] == 1
    assert record.schedule["runs"][-1] == {
        "uid": "run-2",
        "scheduled": "2026-05-04T00:00:00Z",
        "started": "2026-05-04T00:00:05Z",
        "status": "starting",
        "ended": None,
    }


def test_a_claim_taken_over_meanwhile_is_lost_and_changes_nothing():
    record, outcome = claimed()
    before = copy.deepcopy(record.schedule)
    assert finalize(record, Attempt(outcome.scheduled, "somebody else", at(0), run_uid="run-2")) == Lost()
    assert record.schedule == before


def test_a_transient_failure_releases_the_claim_for_the_next_tick():
    record, outcome = claimed()
    assert finalize(record, Attempt(outcome.scheduled, "me", at(0), failure=ConnectionError("down"))) == Retry()
    assert record.schedule["pending"]["claimedBy"] is None and record.schedule["pending"]["attempts"] == 1
    assert record.schedule["runs"] == []


def test_the_last_attempt_and_a_refusal_are_recorded_as_failed_runs():
    record, outcome = claimed()
    record.schedule["pending"]["attempts"] = MAX_START_ATTEMPTS - 1
    final = finalize(record, Attempt(outcome.scheduled, "me", at(0), failure=ConnectionError("down")))
    assert final == Done(Lifecycle.ACTIVE, "202605040005", "2026-05-04T00:05:00Z")
    record2, outcome2 = claimed()
    finalize(record2, Attempt(outcome2.scheduled, "me", at(0), failure=BadRequest("no template")))
    for r in (record, record2):
        assert r.schedule["runs"][-1]["status"] == "failed" and r.schedule["counts"]["failedToStart"] == 1
        assert r.schedule["consecutiveFailures"] == 1 and r.schedule["pending"] is None
    assert record2.schedule["runs"][-1]["reason"] == "could not start: BadRequest: no template"


def test_replace_marks_the_stopped_runs_and_notes_the_others():
    record = record_for(concurrencyPolicy="Replace", runs=running() + running("run-x"))
    outcome = claim(record, FIRST, at(0), "me", statuses({"run-1": "running", "run-x": "running"}))
    finalize(
        record,
        Attempt(
            outcome.scheduled, "me", at(0), run_uid="run-2", stopped=("run-1",), notes=("run-x not stopped (KeyError)",)
        ),
    )
    runs = {r["uid"]: r for r in record.schedule["runs"]}
    assert runs["run-1"]["stoppedBy"] == "concurrencyPolicy Replace (2026-05-04T00:00:00Z)"
    assert "stoppedBy" not in runs["run-x"] and runs["run-2"]["note"] == "run-x not stopped (KeyError)"
