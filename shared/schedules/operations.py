"""What callers do with a recurring job: validate and register it, suspend, resume, remove, preview, view.

These are the job service's entry points for recurring jobs. Each changes the schedule's state on the job's
record through the job store (an ETag read-modify-write, so that it cannot undo a tick's claim or a run's
end written meanwhile) and then keeps the due index in step. The index write comes after the record's: a row
the record no longer wants is repaired by the next tick, while a missing row would lose the schedule.

Nothing here starts or stops a run itself. `unregister` stops runs through the `stop_run` it is given, so that
this module does not depend on the job service (which depends on it).
"""

from __future__ import annotations

import copy
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from shared.jobs.activities import load_entity
from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.errors import BadRequest, Conflict, NotFound, ValidationFailed
from shared.schedules import backfill, due_index
from shared.schedules.cron import CronError, parse_datetime
from shared.schedules.due_index import bucket
from shared.schedules.policy import Defaults, ScheduleError, ScheduleSpec, iso, parse_iso, trim_history
from shared.schedules.state import Lifecycle, ScheduleRecord, entity_schedule, template_of

StopRun = Callable[[str], Any]
_ATTRIBUTE = re.compile(r"^(schedule\.[A-Za-z]+)")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # not the locale's
_CRON_FIELD = re.compile(r": (minute|hour|day-of-month|month|day-of-week): ")


# ---- validation and registration --------------------------------------------------------------------------
def validate(entity: Mapping[str, Any], now: datetime | None = None, defaults: Defaults | None = None) -> ScheduleSpec:
    """The RecurringJob entity's schedule, validated (cron, zone, dialect, dates, policies, fires at all);
    raises ValidationFailed (422) saying what is wrong, which attribute and, for a cron field out of range
    (`hour` 24), which field. Writes nothing: the service may call it before storing."""
    now = now or clock.now()
    try:
        spec = ScheduleSpec.parse(entity_schedule(entity), defaults or Defaults.from_settings())
        spec.check_fires(now)
    except ScheduleError as error:
        raise invalid_schedule(str(error)) from None
    return spec


def invalid_schedule(problem: str) -> ValidationFailed:
    """The API error of an invalid schedule (422, like every other invalid attribute of a job entity):
    `data` names the attribute (`schedule.cron`) and the cron field (`hour`) when the message does."""
    data: dict[str, Any] = {"schedule": problem}
    attribute, field_name = _ATTRIBUTE.match(problem), _CRON_FIELD.search(problem)
    if attribute:
        data["attribute"] = attribute.group(1)
    if field_name:
        data["field"] = field_name.group(1)
    return ValidationFailed(f"invalid schedule: {problem}", data=data)


def new_state(spec: ScheduleSpec, now: datetime, runs: Iterable[Mapping[str, Any]] = ()) -> ScheduleRecord:
    """The state of a registration at `now` (pure). `runs` are entries the entity already carried."""
    suspended = spec.suspend
    next_fire = spec.next_due(now)  # jitter included: the due index holds when the fire is due
    state = ScheduleRecord(
        spec=spec.to_dict(),
        state=Lifecycle.SUSPENDED if suspended else Lifecycle.ACTIVE,
        suspended_reason="registered with suspend=true" if suspended else None,
        registered=iso(now),
        last_considered=iso(now),
        next_fire=iso(next_fire),
        due_bucket=None if suspended or next_fire is None else bucket(next_fire),
        runs=[dict(r) for r in runs if isinstance(r, Mapping)],
        counts={"started": 0, "missed": 0, "skipped": 0, "failedToStart": 0},
    )
    state.runs, state.older_runs = trim_history(state.runs, spec.history_limit)
    return state


def register(record: JobRecord, *, now: datetime | None = None, defaults: Defaults | None = None) -> dict[str, Any]:
    """Register the schedule of a stored RecurringJob record (already created).

    Validates (422 on a bad cron/zone/dialect/date/policy: then nothing of the schedule is written),
    writes the schedule state into the record and its due-index row. Returns `view(...)` of the schedule."""
    now = now or clock.now()
    entity = load_entity(record)
    spec = validate(entity, now, defaults)
    template_of(record)  # refused (400) before anything is written when there is no Job to run
    stored_state = new_state(spec.seeded(record.uid), now, entity_schedule(entity).get("runs") or []).to_dict()

    def mutate(r: JobRecord) -> bool | None:
        r.schedule = copy.deepcopy(stored_state)
        r.status = JobStatus.REGISTERED
        return None

    stored = store().update(record.uid, mutate)
    due_index.put(record.uid, stored_state["dueBucket"], stored_state["nextFire"])
    return view(stored, now=now)


