"""shared/schedules/policy.py: the spec (validation, defaults, preserved attributes) and `decide`. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.schedules.policy import (
    Defaults,
    ScheduleError,
    ScheduleSpec,
    ScheduleState,
    apply_decision_to_runs,
    apply_status,
    decide,
    iso,
    run_entry,
    run_template,
    trim_history,
)

UTC = timezone.utc
OSLO = ZoneInfo("Europe/Oslo")
NY = ZoneInfo("America/New_York")


def u(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spec(cron="*/5 * * * *", **attrs) -> ScheduleSpec:
    return ScheduleSpec.parse({"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": cron, "runs": [], **attrs})


def state(last, running=(), failures=0, suspended=False) -> ScheduleState:
    return ScheduleState(last, tuple(running), failures, suspended)


def simulate(sp: ScheduleSpec, start: datetime, end: datetime, step=timedelta(minutes=1), jitter=timedelta(0)):
    """Tick every `step` from start to end (registered just before start); return the started times."""
    last = start - timedelta(seconds=1)
    started = []
    now = start
    while now <= end:
        d = decide(sp, state(last), now + jitter)
        if d.start:
            started.append(d.start)
        assert not d.missed  # ticking every minute misses nothing
        last = d.considered_until
        now += step
    return started


# ---- spec -------------------------------------------------------------------------------------------------
def test_defaults_and_unknown_attributes_are_kept():
    sp = spec(color="blue", runs=[{"uid": "x"}])
    assert sp.concurrency_policy == "Allow" and sp.starting_deadline_seconds == 3600
    assert sp.history_limit == 100 and sp.suspend_after_failures == 0 and sp.suspend is False
    assert sp.timezone == "UTC" and sp.weekday_dialect == "unix"
    stored = sp.to_dict()
    assert stored["color"] == "blue" and stored["type"].endswith("CronJob") and "runs" not in stored
    assert ScheduleSpec.parse(stored, Defaults(weekday_dialect="dmjob", concurrency_policy="Forbid")) == sp


def test_defaults_from_settings(monkeypatch):
    monkeypatch.setenv("SCHEDULE_WEEKDAY_DIALECT", "dmjob")
    monkeypatch.setenv("SCHEDULE_CONCURRENCY_POLICY", "Forbid")
    monkeypatch.setenv("SCHEDULE_STARTING_DEADLINE_SECONDS", "120")
    monkeypatch.setenv("SCHEDULE_HISTORY_LIMIT", "7")
    monkeypatch.setenv("SCHEDULE_SUSPEND_AFTER_FAILURES", "3")
    d = Defaults.from_settings()
    sp = ScheduleSpec.parse({"cron": "0 8 * * 6"}, d)
    assert (
        sp.weekday_dialect,
        sp.concurrency_policy,
        sp.starting_deadline_seconds,
        sp.history_limit,
        sp.suspend_after_failures,
    ) == ("dmjob", "Forbid", 120, 7, 3)
    assert sp.next_fire(u(2026, 5, 4)).strftime("%a") == "Sun"
    # the schedule's own values win
    own = ScheduleSpec.parse({"cron": "0 8 * * 6", "weekdayDialect": "unix", "concurrencyPolicy": "replace"}, d)
    assert own.weekday_dialect == "unix" and own.concurrency_policy == "Replace"
    assert own.next_fire(u(2026, 5, 4)).strftime("%a") == "Sat"


def test_bad_setting_is_reported(monkeypatch):
    monkeypatch.setenv("SCHEDULE_HISTORY_LIMIT", "lots")
    with pytest.raises(ScheduleError, match="SCHEDULE_HISTORY_LIMIT"):
        Defaults.from_settings()


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"cron": None}, "schedule.cron: required"),
        ({"cron": "61 * * * *"}, "schedule.cron '61 * * * *': minute: 61 is out of range 0-59"),
        ({"cron": "* * *"}, "schedule.cron: '* * *' has 3 field(s)"),
        ({"timezone": "Europe/Olso"}, "schedule.timezone: 'Europe/Olso' is not an IANA"),
        ({"weekdayDialect": "iso"}, "schedule.weekdayDialect: 'iso' is not one of"),
        ({"startDate": "yesterday"}, "schedule.startDate: 'yesterday' is not an ISO 8601"),
        ({"endDate": "2026-02-30T10:00"}, "schedule.endDate: '2026-02-30T10:00'"),
        ({"startDate": "2026-05-02", "endDate": "2026-05-01"}, "schedule.endDate: '2026-05-01' is before startDate"),
        ({"concurrencyPolicy": "Sometimes"}, "schedule.concurrencyPolicy: 'Sometimes' is not one of: Allow, Forbid"),
        ({"startingDeadlineSeconds": -1}, "schedule.startingDeadlineSeconds: -1 must be >= 0"),
        ({"startingDeadlineSeconds": "soon"}, "schedule.startingDeadlineSeconds: 'soon' is not a whole number"),
        ({"historyLimit": 0}, "schedule.historyLimit: 0 must be between 1 and 1000"),
        ({"suspendAfterFailures": True}, "schedule.suspendAfterFailures: True is not a whole number"),
        ({"suspend": "maybe"}, "schedule.suspend: 'maybe' is not true or false"),
    ],
)
def test_invalid_schedule_says_what_is_wrong(attrs, message):
    base = {"cron": "*/5 * * * *"}
    base.update(attrs)
    with pytest.raises(ScheduleError) as info:
        ScheduleSpec.parse(base)
    assert message in str(info.value)


def test_schedule_that_never_fires_in_its_window():
    sp = spec("0 0 29 2 *", startDate="2026-03-01", endDate="2027-12-31")
    with pytest.raises(ScheduleError, match="never fires between startDate and endDate"):
        sp.check_fires(u(2026, 1, 1))
    with pytest.raises(ScheduleError, match="endDate: '2025-01-01' is in the past"):
        spec(endDate="2025-01-01").check_fires(u(2026, 1, 1))
    assert spec("0 0 29 2 *").check_fires(u(2026, 1, 1)) == u(2028, 2, 29)


def test_numbers_as_strings_and_timezone_alias():
    sp = ScheduleSpec.parse({"cron": "0 * * * *", "historyLimit": "5", "timeZone": "Europe/Oslo", "suspend": "true"})
    assert sp.history_limit == 5 and sp.timezone == "Europe/Oslo" and sp.suspend


# ---- start / end dates ----------------------------------------------------------------------------------
def test_naive_dates_are_in_the_schedules_zone_and_inclusive():
    sp = spec("0 * * * *", timezone="Europe/Oslo", startDate="2026-06-01T10:00", endDate="2026-06-01T12:00")
    assert sp.start == u(2026, 6, 1, 8) and sp.end == u(2026, 6, 1, 10)
    times = [t["local"] for t in sp.preview(10, u(2026, 5, 1))]
    assert times == ["2026-06-01T10:00:00+02:00", "2026-06-01T11:00:00+02:00", "2026-06-01T12:00:00+02:00"]


def test_offset_dates_are_exact():
    sp = spec(
        "0 * * * *", timezone="Europe/Oslo", startDate="2026-06-01T10:00:00Z", endDate="2026-06-01T11:30:00+00:00"
    )
    assert [t["utc"] for t in sp.preview(10, u(2026, 5, 1))] == ["2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z"]


def test_nothing_before_start_and_expiry_after_end():
    sp = spec("0 * * * *", startDate="2026-06-01T10:00:00Z", endDate="2026-06-01T12:00:00Z")
    early = decide(sp, state(u(2026, 6, 1, 8)), u(2026, 6, 1, 9, 30))
    assert early.start is None and not early.missed and early.next_fire == u(2026, 6, 1, 10) and not early.expired
    at_start = decide(sp, state(u(2026, 6, 1, 9, 30)), u(2026, 6, 1, 10, 0, 3))
    assert at_start.start == u(2026, 6, 1, 10)
    last = decide(sp, state(u(2026, 6, 1, 11, 0, 3)), u(2026, 6, 1, 12, 0, 2))
    assert last.start == u(2026, 6, 1, 12) and last.next_fire is None and last.expired
    after = decide(sp, state(u(2026, 6, 1, 12, 0, 2)), u(2026, 6, 1, 15))
    assert after.start is None and not after.missed and after.expired


def test_registered_in_the_middle_of_the_window_does_not_backfill():
    sp = spec("*/5 * * * *", startDate="2026-01-01T00:00:00Z")
    d = decide(sp, state(u(2026, 6, 1, 12, 2)), u(2026, 6, 1, 12, 3))
    assert d.start is None and not d.missed and d.next_fire == u(2026, 6, 1, 12, 5)


# ---- simulated days (DST) -------------------------------------------------------------------------------
def test_every_five_minutes_for_a_day_is_288_runs():
    started = simulate(
        spec("*/5 * * * *"), u(2026, 5, 4), u(2026, 5, 5) - timedelta(minutes=1), jitter=timedelta(seconds=7)
    )
    assert len(started) == 288 and len(set(started)) == 288


@pytest.mark.parametrize(
    "zone, day, expected",
    [
        ("Europe/Oslo", (2026, 3, 29), 0),  # spring: 02:30 does not exist that day
        ("Europe/Oslo", (2026, 10, 25), 1),  # autumn: 02:30 exists twice, runs once
        ("Europe/Oslo", (2026, 6, 1), 1),
        ("America/New_York", (2026, 3, 8), 0),
        ("America/New_York", (2026, 11, 1), 1),
    ],
)
def test_daily_run_at_0230_on_dst_days(zone, day, expected):
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz).astimezone(UTC)
    started = simulate(spec("30 2 * * *", timezone=zone), start, start + timedelta(hours=23, minutes=59))
    assert len(started) == expected


def test_hourly_on_dst_days_in_oslo():
    start = datetime(2026, 10, 25, tzinfo=OSLO).astimezone(UTC)
    autumn = simulate(spec("0 * * * *", timezone="Europe/Oslo"), start, start + timedelta(hours=24, minutes=59))
    assert len(autumn) == 24  # the day has 25 hours; 02:00 runs once
    start = datetime(2026, 3, 29, tzinfo=OSLO).astimezone(UTC)
    spring = simulate(spec("0 * * * *", timezone="Europe/Oslo"), start, start + timedelta(hours=22, minutes=59))
    assert len(spring) == 23


# ---- missed runs ------------------------------------------------------------------------------------------
def test_three_hours_down_then_one_run_and_missed_recorded():
    sp = spec("*/5 * * * *")
    last = u(2026, 5, 4, 9, 0, 5)  # the 09:00 run was handled
    now = u(2026, 5, 4, 12, 0, 20)  # back after 3 hours
    d = decide(sp, state(last), now)
    assert d.start == u(2026, 5, 4, 12, 0)
    assert len(d.missed) == 35 and d.missed[0] == u(2026, 5, 4, 9, 5) and d.missed[-1] == u(2026, 5, 4, 11, 55)
    assert d.missed_more == 0 and d.missed_total == 35
    assert d.considered_until == now and d.next_fire == u(2026, 5, 4, 12, 5)
    following = decide(sp, state(d.considered_until), u(2026, 5, 4, 12, 5, 1))
    assert following.start == u(2026, 5, 4, 12, 5) and not following.missed


def test_latest_missed_beyond_the_deadline_is_missed_too():
    sp = spec("0 * * * *", startingDeadlineSeconds=600)
    d = decide(sp, state(u(2026, 5, 4, 9, 0, 5)), u(2026, 5, 4, 12, 30))
    assert d.start is None and d.missed == (u(2026, 5, 4, 10), u(2026, 5, 4, 11), u(2026, 5, 4, 12))
    d = decide(sp, state(u(2026, 5, 4, 9, 0, 5)), u(2026, 5, 4, 12, 9))
    assert d.start == u(2026, 5, 4, 12) and d.missed == (u(2026, 5, 4, 10), u(2026, 5, 4, 11))


def test_a_month_down_never_blocks_and_caps_what_is_recorded():
    sp = spec("* * * * *")
    d = decide(sp, state(u(2026, 4, 1)), u(2026, 5, 1, 0, 0, 30), missed_record_limit=50, missed_count_cap=1000)
    assert d.start == u(2026, 5, 1)
    assert len(d.missed) == 50 and d.missed[-1] == u(2026, 4, 30, 23, 59)
    assert d.missed_more == 1000 and d.missed_more_capped
    exact = decide(sp, state(u(2026, 4, 30, 23)), u(2026, 5, 1, 0, 0, 30), missed_record_limit=50)
    assert exact.missed_total == 59 and not exact.missed_more_capped and exact.missed_more == 9


def test_late_tick_within_deadline_starts_the_run():
    sp = spec("*/5 * * * *", startingDeadlineSeconds=60)
    assert decide(sp, state(u(2026, 5, 4, 9, 0, 1)), u(2026, 5, 4, 9, 5, 50)).start == u(2026, 5, 4, 9, 5)
    late = decide(sp, state(u(2026, 5, 4, 9, 0, 1)), u(2026, 5, 4, 9, 6, 30))
    assert late.start is None and late.missed == (u(2026, 5, 4, 9, 5),)


# ---- concurrency policy, suspension -----------------------------------------------------------------------
def test_allow_forbid_replace():
    now = u(2026, 5, 4, 9, 5, 3)
    last = u(2026, 5, 4, 9, 0, 3)
    allow = decide(spec(), state(last, running=["r1"]), now)
    assert allow.start == u(2026, 5, 4, 9, 5) and allow.stop == ()
    forbid = decide(spec(concurrencyPolicy="Forbid"), state(last, running=["r1"]), now)
    assert forbid.start is None and forbid.skipped == u(2026, 5, 4, 9, 5) and "r1" in forbid.skip_reason
    assert forbid.considered_until == now and forbid.next_fire == u(2026, 5, 4, 9, 10)
    free = decide(spec(concurrencyPolicy="Forbid"), state(last), now)
    assert free.start == u(2026, 5, 4, 9, 5) and free.skipped is None
    replace = decide(spec(concurrencyPolicy="Replace"), state(last, running=["r1", "r2"]), now)
    assert replace.start == u(2026, 5, 4, 9, 5) and replace.stop == ("r1", "r2")


def test_suspended_and_suspend_after_failures():
    now = u(2026, 5, 4, 9, 5, 3)
    last = u(2026, 5, 4, 9, 0, 3)
    assert decide(spec(), state(last, suspended=True), now).start is None
    two = spec(suspendAfterFailures=2)
    assert decide(two, state(last, failures=1), now).start == u(2026, 5, 4, 9, 5)
    stop = decide(two, state(last, failures=2), now)
    assert stop.suspend and stop.start is None and "2 failed runs in a row" in stop.suspend_reason


# ---- history helpers --------------------------------------------------------------------------------------
def test_history_trim_counts_older_and_keeps_running():
    runs = [run_entry(f"r{i}", u(2026, 5, 4, 9, i), "completed" if i % 2 else "failed") for i in range(10)]
    runs[0]["status"] = "running"
    kept, older = trim_history(runs, 4, {"completed": 5})
    assert len(kept) == 4 and kept[0]["uid"] == "r0" and [r["uid"] for r in kept[1:]] == ["r7", "r8", "r9"]
    assert older == {"completed": 5 + 3, "failed": 3}


def test_apply_status_counts_failures_in_a_row():
    runs = [run_entry("a", u(2026, 1, 1), "running"), run_entry("b", u(2026, 1, 1, 0, 5), "starting")]
    changed, n = apply_status(runs, "a", "failed", u(2026, 1, 1, 0, 3), 0)
    assert changed and n == 1 and runs[0]["ended"] == "2026-01-01T00:03:00Z"
    assert apply_status(runs, "a", "completed", None, n) == (False, 1)  # final stays final
    assert apply_status(runs, "b", "running", None, n) == (True, 1)
    assert apply_status(runs, "b", "completed", u(2026, 1, 1, 0, 9), n) == (True, 0)
    assert apply_status(runs, "zzz", "failed", None, 4) == (False, 4)


def test_missed_and_skipped_entries():
    d = decide(
        spec(concurrencyPolicy="Forbid"),
        state(u(2026, 5, 4, 9, 0, 3), running=["r1"]),
        u(2026, 5, 4, 9, 20, 3),
        missed_record_limit=2,
    )
    runs = apply_decision_to_runs([], d)
    assert [(r["status"], r.get("scheduled"), r.get("count")) for r in runs] == [
        ("missed", None, 1),
        ("missed", iso(u(2026, 5, 4, 9, 10)), None),
        ("missed", iso(u(2026, 5, 4, 9, 15)), None),
        ("skipped", iso(u(2026, 5, 4, 9, 20)), None),
    ]


def test_run_template():
    template = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "uid": "old",
        "status": "completed",
        "result": {},
        "applicationInput": {"type": "dmss://system/SIMOS/Reference", "address": "~.~.~.sce"},
    }
    run = run_template(template, "S1", deeper=True)
    assert run["triggeredBy"] == "Schedule (S1)" and run["status"] == "not started" and "uid" not in run
    assert run["applicationInput"]["address"] == "~.~.~.~.sce" and template["uid"] == "old"
    assert run_template(template, "S1")["applicationInput"]["address"] == "~.~.~.sce"
