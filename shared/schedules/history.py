"""Run history: what became of the runs a schedule started, kept in the schedule's state.

The history is written from two sides, and both go through here so that they count failures alike:
- the job store's lifecycle listener (`RUN_LISTENER`, added with `shared.platform.hooks.add`) records a run's
  new status the moment it is written, so that `GET` of the RecurringJob is current and `suspendAfterFailures`
  acts at once;
- BufferOne: when the run that a waiting fire waits for ends, the listener makes the schedule due at once (its
  record's `dueBucket` and its index row move to the current minute); the next tick claims and starts it, through
  the claim/lease protocol every start goes through, so it starts once however many listeners and ticks see the
  end. It starts at the first tick after the end: within one tick period (SCHEDULE_TICK, a minute);
- the tick refreshes the runs still going before it decides (`refresh_runs`), for a listener that missed an
  end (another process, a crash), since Forbid, Replace and the failure count depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.schedules import due_index
from shared.schedules.policy import apply_status, needs_refresh
from shared.schedules.state import ScheduleRecord

FOLLOWED = ("completed", "failed", "removed", "running")  # run statuses the listener records


def status_text(value: Any) -> str:
    if value is None:
        return "unknown"
    return value.value if isinstance(value, JobStatus) else str(value)


def job_status(run_uid: str) -> str | None:
    """The run's status in the job store; None when the store does not know it (any more)."""
    try:
        return store().get(run_uid).status.value
    except JobNotFound:
        return None


def refresh_runs(state: ScheduleRecord, status_of: Callable[[str], str | None], now: datetime) -> None:
    """Bring the entries of runs still going up to date (`status_of(uid)`: None for a run nobody knows)."""
    failures = state.consecutive_failures
    for entry in state.runs:
        if not needs_refresh(entry):
            continue
        current = status_of(entry["uid"])
        if current is None:  # the job service does not know the run (any more): stop following it
            entry.update(status="unknown", missing=True)
            continue
        _, failures = apply_status(state.runs, entry["uid"], current, now, failures)
    state.consecutive_failures = failures


@dataclass
class _Recorded:
    changed: bool = False
    dropped_bucket: str | None = None  # the index row to remove: suspended for failures, or moved (`due_now`)
    due_now: tuple[str, str | None] | None = None  # BufferOne: (bucket, nextFire) of the row to write at once


def _make_waiting_due(state: ScheduleRecord, now: datetime, out: _Recorded) -> None:
    """BufferOne: the last run going has ended and a fire waits for it: the schedule is due now."""
    if not (state.active and state.waiting and state.pending is None and not state.running()):
        return
    now_bucket = due_index.bucket(now)
    if state.due_bucket and state.due_bucket <= now_bucket:
        return  # due already
    out.dropped_bucket, out.due_now = state.due_bucket, (now_bucket, state.next_fire)
    state.due_bucket = now_bucket


def _record_status(r: JobRecord, run_uid: str, status: str, when: datetime, out: _Recorded) -> bool | None:
    out.changed, out.dropped_bucket, out.due_now = False, None, None
    state = ScheduleRecord.of(r)
    if state is None:
        return False
    changed, failures = apply_status(state.runs, run_uid, status, when, state.consecutive_failures)
    if not changed:
        return False
    state.consecutive_failures = failures
    limit = state.schedule_spec().suspend_after_failures
    if state.active and limit and failures >= limit:
        out.dropped_bucket = state.due_bucket
        state.suspend(f"{failures} failed runs in a row (suspendAfterFailures={limit})")
    _make_waiting_due(state, clock.now(), out)
    out.changed = True
    state.save(r)
    return None


def run_finished(schedule_uid: str, run_uid: str, status: str | JobStatus, ended: datetime | None = None) -> bool:
    """Record a run's new status in its schedule's history at once (and count failures in a row, suspending
    the schedule when `suspendAfterFailures` is reached). Returns whether anything changed."""
    status_value, when, out = status_text(status), ended or clock.now(), _Recorded()
    try:
        store().update(schedule_uid, lambda r: _record_status(r, run_uid, status_value, when, out))
    except JobNotFound:
        return False
    if out.due_now:  # the new row first: a row left behind is repaired by a tick, a missing one is not
        due_index.put(schedule_uid, *out.due_now)
    due_index.drop(schedule_uid, out.dropped_bucket)
    return out.changed


def schedule_uid_of(triggered: str | None) -> str | None:
    """`Schedule (<uid>)` -> uid."""
    if triggered and triggered.startswith("Schedule (") and triggered.endswith(")"):
        return triggered[len("Schedule (") : -1]
    return None


class RunListener:
    """A `shared.platform.hooks` listener that keeps run entries current as runs end."""

    def status_changed(self, record) -> None:
        schedule_uid = schedule_uid_of(getattr(record, "triggered_by", None))
        if schedule_uid and record.status.value in FOLLOWED:
            run_finished(schedule_uid, record.uid, record.status, record.ended)

    def finished(self, record, result) -> None:
        return None


RUN_LISTENER = RunListener()
