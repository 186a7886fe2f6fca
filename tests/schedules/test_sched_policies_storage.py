"""BufferOne, jitter and several expressions through the tick, the run listener and the due index on Azurite."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from .conftest import FakeRuns, stored_record

from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.clock import ManualClock
from shared.schedules import due_index, history, operations as schedules, tick as ticking

UTC = timezone.utc
T0 = datetime(2026, 5, 3, 23, 59, 30, tzinfo=UTC)


def minute(i: int, second: int = 5) -> datetime:
    return datetime(2026, 5, 4, tzinfo=UTC) + timedelta(minutes=i, seconds=second)


def tick(fake: FakeRuns, now: datetime):
    report = ticking.tick(now, fake.start_run, fake.stop_run, fake.job_status_of)
    assert not report.errors, report.errors
    return report


def rows_of(uid: str) -> list[str]:
    return sorted(r["PartitionKey"] for r in due_index.due_table().list_entities() if r["RowKey"] == uid)


@pytest.fixture
def manual_clock():
    before = clock.get_clock()
    replaced = ManualClock(T0)
    clock.set_clock(replaced)
    yield replaced
    clock.set_clock(before)


class Run:
    """What the job store hands the lifecycle listener: a run's record after a status change."""

    def __init__(self, uid: str, schedule_uid: str, status: JobStatus, ended: datetime):
        self.uid, self.triggered_by, self.status, self.ended = uid, f"Schedule ({schedule_uid})", status, ended


