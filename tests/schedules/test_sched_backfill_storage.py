"""Backfill steps against Azurite: several steppers at once start each fire time exactly once (the claim on the
schedule's ETag), a step of a schedule that is gone ends its driver, a refused request stores nothing."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from shared.jobs.store import store
from shared.platform.errors import ValidationFailed
from shared.schedules import operations, runs
from shared.schedules.backfill import Backfill
from shared.schedules.policy import iso
from shared.schedules.state import ScheduleRecord

from .conftest import stored_record

UTC = timezone.utc
NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


class Starts:
    """runs.start_run's stand-in: idempotent on its key like the service's, slow enough for races to show."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[str, str] = {}
        self.calls: list[str] = []

    def start_run(self, orchestrations, schedule_uid, scheduled, template, triggered_by, *, idempotency_key=None):
        key = idempotency_key or f"schedule {schedule_uid} {iso(scheduled)}"
        time.sleep(random.uniform(0, 0.02))
        with self.lock:
            self.calls.append(iso(scheduled))
            return self.by_key.setdefault(key, str(uuid.uuid4()))

    def status(self, run_uid: str) -> str:
        return "completed"


@pytest.fixture
def starts(monkeypatch):
    fake = Starts()
    monkeypatch.setattr(runs, "start_run", fake.start_run)
    monkeypatch.setattr(runs, "job_status", fake.status)
    return fake


def registered(policy: str) -> str:
    record = stored_record("0 * * * *", concurrencyPolicy=policy)
    operations.register(record, now=NOW)
    return record.uid


@pytest.mark.parametrize("policy", ["Forbid", "Allow"])
def test_concurrent_steppers_start_each_fire_time_once(storage_env, starts, policy):
    uid = registered(policy)
    reply = operations.request_backfill(uid, {"from": "2026-03-01T00:00", "to": "2026-03-01T11:00"}, "alice", now=NOW)
    assert reply["queued"] == 12
    clock = [NOW]

    def step(_):
        return runs.backfill_step(None, uid, now=clock[0])

    with ThreadPoolExecutor(4) as pool:
        for round_ in range(40):
            clock[0] = NOW + timedelta(minutes=2 * round_ + 2)  # each round: the runs before are over a minute old
            list(pool.map(step, range(4)))
            state = ScheduleRecord.of(store().get(uid))
            if not Backfill.of(state).active:
                break
    state = ScheduleRecord.of(store().get(uid))
    progress = Backfill.of(state).view(state.runs)
    started = sorted(e["scheduled"] for e in state.runs if e.get("uid"))
    assert started == [f"2026-03-01T{h:02d}:00:00Z" for h in range(12)]
    assert len({e["uid"] for e in state.runs if e.get("uid")}) == 12
    assert (progress["started"], progress["finished"], progress["queued"]) == (12, 12, 0)
    assert sorted(set(starts.calls)) == started  # a start may be retried (same key), never for another time


def test_a_step_of_a_schedule_that_is_gone_ends_its_driver(storage_env, starts):
    assert runs.safe_step(None, str(uuid.uuid4()))["active"] is False


def test_a_refused_backfill_stores_nothing(storage_env, starts):
    uid = registered("Forbid")
    before = store().get(uid).schedule
    with pytest.raises(ValidationFailed, match="at most 1000"):
        operations.request_backfill(uid, {"from": "2026-01-01T00:00", "to": "2026-03-01T00:00"}, "alice", now=NOW)
    assert store().get(uid).schedule == before
