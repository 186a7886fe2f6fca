"""shared/schedules/ against a real Azurite: the due index, the tick, exactly-once, policies, lifecycle.

`schedules` is shared.schedules.operations (register, suspend, resume, unregister, preview, view, validate)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from .conftest import FakeRuns, new_record, recurring_entity, stored_record

from shared.schedules import due_index, history, operations as schedules, tick as ticking
from shared.platform.errors import Conflict, ValidationFailed
from shared.jobs.record import JobNotFound
from shared.jobs.store import store
from shared.jobs.status import JobStatus

UTC = timezone.utc
T0 = datetime(2026, 5, 3, 23, 59, 30, tzinfo=UTC)  # registration time; the day starts half a minute later


def u(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def minute(i: int, second: int = 5) -> datetime:
    """The i-th tick of 2026-05-04, a few seconds after the minute like a real timer."""
    return u(2026, 5, 4) + timedelta(minutes=i, seconds=second)


def index_rows() -> list[tuple[str, str]]:
    return sorted(
        (r["PartitionKey"], r["RowKey"])
        for r in due_index.due_table().list_entities()
        if r["PartitionKey"] != due_index.STATE_PK
    )


def tick(fake: FakeRuns, now: datetime, **kw):
    return ticking.tick(now, fake.start_run, fake.stop_run, fake.job_status_of, **kw)


def test_every_five_minutes_over_a_simulated_day_starts_288_runs(storage_env):
    fake = FakeRuns()
    record = stored_record("*/5 * * * *")
    schedules.register(record, now=T0)
    totals = {"started": 0, "read": 0, "due": 0}
    for i in range(1440):
        report = tick(fake, minute(i))
        assert not report.errors
        for key in totals:
            totals[key] += getattr(report, key)
    assert len(fake.calls) == 288 and len(set(fake.calls)) == 288
    assert fake.started_for(record.uid) == [u(2026, 5, 4) + timedelta(minutes=5 * k) for k in range(288)]
    assert totals["started"] == 288 and totals["due"] == 288
    # the state row per tick; per run its index row and the claim's read (finalize writes on the claim's ETag)
    assert totals["read"] == 1440 + 288 * 2
    assert fake.triggered == {f"Schedule ({record.uid})"}
    assert fake.templates[0]["label"] == "the template" and fake.templates[0]["runner"]["script"] == "echo hi"
    view = schedules.view(store().get(record.uid))
    assert view["counts"]["started"] == 288 and view["counts"]["missed"] == 0
    assert len(view["runs"]) == 100 and view["olderRuns"] == {"completed": 188}
    last = view["runs"][-1]
    assert last["scheduled"] == "2026-05-04T23:55:00Z" and last["started"] == "2026-05-04T23:55:05Z"
    assert last["status"] == "starting" and last["uid"] == fake.runs[(record.uid, u(2026, 5, 4, 23, 55))]
    assert view["runs"][-2]["status"] == "completed" and view["runs"][-2]["ended"] == "2026-05-04T23:55:05Z"
    assert index_rows() == [("202605050000", record.uid)]


def test_two_tickers_on_one_storage_start_each_run_once(storage_env):
    fake = FakeRuns()
    crons = ["* * * * *", "*/2 * * * *", "*/5 * * * *", "0,1,2,3 * * * *", "*/3 * * * *"] * 4
    records = [stored_record(cron) for cron in crons]
    for record in records:
        schedules.register(record, now=T0)
    minutes = 45
    barrier = threading.Barrier(2)
    reports = [[], []]

    def ticker(n: int) -> None:
        for i in range(minutes):
            barrier.wait()
            reports[n].append(tick(fake, minute(i, second=5 + n)))

    threads = [threading.Thread(target=ticker, args=(n,)) for n in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(fake.calls) == len(set(fake.calls)), "a run was started twice"
    for record, cron in zip(records, crons):
        step = {"* * * * *": 1, "*/2 * * * *": 2, "*/5 * * * *": 5, "*/3 * * * *": 3}.get(cron)
        expected = (
            [u(2026, 5, 4) + timedelta(minutes=m) for m in range(0, minutes, step)]
            if step
            else [u(2026, 5, 4) + timedelta(minutes=m) for m in range(minutes) if m % 60 in (0, 1, 2, 3)]
        )
        assert fake.started_for(record.uid) == expected, cron
    both = [r for rs in reports for r in rs]
    assert sum(r.started for r in both) == len(fake.calls)
    assert not [r.errors for r in both if r.errors]


def test_same_minute_raced_by_many_threads(storage_env):
    fake = FakeRuns()
    records = [stored_record("* * * * *") for _ in range(30)]
    for record in records:
        schedules.register(record, now=T0)
    barrier = threading.Barrier(4)

    def ticker() -> None:
        barrier.wait()
        tick(fake, minute(0))

    threads = [threading.Thread(target=ticker) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(fake.calls) == sorted((r.uid, u(2026, 5, 4)) for r in records)


def test_three_hours_down_then_one_run_and_every_missed_time_recorded(storage_env):
    fake = FakeRuns()
    record = stored_record("*/5 * * * *")
    schedules.register(record, now=T0)
    tick(fake, minute(9 * 60))  # 09:00: the first tick ever sees the 00:00 entry (hours late) ...
    assert fake.started_for(record.uid) == [u(2026, 5, 4, 9)]
    view = schedules.view(store().get(record.uid))
    assert view["counts"]["missed"] == 9 * 12  # ... and records 00:00..08:55 as missed
    report = tick(fake, minute(12 * 60 + 3, second=20))  # down from 09:01 to 12:03
    assert not report.sweep and report.due == 1 and report.started == 1 and report.missed == 35
    assert fake.started_for(record.uid) == [u(2026, 5, 4, 9), u(2026, 5, 4, 12)]
    runs = schedules.view(store().get(record.uid))["runs"]
    missed = [r["scheduled"] for r in runs if r["status"] == "missed" and (r["scheduled"] or "") > "2026-05-04T09"]
    assert len(missed) == 35 and missed[0] == "2026-05-04T09:05:00Z" and missed[-1] == "2026-05-04T11:55:00Z"
    assert tick(fake, minute(12 * 60 + 5)).started == 1  # back to normal


def test_downtime_longer_than_the_deadline_starts_nothing_late(storage_env):
    fake = FakeRuns()
    record = stored_record("0 * * * *", startingDeadlineSeconds=300)
    schedules.register(record, now=T0)
    tick(fake, minute(0))
    report = tick(fake, minute(3 * 60 + 10))  # the 03:00 fire is 10 minutes old
    assert report.started == 0 and report.missed == 3
    assert fake.started_for(record.uid) == [u(2026, 5, 4)]
    assert index_rows() == [("202605040400", record.uid)]


def test_suspend_and_resume(storage_env):
    fake = FakeRuns()
    record = stored_record("*/5 * * * *")
    schedules.register(record, now=T0)
    for i in range(11):
        tick(fake, minute(i))
    assert len(fake.calls) == 3
    view = schedules.suspend(record.uid)
    assert view["state"] == "suspended" and index_rows() == []
    schedules.suspend(record.uid)  # idempotent
    for i in range(11, 60):
        assert tick(fake, minute(i)).due == 0
    assert len(fake.calls) == 3
    resumed = schedules.resume(record.uid, now=minute(60, second=30))
    assert resumed["state"] == "active" and resumed["nextFire"] == "2026-05-04T01:05:00Z"
    assert index_rows() == [("202605040105", record.uid)]
    for i in range(61, 71):
        tick(fake, minute(i))
    assert fake.started_for(record.uid)[3:] == [u(2026, 5, 4, 1, 5), u(2026, 5, 4, 1, 10)]
    assert schedules.view(store().get(record.uid))["counts"]["missed"] == 0  # suspension is not "missed"


def test_registered_suspended(storage_env):
    record = stored_record("*/5 * * * *", suspend=True)
    assert schedules.register(record, now=T0)["state"] == "suspended"
    assert index_rows() == []
    schedules.resume(record.uid, now=T0)
    assert index_rows() == [("202605040000", record.uid)]


def test_end_date_expiry(storage_env):
    fake = FakeRuns()
    record = stored_record("*/5 * * * *", endDate="2026-05-04T00:20")
    schedules.register(record, now=T0)
    expired = []
    for i in range(40):
        expired += tick(fake, minute(i)).expired
    assert fake.started_for(record.uid) == [u(2026, 5, 4, 0, m) for m in (0, 5, 10, 15, 20)]
    assert expired == [record.uid] and index_rows() == []
    stored = store().get(record.uid)
    assert stored.status == JobStatus.COMPLETED and stored.schedule["state"] == "expired"
    with pytest.raises(Conflict):
        schedules.resume(record.uid)


def test_start_date_in_the_future_and_naive_dates_in_the_schedules_zone(storage_env):
    fake = FakeRuns()
    record = stored_record("0 * * * *", timezone="Europe/Oslo", startDate="2026-05-04T05:00")  # 03:00 UTC
    assert schedules.register(record, now=T0)["nextFire"] == "2026-05-04T03:00:00Z"
    for i in range(0, 5 * 60, 7):
        tick(fake, minute(i))
    assert fake.started_for(record.uid) == [u(2026, 5, 4, 3), u(2026, 5, 4, 4)]


@pytest.mark.parametrize(
    "schedule, message",
    [
        ({"cron": "*/5 * * *"}, "has 4 field(s)"),
        ({"cron": "0 25 * * *"}, "hour: 25 is out of range 0-23"),
        ({"cron": "*/5 * * * *", "timezone": "Europe/Osl"}, "schedule.timezone: 'Europe/Osl'"),
        ({"cron": "*/5 * * * *", "startDate": "2026-05-04T25:00"}, "schedule.startDate"),
        ({"cron": "*/5 * * * *", "endDate": "2020-01-01T00:00Z"}, "is in the past"),
        ({"cron": "*/5 * * * *", "weekdayDialect": "quartz"}, "weekdayDialect"),
    ],
)
def test_bad_schedules_are_rejected_with_nothing_stored(storage_env, schedule, message):
    from shared import service

    entity = recurring_entity(**schedule)
    with pytest.raises(ValidationFailed) as info:
        schedules.validate(entity, T0)
    assert message in info.value.message and info.value.status == 422

    class NoOrchestrations:
        def start(self, uid, input):  # pragma: no cover - a recurring job is never orchestrated
            raise AssertionError("no orchestration for a recurring job")

        def raise_stop(self, uid):  # pragma: no cover
            raise AssertionError

    with pytest.raises(ValidationFailed) as info:
        service.start_job(entity, caller=None, orchestrations=NoOrchestrations())
    assert message in info.value.message
    assert index_rows() == []
    rows, _ = store().list(None, 10, None)
    assert rows == []
    with pytest.raises(JobNotFound):
        store().get(entity.get("uid", "none"))


def test_register_through_the_service_and_get_shows_the_schedule(storage_env, monkeypatch):
    from shared.platform import clock
    from shared import service

    monkeypatch.setattr(clock, "_clock", clock.ManualClock(T0))
    fake = FakeRuns()
    result = service.start_job(
        recurring_entity("*/5 * * * *", timezone="Europe/Oslo", weekdayDialect="dmjob"),
        caller=None,
        orchestrations=None,
    )
    assert result.status == JobStatus.REGISTERED
    tick(fake, minute(6))
    body = service.get_job(result.uid)
    assert body["status"] == "registered" and body["schedule"]["timezone"] == "Europe/Oslo"
    assert body["schedule"]["weekdayDialect"] == "dmjob"
    assert [r["status"] for r in body["schedule"]["runs"]] == ["missed", "starting"]  # 6 minutes on: 2 fires


def test_forbid_skips_while_the_last_run_is_running(storage_env):
    fake = FakeRuns(status="running")
    record = stored_record("*/5 * * * *", concurrencyPolicy="Forbid")
    schedules.register(record, now=T0)
    for i in range(11):
        tick(fake, minute(i))
    first = fake.runs[(record.uid, u(2026, 5, 4))]
    assert fake.started_for(record.uid) == [u(2026, 5, 4)]
    runs = schedules.view(store().get(record.uid))["runs"]
    assert [r["status"] for r in runs] == ["running", "skipped", "skipped"]
    assert first in runs[1]["reason"]
    fake.status[first] = "completed"
    tick(fake, minute(15))
    assert fake.started_for(record.uid) == [u(2026, 5, 4), u(2026, 5, 4, 0, 15)]


def test_replace_stops_the_running_one(storage_env):
    fake = FakeRuns(status="running")
    record = stored_record("*/5 * * * *", concurrencyPolicy="Replace")
    schedules.register(record, now=T0)
    for i in range(6):
        tick(fake, minute(i))
    first, second = (fake.runs[(record.uid, t)] for t in (u(2026, 5, 4), u(2026, 5, 4, 0, 5)))
    assert fake.stopped == [first]
    runs = schedules.view(store().get(record.uid))["runs"]
    assert runs[0]["uid"] == first and "Replace" in runs[0]["stoppedBy"] and runs[1]["uid"] == second


def test_suspend_after_failures_in_a_row(storage_env):
    fake = FakeRuns(status="failed")
    record = stored_record("*/5 * * * *", suspendAfterFailures=2)
    schedules.register(record, now=T0)
    suspended = []
    for i in range(30):
        suspended += tick(fake, minute(i)).suspended
    assert len(fake.calls) == 2 and suspended == [record.uid] and index_rows() == []
    view = schedules.view(store().get(record.uid))
    assert view["state"] == "suspended" and "2 failed runs in a row" in view["suspendedReason"]
    assert schedules.resume(record.uid, now=minute(30))["consecutiveFailures"] == 0


def test_run_listener_records_the_end_at_once(storage_env):
    fake = FakeRuns(status="running")
    record = stored_record("*/5 * * * *", suspendAfterFailures=1)
    schedules.register(record, now=T0)
    tick(fake, minute(0))
    run_uid = fake.runs[(record.uid, u(2026, 5, 4))]

    class Run:
        uid = run_uid
        triggered_by = f"Schedule ({record.uid})"
        status = JobStatus.FAILED
        ended = minute(2)

    history.RUN_LISTENER.status_changed(Run())
    view = schedules.view(store().get(record.uid))
    assert view["runs"][0]["status"] == "failed" and view["runs"][0]["ended"] == "2026-05-04T00:02:05Z"
    assert view["state"] == "suspended" and index_rows() == []


def test_transient_start_failure_is_retried_once_started(storage_env):
    fake = FakeRuns()
    fake.fail_next = 1
    record = stored_record("*/5 * * * *")
    schedules.register(record, now=T0)
    first = tick(fake, minute(0))
    assert first.retried == 1 and first.started == 0
    second = tick(fake, minute(1))
    assert second.started == 1
    assert fake.calls == [(record.uid, u(2026, 5, 4))] * 2 and len(fake.runs) == 1
    assert [r["scheduled"] for r in schedules.view(store().get(record.uid))["runs"]] == ["2026-05-04T00:00:00Z"]


def test_a_crashed_claim_is_taken_over_after_the_lease(storage_env):
    fake = FakeRuns()
    record = stored_record("*/5 * * * *")
    schedules.register(record, now=T0)

    def crash_after_claim(r):  # what a tick that died between claim and start leaves behind
        r.schedule["pending"] = {
            "scheduled": "2026-05-04T00:00:00Z",
            "claimedBy": "dead",
            "attempts": 0,
            "claimedAt": "2026-05-04T00:00:05Z",
            "stop": [],
        }
        r.schedule["lastConsidered"] = "2026-05-04T00:00:05Z"

    store().update(record.uid, crash_after_claim)
    assert tick(fake, minute(1)).busy == 1 and fake.calls == []  # lease still held
    report = tick(fake, minute(3))
    assert report.started == 1 and fake.started_for(record.uid) == [u(2026, 5, 4)]
    assert index_rows() == [("202605040005", record.uid)]


def test_stale_and_orphan_index_rows_are_repaired(storage_env):
    fake = FakeRuns()
    record = stored_record("*/5 * * * *")
    schedules.register(record, now=T0)
    table = due_index.due_table()
    table.upsert_entity({"PartitionKey": "202605032355", "RowKey": record.uid})  # stale: not its bucket
    table.upsert_entity({"PartitionKey": "202605032356", "RowKey": "no-such-job"})  # orphan
    report = tick(fake, minute(0))
    assert report.stale == 2 and report.started == 1
    assert index_rows() == [("202605040005", record.uid)]


def test_unregister_stops_further_runs_and_optionally_the_running_one(storage_env):
    fake = FakeRuns(status="running")
    keep, stop = stored_record("*/5 * * * *"), stored_record("*/5 * * * *")
    for record in (keep, stop):
        schedules.register(record, now=T0)
    tick(fake, minute(0))
    message = schedules.unregister(keep.uid)
    assert "still going, not stopped" in message and fake.stopped == []
    message = schedules.unregister(stop.uid, stop_running=True, stop_run=fake.stop_run)
    assert "stopped 1 run(s)" in message and fake.stopped == [fake.runs[(stop.uid, u(2026, 5, 4))]]
    assert index_rows() == []
    assert tick(fake, minute(5)).due == 0 and len(fake.calls) == 2
    assert schedules.unregister("00000000-0000-0000-0000-000000000000") == "schedule removed"


def test_preview_in_utc_and_the_schedules_zone(storage_env):
    record = stored_record("30 2 * * *", timezone="Europe/Oslo")
    schedules.register(record, now=u(2026, 3, 27, 12))
    out = schedules.preview(record.uid, 3, now=u(2026, 3, 27, 12))
    assert out["timezone"] == "Europe/Oslo"
    assert out["fireTimes"] == [
        {"utc": "2026-03-28T01:30:00Z", "local": "2026-03-28T02:30:00+01:00", "weekday": "Saturday"},
        {"utc": "2026-03-30T00:30:00Z", "local": "2026-03-30T02:30:00+02:00", "weekday": "Monday"},  # 29th: gap
        {"utc": "2026-03-31T00:30:00Z", "local": "2026-03-31T02:30:00+02:00", "weekday": "Tuesday"},
    ]


def test_a_tick_reads_what_is_due_not_what_is_registered(storage_env):
    fake = FakeRuns()
    hourly = [new_record(f"{m} * * * *") for m in range(60) for _ in range(5)]  # 300 schedules, 5 per minute
    assert schedules.register_many(hourly, now=T0) == 300
    report = tick(fake, u(2026, 5, 4, 0, 7, 5))
    assert report.due == 5 * 8  # minutes 00..07 are due on the first tick (it sweeps)
    report = tick(fake, u(2026, 5, 4, 0, 8, 5))
    assert report.due == 5 and report.started == 5 and report.read == 1 + 5 * 2
    assert len(fake.calls) == 45 and len(set(fake.calls)) == 45
