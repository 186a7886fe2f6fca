"""shared/schedules/state.py: the typed schedule state reads and writes exactly the JSON stored before. Pure."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from .conftest import recurring_entity

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.schedules.operations import new_state, validate, view
from shared.schedules.state import Lifecycle, Pending, ScheduleRecord
from .golden_scenarios import GOLDEN

UTC = timezone.utc
T0 = datetime(2026, 5, 3, 23, 59, 30, tzinfo=UTC)
STORED = [snap for snaps in json.loads(GOLDEN.read_text()).values() for snap in snaps if "stored" in snap]


def stored_text(value: dict) -> str:
    """As `JobRecord.to_entity` writes the `schedule` property."""
    return json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("snap", STORED, ids=lambda snap: str(len(snap["stored"])))
def test_every_golden_state_round_trips_to_the_same_text(snap):
    assert stored_text(ScheduleRecord.from_dict(json.loads(snap["stored"])).to_dict()) == snap["stored"]


@pytest.mark.parametrize("snap", STORED, ids=lambda snap: str(len(snap["stored"])))
def test_view_of_a_golden_state_is_the_same_text(snap):
    assert json.dumps(view(json.loads(snap["stored"]))) == snap["view"]


def test_new_state_is_the_dict_registration_always_wrote():
    spec = validate(recurring_entity("*/5 * * * *", historyLimit=2), T0)
    runs = [{"uid": None, "scheduled": f"2026-05-0{d}T00:00:00Z", "status": "completed"} for d in (1, 2, 3)]
    assert new_state(spec, T0, runs).to_dict() == {
        "spec": spec.to_dict(),
        "state": "active",
        "suspendedReason": None,
        "registered": "2026-05-03T23:59:30Z",
        "lastConsidered": "2026-05-03T23:59:30Z",
        "nextFire": "2026-05-04T00:00:00Z",
        "dueBucket": "202605040000",
        "pending": None,
        "runs": runs[1:],
        "olderRuns": {"completed": 1},
        "counts": {"started": 0, "missed": 0, "skipped": 0, "failedToStart": 0},
        "consecutiveFailures": 0,
    }
    assert list(new_state(spec, T0).to_dict()) == list(ScheduleRecord.KEYS)


def test_unknown_keys_and_the_read_key_order_are_kept():
    raw = {
        "state": "active",
        "spec": {"cron": "* * * * *"},
        "addedLater": {"x": 1},
        "runs": [],
        "counts": {},
        "pending": {
            "claimedAt": "2026-05-04T00:00:05Z",
            "scheduled": "2026-05-04T00:00:00Z",
            "note": "kept",
            "claimedBy": "dead",
            "stop": [],
            "attempts": 0,
        },
        "suspendedReason": None,
        "registered": None,
        "lastConsidered": None,
        "nextFire": None,
        "dueBucket": None,
        "olderRuns": {},
        "consecutiveFailures": 0,
    }
    state = ScheduleRecord.from_dict(raw)
    assert state.extra == {"addedLater": {"x": 1}} and state.pending.extra == {"note": "kept"}
    assert stored_text(state.to_dict()) == stored_text(raw)
    state.pending.attempts += 1
    state.state = Lifecycle.SUSPENDED
    written = state.to_dict()
    assert list(written) == list(raw) and list(written["pending"]) == list(raw["pending"])
    assert written["state"] == "suspended" and type(written["state"]) is str
    assert written["pending"]["attempts"] == 1


def test_fields_are_typed():
    state = ScheduleRecord.from_dict(json.loads(next(s["stored"] for s in STORED if '"pending":{' in s["stored"])))
    assert state.state is Lifecycle.ACTIVE and isinstance(state.pending, Pending)
    assert isinstance(state.pending.attempts, int) and isinstance(state.pending.stop, list)
    assert state.considered_at.tzinfo is not None


def test_advance_without_a_next_fire_expires_and_completes_the_job():
    spec = validate(recurring_entity("*/5 * * * *"), T0)
    record = JobRecord(uid="u", kind="recurring", status=JobStatus.REGISTERED)
    state = new_state(spec, T0)
    state.advance(record, None, T0)
    assert state.state is Lifecycle.EXPIRED and state.due_bucket is None and state.next_fire is None
    assert record.status == JobStatus.COMPLETED and record.ended == T0


def test_of_a_record_without_a_schedule_is_none():
    assert ScheduleRecord.of(JobRecord(uid="u")) is None