def test_buffer_one_waits_skips_and_starts_the_waiting_run_once_when_the_listener_hears_the_end(
    storage_env, manual_clock
):
    fake = FakeRuns(status="running")
    record = stored_record("*/5 * * * *", concurrencyPolicy="BufferOne")
    schedules.register(record, now=T0)
    tick(fake, minute(0))  # starts 00:00
    first = fake.runs[(record.uid, minute(0, 0))]
    tick(fake, minute(5))  # 00:05 waits
    view = schedules.view(store().get(record.uid))
    assert view["waiting"]["scheduled"] == "2026-05-04T00:05:00Z" and view["concurrencyPolicy"] == "BufferOne"
    assert rows_of(record.uid) == ["202605040010"]  # the next fire is sooner than the recheck
    tick(fake, minute(10))  # 00:10 skipped: one waits already
    skipped = [r for r in schedules.view(store().get(record.uid))["runs"] if r["status"] == "skipped"]
    assert [r["scheduled"] for r in skipped] == ["2026-05-04T00:10:00Z"]
    assert skipped[0]["reason"] == (
        f"concurrencyPolicy BufferOne: run {first} still running and the fire of 2026-05-04T00:05:00Z already waiting"
    )
    assert rows_of(record.uid) == ["202605040015"]
    # the first run ends at 00:12:40; the listener makes the schedule due in that minute
    manual_clock.set(minute(12, 40))
    fake.status[first] = "completed"
    history.RUN_LISTENER.status_changed(Run(first, record.uid, JobStatus.COMPLETED, minute(12, 40)))
    assert rows_of(record.uid) == ["202605040012"]
    assert store().get(record.uid).schedule["dueBucket"] == "202605040012"
    assert [r["nextFire"] for r in due_index.due_table().list_entities() if r["RowKey"] == record.uid] == [
        "2026-05-04T00:12:00Z"  # when the row is due: its bucket's minute, not the schedule's next fire
    ]
    # two hosts tick the next minute at once: the waiting run starts once
    barrier = threading.Barrier(2)

    def ticker():
        barrier.wait()
        ticking.tick(minute(13, 0), fake.start_run, fake.stop_run, fake.job_status_of)

    threads = [threading.Thread(target=ticker) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert fake.started_for(record.uid) == [minute(0, 0), minute(5, 0)]
    assert [c for c in fake.calls if c == (record.uid, minute(5, 0))] == [(record.uid, minute(5, 0))]
    view = schedules.view(store().get(record.uid))
    second = next(r for r in view["runs"] if r["scheduled"] == "2026-05-04T00:05:00Z")
    assert second["waitedSince"] == "2026-05-04T00:05:05Z" and second["started"] == "2026-05-04T00:13:00Z"
    assert "waiting" not in view and rows_of(record.uid) == ["202605040015"]
    assert view["counts"]["skipped"] == 1


def test_a_waiting_run_starts_within_the_recheck_when_the_listener_missed_the_end(storage_env):
    fake = FakeRuns(status="running")
    record = stored_record("0 * * * *", concurrencyPolicy="BufferOne")
    schedules.register(record, now=T0)
    tick(fake, minute(0))
    tick(fake, minute(60))  # 01:00 waits; the next fire is an hour away, the recheck five minutes
    assert rows_of(record.uid) == ["202605040105"]
    tick(fake, minute(65))  # still running: looked at again in five minutes
    assert rows_of(record.uid) == ["202605040110"]
    fake.status[fake.runs[(record.uid, minute(0, 0))]] = "completed"  # nobody told the listener
    report = tick(fake, minute(70))
    assert report.started == 1 and fake.started_for(record.uid) == [minute(0, 0), minute(60, 0)]
    assert rows_of(record.uid) == ["202605040200"]


def test_jitter_puts_the_due_index_on_the_shifted_time_and_runs_record_both(storage_env):
    fake = FakeRuns()
    record = stored_record("0 * * * *", jitterSeconds=3000)
    registered = schedules.register(record, now=T0)
    spec = schedules.validate(record.entity, T0).seeded(record.uid)
    fires = list(spec.fires(T0, limit=3))
    assert registered["nextFire"] == ticking.iso(fires[0].at) and registered["jitterSeconds"] == 3000
    assert rows_of(record.uid) == [due_index.bucket(fires[0].at)]
    preview = schedules.preview(record.uid, 3, now=T0)["fireTimes"]
    assert [(p["utc"], p["nominal"]) for p in preview] == [(ticking.iso(f.at), ticking.iso(f.nominal)) for f in fires]
    for fire in fires[:2]:  # tick the minute before (nothing), in the minute before the time, the minute after
        before = tick(fake, fire.at.replace(second=0) - timedelta(seconds=55))
        assert before.started == 0 and before.not_yet == 0
        if fire.at.second >= 1:  # due later in this minute: the query returns neither its row nor the schedule
            early = tick(fake, fire.at - timedelta(seconds=1))
            assert (early.started, early.due, early.read) == (0, 0, 1)
        report = tick(fake, fire.at.replace(second=0) + timedelta(seconds=60))
        assert report.started == 1 and report.read == 3  # state row, index row, the schedule
    runs = schedules.view(store().get(record.uid))["runs"]
    assert [(r["scheduled"], r["actual"]) for r in runs] == [
        (ticking.iso(f.nominal), ticking.iso(f.at)) for f in fires[:2]
    ]
    assert fake.started_for(record.uid) == [f.nominal for f in fires[:2]]  # started under the nominal time


def test_a_list_fires_once_per_shared_time_and_says_which_expression(storage_env):
    fake = FakeRuns()
    record = stored_record(["*/2 * * * *", "*/3 * * * *"])
    schedules.register(record, now=T0)
    for i in range(7):
        tick(fake, minute(i))
    assert [t.minute for t in fake.started_for(record.uid)] == [0, 2, 3, 4, 6]
    view = schedules.view(store().get(record.uid))
    assert view["cron"] == ["*/2 * * * *", "*/3 * * * *"]
    expressions = [r["expression"] for r in view["runs"]]
    assert expressions == ["*/2 * * * *", "*/2 * * * *", "*/3 * * * *", "*/2 * * * *", "*/2 * * * *"]
    assert list(schedules.preview(record.uid, 2, now=minute(6))["cron"]) == ["*/2 * * * *", "*/3 * * * *"]