def register_many(
    records: list[JobRecord], *, now: datetime | None = None, defaults: Defaults | None = None, workers: int = 16
) -> int:
    """Bulk registration of NEW RecurringJob records (not yet stored): validate all first (the 422 names
    the failing uid, nothing written), create the records in parallel and write the due index in table
    transactions of up to 100 rows per bucket. For imports from the old service and for benchmarks."""
    now = now or clock.now()
    defaults = defaults or Defaults.from_settings()
    prepared = [_prepared(record, now, defaults) for record in records]
    jobs = store()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(jobs.create, prepared))
    rows = [
        due_index.index_row(r.uid, r.schedule["dueBucket"], r.schedule["nextFire"])
        for r in prepared
        if r.schedule["dueBucket"]
    ]
    table = due_index.due_table()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, 8))) as pool:
        list(pool.map(lambda chunk: due_index.submit_puts(table, chunk), due_index.put_transactions(rows)))
    return len(prepared)


def _prepared(record: JobRecord, now: datetime, defaults: Defaults) -> JobRecord:
    try:
        spec = validate(record.entity, now, defaults)
    except ValidationFailed as error:
        raise ValidationFailed(f"job {record.uid}: {error.message}", data=error.data) from None
    runs = entity_schedule(record.entity).get("runs") or []
    record.schedule = new_state(spec.seeded(record.uid), now, runs).to_dict()
    record.status = JobStatus.REGISTERED
    record.kind = "recurring"
    return record


# ---- suspend / resume / remove ---------------------------------------------------------------------------
@dataclass
class _Change:
    """What a state change found and what the due index must do after it (filled per write attempt)."""

    found: Lifecycle | None = None  # the state it found, when it changed nothing
    drop: str | None = None  # index bucket to remove
    put: tuple[str | None, str | None] | None = None  # (bucket, nextFire) of the index row to write
    running: list[str] = field(default_factory=list)

    def refuse_if_ended(self, uid: str) -> None:
        if self.found is Lifecycle.EXPIRED:
            raise Conflict(f"recurring job {uid} has ended")
        if self.found is Lifecycle.REMOVED:
            raise Conflict(f"recurring job {uid} has been removed")


def _get(uid: str) -> JobRecord:
    try:
        record = store().get(uid)
    except JobNotFound:
        raise NotFound(f"no recurring job with uid {uid}") from None
    if not record.schedule:
        raise BadRequest(f"job {uid} is not a recurring job")
    return record


def suspend(uid: str, *, reason: str = "suspended by request") -> dict[str, Any]:
    """Stop firing (the runs going on continue). Idempotent."""
    _get(uid)
    change = _Change()

    def mutate(r: JobRecord) -> bool | None:
        state, change.found, change.drop = ScheduleRecord.of(r), None, None
        if state is None or not state.active:
            change.found = state.state if state else None
            return False
        change.drop = state.due_bucket
        state.suspend(reason)
        state.save(r)
        return None

    record = store().update(uid, mutate)
    change.refuse_if_ended(uid)
    due_index.drop(uid, change.drop)
    return view(record)


