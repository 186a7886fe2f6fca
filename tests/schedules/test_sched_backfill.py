"""The backfill queue and the run-now claim (shared/schedules/backfill.py): pure, on values and records."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform.errors import Conflict, ServiceUnavailable, ValidationFailed
from shared.schedules import backfill as bf_mod
from shared.schedules.backfill import Backfill, Claim, ManualClaim, Started
from shared.schedules.cron import CronSchedule
from shared.schedules.operations import backfill_range, new_state
from shared.schedules.policy import ScheduleSpec, iso, run_entry
from shared.schedules.state import ScheduleRecord

UTC = timezone.utc
NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
LEASE = timedelta(seconds=120)
HOURLY = CronSchedule.parse("0 * * * *", "UTC", "unix").next_fire


def t(hour: int, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def queue(first, last, policy="Forbid", bf=None, next_fire=HOURLY):
    bf = bf or Backfill()
    result = bf_mod.request(bf, first, last, next_fire, policy=policy, requested_by="alice", now=NOW)
    return bf, result


def drain(bf: Backfill, ran=frozenset(), next_fire=HOURLY) -> list[str]:
    return [iso(f) for f in bf_mod.take(bf, next_fire, 10_000, set(ran))]


# ---- intervals ---------------------------------------------------------------------------------------------
def test_merge_joins_overlapping_and_adjacent_intervals():
    one = timedelta(seconds=1)
    assert bf_mod.merge([(t(3), t(4)), (t(0), t(1)), (t(1) + one, t(2))]) == [(t(0), t(2)), (t(3), t(4))]


def test_subtract_leaves_the_uncovered_pieces():
    one = timedelta(seconds=1)
    assert bf_mod.subtract((t(0), t(10)), [(t(2), t(3)), (t(6), t(12))]) == [
        (t(0), t(2) - one),
        (t(3) + one, t(6) - one),
    ]
    assert bf_mod.subtract((t(2), t(3)), [(t(0), t(5))]) == []


def test_subtract_then_merge_is_the_union_whatever_the_order():
    pieces = [(t(a), t(b)) for a, b in [(0, 2), (1, 5), (7, 8), (9, 9), (3, 4)]]
    for order in itertools.permutations(pieces):
        covered: list = []
        for piece in order:
            covered = bf_mod.merge(covered + bf_mod.subtract(piece, covered))
        assert covered == [(t(0), t(5)), (t(7), t(8)), (t(9), t(9))]


# ---- requests --------------------------------------------------------------------------------------------------
def test_a_request_queues_every_fire_time_in_the_range_oldest_first():
    bf, result = queue(t(0), t(5))
    assert (result.times, result.added, result.already, bf.queued) == (6, 6, 0, 6)
    assert drain(bf) == [iso(t(h)) for h in range(6)]
    assert bf.queue == [] and bf.queued == 0


def test_an_overlapping_or_repeated_request_queues_only_what_it_adds():
    bf, _ = queue(t(0), t(5))
    _, same = queue(t(0), t(5), bf=bf)
    assert (same.added, same.already) == (0, 6)
    _, more = queue(t(3), t(8), bf=bf)
    assert (more.times, more.added, more.already) == (6, 3, 3)
    assert drain(bf) == [iso(t(h)) for h in range(9)]
    _, after_run = queue(t(0), t(9), bf=bf)  # what ran stays covered: only 09:00 is new
    assert after_run.added == 1 and drain(bf) == [iso(t(9))]


def test_a_range_with_fractions_of_seconds_keeps_its_bounds():
    bf, result = queue(t(0) + timedelta(microseconds=1), t(2) + timedelta(microseconds=5))
    assert result.times == 2 and drain(bf) == [iso(t(1)), iso(t(2))]


def test_the_bound_is_exact_and_a_refused_request_changes_nothing():
    minutely = CronSchedule.parse("* * * * *", "UTC", "unix").next_fire
    bf, ok = queue(t(0), t(0) + timedelta(minutes=999), next_fire=minutely)
    assert ok.added == bf_mod.MAX_PER_REQUEST
    before = bf.to_dict()
    with pytest.raises(ValueError, match="at most 1000"):
        queue(t(0, day=2), t(0, day=2) + timedelta(minutes=1000), bf=bf, next_fire=minutely)
    assert bf.to_dict() == before


def test_replace_queues_only_the_last_time():
    bf, result = queue(t(0), t(5) + timedelta(minutes=30), policy="Replace")
    assert (result.times, result.added) == (1, 1) and drain(bf) == [iso(t(5))]


def test_an_empty_range_queues_nothing():
    bf, result = queue(t(0) + timedelta(minutes=1), t(0) + timedelta(minutes=59))
    assert (result.times, result.added, bf.queue) == (0, 0, [])


def test_times_the_history_shows_as_run_are_counted_not_taken():
    bf, _ = queue(t(0), t(3))
    assert drain(bf, ran={iso(t(1)), iso(t(2))}) == [iso(t(0)), iso(t(3))]
    assert bf.counts["alreadyRan"] == 2


def test_cancel_uncovers_only_what_had_not_started():
    bf, _ = queue(t(0), t(9))
    assert drain_some(bf, 3) == [iso(t(h)) for h in range(3)]
    assert bf_mod.cancel(bf, HOURLY) == 7
    assert (bf.queue, bf.queued, bf.counts["cancelled"]) == ([], 0, 7)
    _, again = queue(t(0), t(9), bf=bf)
    assert (again.added, again.already) == (7, 3)
    assert drain(bf) == [iso(t(h)) for h in range(3, 10)]


def drain_some(bf, n):
    return [iso(f) for f in bf_mod.take(bf, HOURLY, n, set())]


def test_too_many_separate_ranges_are_refused():
    bf = Backfill()
    times = [t(0) + timedelta(hours=2 * i) for i in range(bf_mod.MAX_SEGMENTS)]
    for when in times:  # every other hour: separate pieces
        queue(when, when, bf=bf)
    assert len(bf.queue) == bf_mod.MAX_SEGMENTS
    before = bf.to_dict()
    with pytest.raises(OverflowError):
        queue(times[-1] + timedelta(hours=2), times[-1] + timedelta(hours=2), bf=bf)
    assert bf.to_dict() == before


def test_the_stored_form_round_trips():
    bf, _ = queue(t(0), t(5))
    bf.claims.append(Claim(iso(t(0)), "manual", "me", iso(NOW), key="k", requested_by="Alice", stop=["r"]))
    assert Backfill.from_dict(bf.to_dict()).to_dict() == bf.to_dict()


# ---- what may start: the policies ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "policy,running,claims,expected",
    [
        ("Forbid", [], 0, 1),
        ("Forbid", ["r1"], 0, 0),
        ("Forbid", [], 1, 0),
        ("BufferOne", [], 0, 1),
        ("BufferOne", ["r1"], 0, 0),
        ("Allow", ["r1"], 0, bf_mod.ALLOW_CAP),  # a run of the tick does not count against the cap
        ("Allow", [], 2, bf_mod.ALLOW_CAP - 2),
        ("Replace", ["r1"], 0, 1),
        ("Replace", [], 1, 0),
    ],
)
def test_room_follows_the_policy(policy, running, claims, expected):
    bf = Backfill(claims=[Claim(iso(t(h)), claimed_by="x", claimed_at=iso(NOW)) for h in range(claims)])
    assert bf_mod.room(policy, bf, running, NOW, LEASE) == expected


def test_allow_counts_its_own_running_runs_against_the_cap():
    bf = Backfill(running=[f"r{i}" for i in range(bf_mod.ALLOW_CAP)])
    assert bf_mod.room("Allow", bf, bf.running, NOW, LEASE) == 0


def test_an_expired_claim_does_not_block():
    old = iso(NOW - LEASE - timedelta(seconds=1))
    bf = Backfill(claims=[Claim(iso(t(0)), claimed_by="dead", claimed_at=old)])
    assert bf_mod.room("Forbid", bf, [], NOW, LEASE) == 1


# ---- claim and finalize on a record ----------------------------------------------------------------------------
def record(policy: str = "Forbid", runs=()) -> JobRecord:
    spec = ScheduleSpec.parse({"cron": "0 * * * *", "concurrencyPolicy": policy})
    state = new_state(spec, NOW - timedelta(days=1), runs)
    return JobRecord(uid="sched", kind="recurring", status=JobStatus.REGISTERED, schedule=state.to_dict())


def with_queue(r: JobRecord, first, last) -> JobRecord:
    state = ScheduleRecord.of(r)
    bf = Backfill.of(state)
    bf_mod.request(
        bf,
        first,
        last,
        bf_mod.nominal_fires(state),
        policy=state.schedule_spec().concurrency_policy,
        requested_by="alice",
        now=NOW,
    )
    bf.save(state)
    state.save(r)
    return r


def statuses(done=()):
    return lambda uid: "completed" if uid in done else "running"


def test_a_step_claims_one_time_under_forbid_and_finalize_records_it():
    r = with_queue(record("Forbid"), t(0), t(2))
    step = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE)
    assert [c.scheduled for c in step.claims] == [iso(t(0))] and step.changed and step.active
    again = bf_mod.claim_step(r, NOW, "other", statuses(), LEASE)
    assert again.claims == []  # held: nothing more while it is being started
    assert bf_mod.finalize(r, [Started(step.claims[0], "run-0")], "me", NOW)
    state = ScheduleRecord.of(r)
    assert [(e["uid"], e["scheduled"], e["trigger"]) for e in state.runs] == [("run-0", iso(t(0)), "backfill")]
    assert Backfill.of(state).running == ["run-0"]
    assert bf_mod.claim_step(r, NOW, "me", statuses(), LEASE).claims == []  # run-0 is going
    later = NOW + bf_mod.REFRESH_AFTER + timedelta(seconds=1)  # the store is asked about runs this old
    nxt = bf_mod.claim_step(r, later, "me", statuses({"run-0"}), LEASE)
    assert [c.scheduled for c in nxt.claims] == [iso(t(1))] and nxt.finished == 1


def test_a_young_run_is_followed_by_the_listener_not_by_reads():
    r = with_queue(record("Forbid"), t(0), t(2))
    claim = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE).claims[0]
    bf_mod.finalize(r, [Started(claim, "run-0")], "me", NOW)
    asked = []
    ask = lambda uid: asked.append(uid) or "completed"
    assert bf_mod.claim_step(r, NOW + timedelta(seconds=5), "me", ask, LEASE).claims == [] and asked == []
    state = ScheduleRecord.of(r)
    state.runs[-1]["status"] = "completed"  # what the run listener writes when the run ends
    state.save(r)
    step = bf_mod.claim_step(r, NOW + timedelta(seconds=6), "me", ask, LEASE)
    assert [c.scheduled for c in step.claims] == [iso(t(1))] and asked == []


def test_with_a_list_of_expressions_each_shared_time_runs_once_and_says_which_fired():
    spec = ScheduleSpec.parse({"cron": ["0 8 * * 1-5", "0 8,10 * * 6", "0 8 * * *"], "concurrencyPolicy": "Allow"})
    r = JobRecord(uid="sched", kind="recurring", status=JobStatus.REGISTERED, schedule=new_state(spec, NOW).to_dict())
    with_queue(r, datetime(2026, 2, 27, tzinfo=UTC), datetime(2026, 3, 1, 23, 59, tzinfo=UTC))  # Fri .. Sun
    step = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE)
    assert [c.scheduled for c in step.claims] == [
        "2026-02-27T08:00:00Z",
        "2026-02-28T08:00:00Z",
        "2026-02-28T10:00:00Z",
        "2026-03-01T08:00:00Z",
    ]
    bf_mod.finalize(r, [Started(c, f"run-{i}") for i, c in enumerate(step.claims)], "me", NOW)
    assert all(e.get("expression") for e in ScheduleRecord.of(r).runs)


def test_a_claim_whose_starter_died_is_taken_over_and_started_again():
    r = with_queue(record("Forbid"), t(0), t(2))
    first = bf_mod.claim_step(r, NOW, "dead", statuses(), LEASE).claims[0]
    later = NOW + LEASE + timedelta(seconds=1)
    step = bf_mod.claim_step(r, later, "me", statuses(), LEASE)
    assert [c.scheduled for c in step.claims] == [first.scheduled]
    assert not bf_mod.finalize(r, [Started(first, "run-0")], "dead", later)  # lost: the other holds it now
    assert bf_mod.finalize(r, [Started(step.claims[0], "run-0")], "me", later)
    assert [e["uid"] for e in ScheduleRecord.of(r).runs] == ["run-0"]


def test_allow_claims_up_to_the_cap_at_once():
    r = with_queue(record("Allow"), t(0), t(23))
    step = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE)
    assert len(step.claims) == bf_mod.ALLOW_CAP


def test_a_time_the_tick_ran_is_not_started_again():
    ran = [run_entry("tick-run", t(1), "completed", started=t(1), ended=t(1))]
    r = with_queue(record("Forbid", ran), t(0), t(2))
    first = bf_mod.claim_step(r, NOW, "me", statuses({"tick-run"}), LEASE).claims[0]
    bf_mod.finalize(r, [Started(first, "run-0")], "me", NOW)
    later = NOW + bf_mod.REFRESH_AFTER + timedelta(seconds=1)
    step = bf_mod.claim_step(r, later, "me", statuses({"tick-run", "run-0"}), LEASE)
    assert [c.scheduled for c in step.claims] == [iso(t(2))]
    assert Backfill.of(ScheduleRecord.of(r)).counts["alreadyRan"] == 1


def test_the_same_run_returned_twice_is_recorded_once():
    r = with_queue(record("Allow"), t(0), t(0))
    claim = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE).claims[0]
    state = ScheduleRecord.of(r)
    state.runs.append(run_entry("run-0", t(0), "running"))
    state.save(r)
    bf_mod.finalize(r, [Started(claim, "run-0")], "me", NOW)
    state = ScheduleRecord.of(r)
    assert [e["uid"] for e in state.runs] == ["run-0"] and Backfill.of(state).counts["alreadyRan"] == 1


def test_a_transient_start_failure_releases_the_claim_then_records_the_failure():
    r = with_queue(record("Forbid"), t(0), t(0))
    for attempt in range(1, bf_mod.MAX_START_ATTEMPTS + 1):
        claim = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE).claims[0]
        bf_mod.finalize(r, [Started(claim, failure=ServiceUnavailable("storage down"))], "me", NOW)
        bf = Backfill.of(ScheduleRecord.of(r))
        assert len(bf.claims) == (0 if attempt == bf_mod.MAX_START_ATTEMPTS else 1)
    state = ScheduleRecord.of(r)
    assert state.runs[-1]["status"] == "failed" and "could not start" in state.runs[-1]["reason"]
    assert Backfill.of(state).counts["failedToStart"] == 1


def test_a_removed_schedule_drops_its_queue():
    r = with_queue(record("Forbid"), t(0), t(5))
    r.status = JobStatus.REMOVED
    step = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE)
    assert step.claims == [] and Backfill.of(ScheduleRecord.of(r)).queued == 0


def test_view_counts_a_run_the_listener_saw_end():
    r = with_queue(record("Forbid"), t(0), t(1))
    claim = bf_mod.claim_step(r, NOW, "me", statuses(), LEASE).claims[0]
    bf_mod.finalize(r, [Started(claim, "run-0")], "me", NOW)
    state = ScheduleRecord.of(r)
    state.runs[-1]["status"] = "completed"  # what the run listener writes
    view = Backfill.of(state).view(state.runs)
    assert (view["queued"], view["running"], view["finished"]) == (1, 0, 1)


# ---- run now ------------------------------------------------------------------------------------------------------
def manual(r, key=None, status_of=None, now=NOW):
    out = ManualClaim()
    bf_mod.claim_manual(r, now, "me", status_of or statuses(), LEASE, key=key, requested_by="Alice", out=out)
    return out


@pytest.mark.parametrize("policy", ["Forbid", "BufferOne"])
def test_run_now_under_forbid_refuses_while_a_run_goes_on_naming_it(policy):
    r = record(policy, [run_entry("r-1", t(0), "running")])
    with pytest.raises(Conflict) as refused:
        manual(r)
    assert "r-1" in refused.value.message and refused.value.data["run"] == "r-1"
    assert manual(r, status_of=statuses({"r-1"})).claim is not None  # it ended meanwhile: refreshed


@pytest.mark.parametrize("policy", ["Allow", "Replace"])
def test_run_now_under_allow_and_replace_starts_replace_stopping(policy):
    r = record(policy, [run_entry("r-1", t(0), "running")])
    claim = manual(r).claim
    assert claim.kind == "manual" and claim.stop == (["r-1"] if policy == "Replace" else [])


def test_run_now_with_a_key_finds_the_earlier_run():
    r = record("Allow")
    key = bf_mod.request_key("alice", "k")
    claim = manual(r, key).claim
    with pytest.raises(Conflict):  # the first is still being started
        manual(r, key)
    bf_mod.finalize(r, [Started(claim, "run-1")], "me", NOW)
    again = manual(r, key)
    assert (again.claim, again.existing) == (None, "run-1")
    entry = ScheduleRecord.of(r).runs[-1]
    assert (entry["trigger"], entry["requestedBy"]) == ("manual", "Alice")
    assert bf_mod.request_key("bob", "k") != key


def test_run_now_on_a_suspended_schedule_starts_and_leaves_it_suspended():
    r = record("Forbid")
    state = ScheduleRecord.of(r)
    state.suspend("by request")
    state.save(r)
    assert manual(r).claim is not None and ScheduleRecord.of(r).state.value == "suspended"


def test_run_now_on_an_ended_schedule_is_a_conflict():
    r = record("Allow")
    r.status = JobStatus.REMOVED
    with pytest.raises(Conflict):
        manual(r)


# ---- the request's range --------------------------------------------------------------------------------------------
def test_naive_times_are_in_the_schedules_zone_and_aware_ones_exact():
    spec = ScheduleSpec.parse({"cron": "0 * * * *", "timezone": "Europe/Oslo"})
    first, last = backfill_range({"from": "2026-03-01T10:00", "to": "2026-03-01T12:00:00Z"}, spec)
    assert (iso(first), iso(last)) == ("2026-03-01T09:00:00Z", "2026-03-01T12:00:00Z")


@pytest.mark.parametrize(
    "body", [None, [], {}, {"from": "x", "to": "2026-03-01"}, {"from": "2026-03-02", "to": "2026-03-01"}, {"from": 1}]
)
def test_bad_ranges_are_422(body):
    with pytest.raises(ValidationFailed):
        backfill_range(body, ScheduleSpec.parse({"cron": "0 * * * *"}))
