"""BufferOne, jitter and several cron expressions: the pure parts (shared/schedules/cron.py, policy.py, state.py,
history.py's due-at-once rule), exhaustively where the space is small, by simulation where it is not."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.schedules import history
from shared.schedules.cron import MAX_EXPRESSIONS, CronSchedule, CronSet, jitter_offset
from shared.schedules.operations import invalid_schedule, new_state
from shared.schedules.policy import (
    ScheduleError,
    ScheduleSpec,
    ScheduleState,
    apply_decision_to_runs,
    decide,
    iso,
    waiting_entry,
)
from shared.schedules.state import WAITING_RECHECK, Pending, ScheduleRecord

UTC = timezone.utc
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)


def u(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spec(cron="* * * * *", seed="sched-1", **attrs) -> ScheduleSpec:
    return ScheduleSpec.parse({"cron": cron, **attrs}).seeded(seed)


# ---- several expressions ----------------------------------------------------------------------------------
WEEKDAYS_AT_8_SATURDAYS_AT_10 = ["0 8 * * 1-5", "0 10 * * 6"]


def test_a_list_fires_at_the_union_of_its_expressions():
    crons = CronSet.parse(WEEKDAYS_AT_8_SATURDAYS_AT_10, "Europe/Oslo")
    until = MONDAY + timedelta(days=28)
    expected = sorted(
        set(
            itertools.chain.from_iterable(
                CronSchedule.parse(c, "Europe/Oslo").fire_times(MONDAY, until) for c in WEEKDAYS_AT_8_SATURDAYS_AT_10
            )
        )
    )
    assert list(crons.fire_times(MONDAY, until)) == expected and len(expected) == 4 * 6
    assert list(crons.fire_times_backwards(until, MONDAY)) == expected[::-1]
    assert [crons.next_fire(t - timedelta(seconds=1)) for t in expected] == expected
    assert crons.prev_fire(expected[3]) == expected[2]
    assert crons.last_fire_at_or_before(expected[5] + timedelta(seconds=59)) == expected[5]
    saturdays = [t for t in expected if t.astimezone(crons.zone).weekday() == 5]
    assert {crons.which(t) for t in saturdays} == {"0 10 * * 6"} and len(saturdays) == 4
    assert crons.expression == tuple(WEEKDAYS_AT_8_SATURDAYS_AT_10) and crons.shown == WEEKDAYS_AT_8_SATURDAYS_AT_10


def test_a_time_two_expressions_share_fires_once_and_names_the_first():
    crons = CronSet.parse(["0 8 * * 1", "0 8 * * *", "*/30 8 * * *"])
    times = list(crons.fire_times(MONDAY, MONDAY + timedelta(days=2)))
    assert times == [u(2026, 3, 2, 8), u(2026, 3, 2, 8, 30), u(2026, 3, 3, 8), u(2026, 3, 3, 8, 30)]
    assert [crons.which(t) for t in times] == ["0 8 * * 1", "*/30 8 * * *", "0 8 * * *", "*/30 8 * * *"]
    assert list(crons.fire_times(MONDAY, limit=3)) == times[:3]
    assert list(crons.fire_times_backwards(u(2026, 3, 4), limit=2)) == times[:1:-1]


def test_one_string_is_the_schedule_it_was():
    one = CronSet.parse("*/5 * * * *")
    assert one.expression == "*/5 * * * *" and one.shown == "*/5 * * * *" and one.expressions == ("*/5 * * * *",)
    assert list(one.fire_times(MONDAY, limit=3)) == list(CronSchedule.parse("*/5 * * * *").fire_times(MONDAY, limit=3))
    listed = spec(["*/5 * * * *"])
    assert listed.listed and not spec("*/5 * * * *").listed


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ([], "schedule.cron: an empty list"),
        (["0 8 * * *"] * (MAX_EXPRESSIONS + 1), f"at most {MAX_EXPRESSIONS}"),
        (["0 8 * * *", "61 * * * *"], "schedule.cron[1] '61 * * * *': minute: 61 is out of range"),
        (["0 8 * * *", 5], "schedule.cron[1]: 5 is not a cron string"),
        (["0 8 * * *", ""], "schedule.cron[1]: empty"),
        ({"a": 1}, "schedule.cron: required"),
        (["0 8 31 2 *"], "schedule.cron[0]: '0 8 31 2 *' never fires"),
    ],
)
def test_bad_lists_are_refused_naming_the_item(cron, says):
    with pytest.raises(ScheduleError) as error:
        spec(cron)
    assert says in str(error.value)
    refusal = invalid_schedule(str(error.value))
    assert refusal.status == 422 and refusal.data["attribute"] == "schedule.cron"


def test_a_bad_field_in_a_listed_expression_is_named():
    with pytest.raises(ScheduleError) as error:
        spec(["0 8 * * *", "0 24 * * *"])
    assert invalid_schedule(str(error.value)).data == {
        "schedule": str(error.value),
        "attribute": "schedule.cron",
        "field": "hour",
    }


def test_a_list_keeps_its_dialect_per_expression():
    sp = spec(["0 8 * * 6", "0 9 * * 0"], weekdayDialect="dmjob")  # Sunday at 8, Monday at 9
    fires = list(sp.fires(MONDAY - timedelta(days=2), MONDAY + timedelta(days=1)))
    assert [(f.nominal, f.expression) for f in fires] == [
        (u(2026, 3, 1, 8), "0 8 * * 6"),
        (u(2026, 3, 2, 9), "0 9 * * 0"),
    ]


# ---- jitter -----------------------------------------------------------------------------------------------
def test_the_offset_is_deterministic_bounded_and_below_the_gap():
    t = u(2026, 3, 2, 10)
    assert jitter_offset("a", t, 300, 3600) == jitter_offset("a", t, 300, 3600)
    offsets = [jitter_offset(str(uuid.UUID(int=i)), t, 300, 3600) for i in range(2000)]
    assert min(offsets) == 0 and max(offsets) == 300 and len(set(offsets)) == 301  # every second used
    assert all(jitter_offset(str(i), t, 300, 60) <= 59 for i in range(500))  # never at or past the next fire
    assert {jitter_offset(str(i), t, 300, 1) for i in range(50)} == {0}
    assert jitter_offset("a", t, 0, 60) == 0 and 0 <= jitter_offset("a", t, 300, None) <= 300
    assert len({jitter_offset("same", t + timedelta(hours=h), 3000, 3600) for h in range(50)}) > 40  # per fire


@pytest.mark.parametrize("cron", ["* * * * *", "*/7 * * * *", "0 * * * *", ["0 8 * * *", "1 8 * * *", "30 8 * * *"]])
@pytest.mark.parametrize("jitter", [0, 1, 59, 90, 600])
def test_jittered_fires_keep_their_order_and_never_pass_the_next(cron, jitter):
    sp = spec(cron, jitterSeconds=jitter)
    nominal = list(sp.cron.fire_times(MONDAY, limit=40))
    fires = [sp.fire(t) for t in nominal]
    assert [f.nominal for f in fires] == nominal
    for fire, following in zip(fires, fires[1:]):
        assert fire.nominal <= fire.at <= fire.nominal + timedelta(seconds=jitter)
        assert fire.at < following.nominal and fire.at < following.at
    after = fires[3].at - timedelta(microseconds=1)
    assert list(sp.fires(after, fires[-1].at)) == fires[3:]
    assert list(sp.fires_backwards(fires[-1].at, after)) == fires[3:][::-1]
    assert sp.next_due(fires[5].at) == fires[6].at and sp.next_fire(fires[5].nominal) == fires[6].nominal
    assert [p["utc"] for p in sp.preview(4, after)] == [iso(f.at) for f in fires[3:7]]


def test_a_nominal_time_before_now_may_still_be_due_after_it():
    sp = spec("0 * * * *", jitterSeconds=3000)
    fire = next(
        f for f in (sp.fire(MONDAY + timedelta(hours=h)) for h in range(48)) if f.at - f.nominal > timedelta(minutes=2)
    )
    just_after_nominal = fire.nominal + timedelta(minutes=1)
    assert sp.next_due(just_after_nominal) == fire.at and sp.next_fire(just_after_nominal) > fire.at


def test_every_host_computes_the_same_and_schedules_spread():
    a, b = spec("0 * * * *", jitterSeconds=600), spec("0 * * * *", jitterSeconds=600)
    assert [f.at for f in a.fires(MONDAY, limit=24)] == [f.at for f in b.fires(MONDAY, limit=24)]
    many = [
        spec("0 * * * *", seed=str(uuid.UUID(int=i)), jitterSeconds=600).fire(u(2026, 3, 2, 10)) for i in range(300)
    ]
    seconds = sorted((f.at - f.nominal).total_seconds() for f in many)
    assert seconds[0] < 30 and seconds[-1] > 570 and len({s // 60 for s in seconds}) >= 10  # all ten minutes used


def test_start_and_end_bound_the_nominal_times():
    sp = spec("*/10 * * * *", jitterSeconds=500, startDate="2026-03-02T10:00:00Z", endDate="2026-03-02T11:00:00Z")
    fires = list(sp.fires(MONDAY, MONDAY + timedelta(days=1)))
    assert [f.nominal for f in fires] == [u(2026, 3, 2, 10, m) for m in range(0, 60, 10)] + [u(2026, 3, 2, 11)]
    assert sp.next_due(fires[-1].at) is None and sp.check_fires(MONDAY) == fires[0].at


@pytest.mark.parametrize("value", [-1, 86_401, 10**12, "soon", True, None, 1.5])
def test_bad_jitter_is_refused_naming_the_attribute(value):
    with pytest.raises(ScheduleError) as error:
        spec(jitterSeconds=value)
    assert invalid_schedule(str(error.value)).data["attribute"] == "schedule.jitterSeconds"


def test_jitter_is_stored_with_the_schedule_and_only_when_given():
    assert spec(jitterSeconds="30").to_dict()["jitterSeconds"] == 30
    assert "jitterSeconds" not in spec().to_dict() and spec().jitter_seconds == 0
    assert ScheduleSpec.parse(spec(jitterSeconds=30).to_dict()) == spec(jitterSeconds=30, seed="")


def test_ticking_every_minute_with_jitter_starts_each_fire_once_after_its_time():
    sp = spec("*/5 * * * *", jitterSeconds=400)
    last, started, now = MONDAY, [], MONDAY
    while now < MONDAY + timedelta(hours=6):
        now += timedelta(minutes=1)
        d = decide(sp, ScheduleState(last), now)
        assert not d.missed
        if d.start:
            started.append((d.start, d.fields(d.start)["actual"], now))
        last = d.considered_until
    assert [s for s, _, _ in started] == list(
        sp.cron.fire_times(MONDAY - timedelta(seconds=1), now - timedelta(minutes=2))
    )[: len(started)]
    assert len(started) >= 71
    for _, actual, at in started:
        assert timedelta(0) <= at - datetime.fromisoformat(actual.replace("Z", "+00:00")) < timedelta(minutes=1)


def test_a_late_jittered_fire_is_missed_by_its_actual_time():
    sp = spec("0 * * * *", jitterSeconds=1800, startingDeadlineSeconds=60)
    fire = sp.fire(u(2026, 3, 2, 10))
    on_time = decide(sp, ScheduleState(u(2026, 3, 2, 9, 59)), fire.at + timedelta(seconds=59))
    late = decide(sp, ScheduleState(u(2026, 3, 2, 9, 59)), fire.at + timedelta(seconds=61))
    assert on_time.start == fire.nominal and on_time.fields(fire.nominal) == {"actual": iso(fire.at)}
    assert late.start is None and late.missed == (fire.nominal,)
    entries = apply_decision_to_runs([], late)
    assert entries == [
        {
            "uid": None,
            "scheduled": iso(fire.nominal),
            "started": None,
            "status": "missed",
            "ended": None,
            "actual": iso(fire.at),
        }
    ]


def test_a_listed_fire_records_its_expression_in_the_history():
    sp = spec(["0 8 * * 1-5", "0 10 * * 6"], concurrencyPolicy="Forbid")
    d = decide(sp, ScheduleState(u(2026, 3, 7, 9), running=("r1",)), u(2026, 3, 7, 10, 0, 5))
    assert d.skipped == u(2026, 3, 7, 10)
    (entry,) = apply_decision_to_runs([], d)
    assert entry["expression"] == "0 10 * * 6" and entry["reason"].startswith("concurrencyPolicy Forbid")
    preview = sp.preview(3, u(2026, 3, 6, 9))
    assert [(p["utc"], p["expression"]) for p in preview] == [
        ("2026-03-07T10:00:00Z", "0 10 * * 6"),
        ("2026-03-09T08:00:00Z", "0 8 * * 1-5"),
        ("2026-03-10T08:00:00Z", "0 8 * * 1-5"),
    ]
    jittered = spec(jitterSeconds=5).preview(1, MONDAY + timedelta(seconds=30))[0]
    assert (
        "nominal" not in preview[0] and jittered["nominal"] == iso(u(2026, 3, 2, 0, 1)) and "expression" not in jittered
    )


# ---- BufferOne: every combination of (run going, fire waiting, fire due) ---------------------------------------
BUFFER = spec("*/10 * * * *", concurrencyPolicy="BufferOne", startingDeadlineSeconds=120)
LAST = u(2026, 3, 2, 9, 55)
WAITING = waiting_entry(BUFFER, BUFFER.fire(u(2026, 3, 2, 9, 50)), u(2026, 3, 2, 9, 50, 5))
DUE_AT = {"none": u(2026, 3, 2, 9, 58), "on time": u(2026, 3, 2, 10, 0, 5), "late": u(2026, 3, 2, 10, 5)}
TEN = u(2026, 3, 2, 10)
NINE_FIFTY = u(2026, 3, 2, 9, 50)


# (running, waiting, due) -> (start, waiting after, skipped, missed)
EXPECTED = {
    (False, False, "none"): (None, None, None, ()),
    (False, False, "on time"): (TEN, None, None, ()),
    (False, False, "late"): (None, None, None, (TEN,)),
    (False, True, "none"): (NINE_FIFTY, None, None, ()),
    (False, True, "on time"): (NINE_FIFTY, TEN, None, ()),
    (False, True, "late"): (NINE_FIFTY, None, None, (TEN,)),
    (True, False, "none"): (None, None, None, ()),
    (True, False, "on time"): (None, TEN, None, ()),
    (True, False, "late"): (None, None, None, (TEN,)),
    (True, True, "none"): (None, NINE_FIFTY, None, ()),
    (True, True, "on time"): (None, NINE_FIFTY, TEN, ()),
    (True, True, "late"): (None, NINE_FIFTY, None, (TEN,)),
}


@pytest.mark.parametrize(("running", "waiting", "due"), sorted(EXPECTED))
def test_buffer_one_in_every_case(running, waiting, due):
    state = ScheduleState(LAST, ("run-1",) if running else (), waiting=WAITING if waiting else None)
    d = decide(BUFFER, state, DUE_AT[due])
    start, waiting_after, skipped, missed = EXPECTED[(running, waiting, due)]
    assert (d.start, d.skipped, d.missed, d.stop) == (start, skipped, missed, ())
    assert (d.waiting or {}).get("scheduled") == iso(waiting_after)
    if skipped:
        assert d.skip_reason == (
            "concurrencyPolicy BufferOne: run run-1 still running and the fire of 2026-03-02T09:50:00Z already waiting"
        )
    if start == NINE_FIFTY:
        assert d.fields(start) == {"waitedSince": "2026-03-02T09:50:05Z"}
    if waiting_after == TEN:
        assert d.waiting == {"scheduled": iso(TEN), "since": iso(DUE_AT[due])}


def test_a_waiting_fire_survives_suspension_and_failure_counts():
    state = ScheduleState(LAST, (), 0, suspended=True, waiting=WAITING)
    assert decide(BUFFER, state, DUE_AT["on time"]).waiting == WAITING
    failing = ScheduleSpec.parse({**BUFFER.to_dict(), "suspendAfterFailures": 2})
    d = decide(failing, ScheduleState(LAST, (), 2, waiting=WAITING), DUE_AT["on time"])
    assert d.suspend and d.waiting == WAITING and d.start is None


def simulate_buffer_one(duration: timedelta, hours: int = 3):
    """Ticks every minute; a run started at t ends at t + duration (the tick sees it ended from then on)."""
    sp = spec("*/5 * * * *", concurrencyPolicy="BufferOne", jitterSeconds=90)
    last, now, runs, waiting_at_most, history_ = MONDAY, MONDAY, [], 0, []
    while now < MONDAY + timedelta(hours=hours):
        now += timedelta(minutes=1)
        going = tuple(uid for uid, _, ends in runs if ends > now)
        d = decide(sp, ScheduleState(last, going, waiting=history_[-1] if history_ else None), now)
        assert not (d.start and going), "started while a run was going"
        if d.start:
            runs.append((f"run-{len(runs)}", d.start, now + duration))
        if d.skipped:
            assert going and d.waiting is not None
        history_.append(d.waiting)
        waiting_at_most = max(waiting_at_most, 1 if d.waiting else 0)
        last = d.considered_until
    return sp, runs, history_


def test_buffer_one_runs_back_to_back_and_never_overlaps():
    sp, runs, waits = simulate_buffer_one(timedelta(minutes=7))
    for (_, _, ends), (_, _, next_ends) in zip(runs, runs[1:]):
        assert next_ends - ends >= timedelta(minutes=7)  # one after another
    starts = [s for _, s, _ in runs]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    # runs of 7 minutes every 5: each run's end is followed by the waiting one at the next tick
    gaps = [(b[2] - timedelta(minutes=7)) - a[2] for a, b in zip(runs, runs[1:])]
    assert all(timedelta(0) <= g <= timedelta(minutes=1) for g in gaps)


def test_buffer_one_with_short_runs_is_allow():
    sp, runs, waits = simulate_buffer_one(timedelta(minutes=2))
    assert [s for _, s, _ in runs] == [f.nominal for f in sp.fires(MONDAY, MONDAY + timedelta(hours=3))]
    assert not any(waits)


# ---- the state record and the listener's rule ----------------------------------------------------------------
def record_with(state: ScheduleRecord) -> JobRecord:
    return JobRecord(uid="sched-1", kind="recurring", status=JobStatus.REGISTERED, entity={}, schedule=state.to_dict())


def test_the_waiting_fire_and_the_claims_fire_fields_are_stored_only_when_set():
    state = new_state(BUFFER, LAST)
    assert "waiting" not in state.to_dict()
    state.waiting = dict(WAITING)
    state.pending = Pending(
        "2026-03-02T10:00:00Z", "me", "2026-03-02T10:00:05Z", fire={"actual": "x", "expression": "e"}
    )
    stored = state.to_dict()
    again = ScheduleRecord.from_dict(stored)
    assert again.waiting == WAITING and again.pending.fire == {"actual": "x", "expression": "e"} and not again.extra
    assert again.to_dict() == stored
    assert "actual" not in Pending("t").to_dict()


def test_a_waiting_fire_is_looked_at_again_soon_and_keeps_the_schedule_alive():
    state = new_state(BUFFER, LAST)
    state.waiting = dict(WAITING)
    now = u(2026, 3, 2, 10, 0, 5)
    state.advance(record_with(state), u(2026, 3, 2, 11), now)
    assert state.next_fire == "2026-03-02T11:00:00Z" and state.due_bucket == "202603021005" == (
        (now + WAITING_RECHECK).strftime("%Y%m%d%H%M")
    )
    record = record_with(state)
    state.advance(record, None, now)  # no fire left: it still waits for the one waiting
    assert state.active and state.due_bucket == "202603021005" and record.status is JobStatus.REGISTERED
    state.waiting = None
    state.advance(record, None, now)
    assert not state.active and record.status is JobStatus.COMPLETED


def test_the_listener_makes_a_waiting_fire_due_at_once_only_when_no_run_goes():
    now = u(2026, 3, 2, 10, 3, 20)
    state = new_state(BUFFER, LAST)
    state.next_fire, state.due_bucket = "2026-03-02T10:10:00Z", "202603021010"
    state.waiting = dict(WAITING)
    state.runs = [{"uid": "run-1", "scheduled": "x", "status": "running"}]
    out = history._Recorded()
    history._make_waiting_due(state, now, out)
    assert out.due_now is None and state.due_bucket == "202603021010"  # still running
    state.runs[0]["status"] = "completed"
    history._make_waiting_due(state, now, out)
    assert out.due_now == ("202603021003", "2026-03-02T10:10:00Z") and out.dropped_bucket == "202603021010"
    assert state.due_bucket == "202603021003"
    for change in ("pending", "no waiting", "due already"):
        other, out = ScheduleRecord.from_dict(state.to_dict()), history._Recorded()
        other.due_bucket = "202603021010"
        if change == "pending":
            other.pending = Pending("2026-03-02T09:50:00Z", "tick")
        elif change == "no waiting":
            other.waiting = None
        else:
            other.due_bucket = "202603021002"
        history._make_waiting_due(other, now, out)
        assert out.due_now is None, change