def resume(uid: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Fire again from `now` on: fire times that fell while suspended are neither run nor recorded. Resets
    the failures-in-a-row count. Idempotent."""
    now = now or clock.now()
    _get(uid)
    change = _Change()

    def mutate(r: JobRecord) -> bool | None:
        state, change.found, change.put = ScheduleRecord.of(r), None, None
        if state is None or state.state is not Lifecycle.SUSPENDED:
            change.found = state.state if state else None
            return False
        state.state, state.suspended_reason, state.consecutive_failures = Lifecycle.ACTIVE, None, 0
        state.last_considered = iso(max(now, state.considered_at))
        state.advance(r, state.schedule_spec().next_due(state.considered_at), now)
        change.put = (state.due_bucket, state.next_fire)
        state.save(r)
        return None

    record = store().update(uid, mutate)
    change.refuse_if_ended(uid)
    due_index.put(uid, *(change.put or (None, None)))
    return view(record)


def unregister(uid: str, *, stop_running: bool = False, stop_run: StopRun | None = None) -> str:
    """Remove a schedule: no further runs. With `stop_running`, its runs still going are stopped too, through
    `stop_run(run_uid)` (required then). Returns a message for the DELETE reply. Safe to call for a uid whose
    record is already gone (clean-up after a failed start)."""
    if stop_running and stop_run is None:
        raise TypeError("unregister(stop_running=True) needs stop_run")
    change = _Change()

    def mutate(r: JobRecord) -> bool | None:
        state, change.drop, change.running = ScheduleRecord.of(r), None, []
        if state is None:
            return False
        change.drop, change.running = state.due_bucket, state.running()
        if state.state is Lifecycle.REMOVED:
            return False
        state.state, state.due_bucket, state.next_fire, state.pending = Lifecycle.REMOVED, None, None, None
        state.save(r)
        return None

    try:
        store().update(uid, mutate)
    except JobNotFound:
        return "schedule removed"
    due_index.drop(uid, change.drop)
    running = change.running
    if not running:
        return "schedule removed; no run was going on"
    if not stop_running or stop_run is None:
        return f"schedule removed; {len(running)} run(s) still going, not stopped: {', '.join(running)}"
    return _stop_all(running, stop_run)


def _stop_all(running: list[str], stop_run: StopRun) -> str:
    stopped, failed = [], []
    for run_uid in running:
        try:
            stop_run(run_uid)
            stopped.append(run_uid)
        except Exception as error:  # noqa: BLE001 - reported in the message, the others are still stopped
            failed.append(f"{run_uid} ({type(error).__name__})")
    message = f"schedule removed; stopped {len(stopped)} run(s): {', '.join(stopped)}"
    if failed:
        message += f"; could not stop: {', '.join(failed)}"
    return message


# ---- backfill -----------------------------------------------------------------------------------------------
def _when(data: Mapping[str, Any], name: str, zone) -> datetime:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            f"{name}: required, an ISO 8601 date-time (naive: in the schedule's zone; or with an offset)",
            data={"attribute": name},
        )
    try:
        return parse_datetime(value, zone, what=name)
    except CronError as error:
        raise ValidationFailed(str(error), data={"attribute": name}) from None


def backfill_range(data: Any, spec: ScheduleSpec) -> tuple[datetime, datetime]:
    """`{from, to}` of a backfill request as aware UTC times (naive ones in the schedule's zone); 422 when
    either is missing or not a date-time, or `from` is after `to`."""
    if not isinstance(data, Mapping):
        raise ValidationFailed("the body must be a JSON object {from, to}", data={"attribute": "body"})
    unknown = sorted(set(data) - {"from", "to"})
    if unknown:
        raise ValidationFailed(
            f"unknown attribute {unknown[0]!r}: a backfill takes from and to", data={"attribute": unknown[0]}
        )
    first, last = _when(data, "from", spec.cron.zone), _when(data, "to", spec.cron.zone)
    if first > last:
        raise ValidationFailed(f"from {data['from']!r} is after to {data['to']!r}", data={"attribute": "from"})
    return first, last


def request_backfill(uid: str, data: Any, requested_by: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Queue one run per fire time in [from, to] that no backfill has queued or run yet (Replace: the last
    one only); at most backfill.MAX_PER_REQUEST fire times per request (more is a 422 saying so). Writes
    nothing when it refuses. The runs are started by shared.schedules.runs."""
    now = now or clock.now()
    s = ScheduleRecord.from_dict(_get(uid).schedule)
    spec = s.schedule_spec()
    first, last = backfill_range(data, spec)
    queued: list[backfill.Queued] = []

    def mutate(r: JobRecord) -> bool | None:
        state = ScheduleRecord.of(r)
        if not backfill.usable(r, state):
            raise Conflict(f"recurring job {uid} has ended or was removed: it takes no backfill")
        bf = backfill.Backfill.of(state)
        try:
            result = backfill.request(
                bf,
                first,
                last,
                backfill.nominal_fires(state),
                policy=state.schedule_spec().concurrency_policy,
                requested_by=requested_by,
                now=now,
            )
        except ValueError as error:
            raise ValidationFailed(str(error), data={"attribute": "to", "limit": backfill.MAX_PER_REQUEST}) from None
        except OverflowError as error:
            raise Conflict(str(error)) from None
        queued[:] = [result]
        if not result.added:
            return False
        bf.save(state)
        state.save(r)
        return None

    store().update(uid, mutate)
    result = queued[0]
    return {
        "schedule": uid,
        "request": result.request,
        "from": iso(first),
        "to": iso(last),
        "fireTimes": result.times,
        "queued": result.added,
        "alreadyQueuedOrRun": result.already,
        "message": f"{result.added} fire time(s) queued, {result.already} already queued or run by a backfill",
    }


def cancel_backfill(uid: str) -> dict[str, Any]:
    """Drop the fire times still queued (runs already started go on; stop them with DELETE /api/jobs/{run})."""
    _get(uid)
    dropped = [0]

    def mutate(r: JobRecord) -> bool | None:
        state = ScheduleRecord.of(r)
        if state is None:
            return False
        bf = backfill.Backfill.of(state)
        dropped[0] = backfill.cancel(bf, backfill.nominal_fires(state)) if bf.queue else 0
        if not dropped[0]:
            return False
        bf.save(state)
        state.save(r)
        return None

    record = store().update(uid, mutate)
    return {
        "schedule": uid,
        "cancelled": dropped[0],
        "message": f"{dropped[0]} queued fire time(s) cancelled; runs already started go on",
        "backfill": backfill_view(record),
    }


def backfill_view(record: JobRecord | Mapping[str, Any]) -> dict[str, Any]:
    """A schedule's backfill progress (empty counts when it never had one)."""
    stored = (record if isinstance(record, Mapping) else record.schedule) or {}
    return backfill.Backfill.from_dict(stored.get(backfill.STATE_KEY)).view(stored.get("runs") or [])


# ---- preview / view ---------------------------------------------------------------------------------------
def preview(uid: str, n: int = 10, *, now: datetime | None = None) -> dict[str, Any]:
    """The next `n` fire times (1..1000) from `now`, in UTC and in the schedule's zone, each with its weekday
    there (what a schedule's `weekdayDialect` decides: `0 8 * * 6` is a Saturday in `unix`, a Sunday in
    `dmjob`)."""
    record = _get(uid)
    return preview_state(ScheduleRecord.of(record), n, now=now or clock.now())  # of(): its uid seeds the jitter


def preview_state(state: Mapping[str, Any] | ScheduleRecord, n: int, *, now: datetime) -> dict[str, Any]:
    s = state if isinstance(state, ScheduleRecord) else ScheduleRecord.from_dict(state)
    spec = s.schedule_spec()
    n = max(1, min(int(n), 1000))
    after = max(now, s.considered_at or now)
    fire_times = [
        {**fire, "weekday": WEEKDAYS[datetime.fromisoformat(fire["local"]).weekday()]}
        for fire in spec.preview(n, after)
    ]
    return {
        "timezone": spec.timezone,
        "cron": spec.cron.expression,
        "weekdayDialect": spec.weekday_dialect,
        "state": s.state.value,
        "fireTimes": fire_times,
    }


def view(record: JobRecord | Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The schedule as `GET /api/jobs/{uid}` shows it (no I/O): spec, state, next fire, runs, counts."""
    stored = record if isinstance(record, Mapping) else record.schedule
    if not stored:
        return {}
    s = ScheduleRecord.from_dict(stored)
    body: dict[str, Any] = {
        **s.spec,
        "state": s.state.value,
        "registered": s.registered,
        "lastConsidered": s.last_considered,
        "nextFire": s.next_fire,
    }
    local = _local_time(s)
    if local:
        body["nextFireLocal"] = local
    if s.suspended_reason:
        body["suspendedReason"] = s.suspended_reason
    body.update(
        runs=list(s.runs),
        olderRuns=dict(s.older_runs),
        counts=dict(s.counts),
        consecutiveFailures=s.consecutive_failures,
    )
    if s.pending:
        body["pending"] = {"scheduled": s.pending.scheduled}
    if s.waiting:
        body["waiting"] = dict(s.waiting)  # BufferOne: the fire waiting for the run going
    if backfill.STATE_KEY in s.extra:
        body["backfill"] = backfill.Backfill.of(s).view(s.runs)
    return body


def _local_time(s: ScheduleRecord) -> str | None:
    if not s.next_fire:
        return None
    try:
        return parse_iso(s.next_fire).astimezone(s.schedule_spec().cron.zone).isoformat(timespec="seconds")
    except Exception:  # noqa: BLE001 - a view never fails
        return None
