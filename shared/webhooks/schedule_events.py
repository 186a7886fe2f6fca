"""Schedule events: `schedule.run.missed`, `schedule.run.skipped`, `schedule.suspended`.

Three sources, all enqueue only (enqueue.py):
- the tick calls `claimed(record, outcome)` once per schedule it decided on (shared/schedules/tick.py, one line):
  a decision that recorded missed fire times, skipped one (Forbid, BufferOne) or suspended the schedule;
- the job listener calls `run_changed(run)` for a run's final status: the schedule history (its own listener,
  which runs first) may just have suspended the schedule for `suspendAfterFailures`;
- shared/service.py calls `requested_suspend(record)` after POST /api/jobs/{uid}/suspend.
A schedule's events are kept under the recurring job's uid (`GET /api/jobs/{uid}/events` of the RecurringJob),
keyed `2-<time>-<type>` so that they sort by time and before the job's own final event. `data` is the recurring
job as `GET /api/jobs/{uid}` shows it (status and schedule view); `details` says which fire times, and why.
Nothing here raises into the tick: a failure is logged and the tick goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.jobs.operations import status_body
from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.store import store as job_store
from shared.platform import clock
from shared.schedules.history import schedule_uid_of
from shared.schedules.operations import view
from shared.schedules.state import Lifecycle, ScheduleRecord
from shared.webhooks import enqueue, store
from shared.webhooks.models import SCHEDULE_MISSED, SCHEDULE_SKIPPED, SCHEDULE_SUSPENDED

log = logging.getLogger(__name__)


def _body(record: JobRecord) -> dict[str, Any]:
    """What GET /api/jobs/{uid} shows of a recurring job (shared.service.status_body, without importing it)."""
    return {**status_body(record), "schedule": view(record)}


def _emit(record: JobRecord, event_type: str, when: str, details: dict[str, Any]) -> None:
    subs = store.subscriptions_of(record.owner)
    facts = {"uid": record.uid, "label": record.label, "runnerType": record.runner_type, "scheduleUid": record.uid}
    wanted = [s for s in subs if s.wants(event_type, facts)]
    if not wanted:
        return
    key = f"2-{when}-{event_type}"
    enqueue.deliver(record.uid, enqueue.record(record.uid, key, event_type, wanted, _body(record), details))


def _newest(runs: list[dict[str, Any]], status: str, count: int) -> list[str]:
    times = [e["scheduled"] for e in runs if e.get("status") == status and e.get("scheduled")]
    return sorted(times)[-count:] if count > 0 else []


def claimed(record: JobRecord | None, outcome: Any) -> None:
    """The tick decided on `record` (as its claim wrote it): events for what it missed, skipped or suspended."""
    missed, skipped = int(getattr(outcome, "missed", 0) or 0), int(getattr(outcome, "skipped", 0) or 0)
    suspended = type(outcome).__name__ == "Suspended"
    if record is None or not (missed or skipped or suspended):
        return
    try:
        state = ScheduleRecord.of(record)
        runs = state.runs if state is not None else []
        times = _newest(runs, "missed", missed)
        if missed and times:
            _emit(record, SCHEDULE_MISSED, times[-1], {"missed": times, "count": missed})
        skipped_times = _newest(runs, "skipped", skipped)
        if skipped_times:
            entry = next(e for e in reversed(runs) if e.get("scheduled") == skipped_times[-1])
            _emit(
                record,
                SCHEDULE_SKIPPED,
                skipped_times[-1],
                {"scheduled": skipped_times[-1], "reason": entry.get("reason")},
            )
        if suspended and state is not None:
            _emit(record, SCHEDULE_SUSPENDED, state.last_considered or "", {"reason": state.suspended_reason})
    except Exception as error:  # noqa: BLE001 - webhooks must never break the tick
        log.warning("schedule %s: webhook events not recorded (%s)", record.uid, type(error).__name__)


def run_changed(run: JobRecord) -> None:
    """A run reached a final status: if that suspended its schedule (suspendAfterFailures), say so."""
    schedule_uid = schedule_uid_of(run.triggered_by)
    if not schedule_uid or not run.status.is_final:
        return
    try:
        schedule = job_store().get(schedule_uid)
    except JobNotFound:
        return
    state = ScheduleRecord.of(schedule)
    reason = (state.suspended_reason or "") if state is not None else ""
    if state is None or state.state is not Lifecycle.SUSPENDED:
        return
    if not reason.startswith(f"{state.consecutive_failures} failed runs in a row"):
        return  # suspended before, or by a request: not by this run
    details = {"reason": reason, "run": run.uid}
    _emit(schedule, SCHEDULE_SUSPENDED, f"{clock.iso(run.ended) or ''}-{run.uid[:8]}", details)


def requested_suspend(before: JobRecord) -> None:
    """POST /api/jobs/{uid}/suspend ran on `before` (the recurring job as the request read it): if that suspended
    an active schedule, `schedule.suspended` once. Keyed by the suspended schedule's `lastConsidered` (which no
    tick moves while it is suspended, and a resume moves on), so a repeated or concurrent suspend of the same
    suspension writes nothing new; a suspend of a schedule that was not active emits nothing."""
    old = ScheduleRecord.of(before)
    if old is None or not old.active:
        return
    try:
        record = job_store().get(before.uid)
        state = ScheduleRecord.of(record)
        if state is None or state.state is not Lifecycle.SUSPENDED:
            return
        details = {"reason": state.suspended_reason, "requested": True}
        _emit(record, SCHEDULE_SUSPENDED, f"{state.last_considered or state.registered or ''}-request", details)
    except Exception as error:  # noqa: BLE001 - the suspension is done: its event must not turn it into a 500
        log.warning("schedule %s: suspend event not recorded (%s)", before.uid, type(error).__name__)
