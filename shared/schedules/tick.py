"""Recurring jobs: registration, the minute tick that fires due schedules, suspend/resume/remove, preview.

Where things live
- The schedule's spec and state are the `schedule` field of the RecurringJob's own job record (`Jobs` table,
  shared.jobs.store), written only through `lifecycle.update` (ETag read-modify-write). One row, one ETag: the
  claim of a fire, the run history and a concurrent suspend/stop cannot overwrite each other.
- `ScheduleDue` (this module's table) indexes what is due: PartitionKey = the UTC minute of the schedule's next
  fire (`YYYYMMDDHHMM`), RowKey = the schedule's uid. Each active schedule has one row, moved to its next
  bucket when a fire is handled, removed when it is suspended, expires or is deleted. A tick reads the
  buckets from the last processed one (minus a safety margin) up to now: entities read are proportional to
  the schedules due, not to the schedules registered. The row `("tick", "state")` remembers the last
  processed bucket; once an hour (and when that row is missing) the lower bound is dropped altogether, so an
  entry left behind by a crash is found however old it is.

Exactly once
1. Claim: in one ETag-guarded write the tick re-decides on the fresh record (`schedule_policy.decide`),
   records missed/skipped times, moves `lastConsidered` and sets `pending` = {scheduled time, claimer,
   lease}. A second instance's write fails with 412, is redone on the fresh row and then finds the fire
   claimed (or handled) and writes nothing.
2. Start: `start_run(schedule_uid, scheduled_time, template, triggered_by)`, idempotent on (uid, time).
3. Finalize: record the run (uid, scheduled, started, status, ended), clear `pending`, move the index row.
A crash between 1 and 3 leaves `pending` and the index row where they were; after the lease the next tick
takes the claim over and calls `start_run` again, which the idempotency turns into "return the run uid".
"""
from __future__ import annotations

import copy
import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Protocol

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.platform import clock, storage
from shared.schedules.cron import UTC
from shared.platform.errors import ApiError, BadRequest, Conflict, NotFound
from shared.schedules.policy import (Decision, Defaults, ScheduleError, ScheduleSpec, ScheduleState,
    apply_decision_to_runs, apply_status, decide, is_running, iso, needs_refresh, parse_iso, run_entry, trim_history,
    triggered_by)
from shared.jobs.status import JobStatus

log = logging.getLogger(__name__)

DUE_TABLE = "ScheduleDue"
STATE_PK, STATE_RK = "tick", "state"
BUCKET_FORMAT = "%Y%m%d%H%M"
SAFETY_MARGIN = timedelta(minutes=15)  # re-read this much before the last processed bucket (skew, retries)
LEASE = timedelta(seconds=120)  # a claim not finalised within this may be taken over by another tick
MAX_PER_TICK = 5000  # schedules handled per tick; the rest waits for the next tick (bounded catch-up)
MAX_START_ATTEMPTS = 3  # transient start failures retried on later ticks before the run is recorded failed
WORKERS = 8  # schedules handled in parallel within a tick
STATE_WRITE_EVERY = timedelta(minutes=5)  # idle ticks advance the state row this often
STATE_JSON_LIMIT = 28_000  # characters: jobstore keeps a JSON property under 30,000

StartRun = Callable[[str, datetime, dict, str], str]
StopRun = Callable[[str], Any]
JobStatusOf = Callable[[str], "str | JobStatus | None"]


class Orchestrations(Protocol):  # what unregister may use to stop runs (service.Orchestrations)
    def raise_stop(self, uid: str) -> None: ...


def bucket(when: datetime) -> str:
    return when.astimezone(UTC).strftime(BUCKET_FORMAT)


def bucket_time(value: str) -> datetime:
    return datetime.strptime(value, BUCKET_FORMAT).replace(tzinfo=UTC)


def due_table():
    return storage.table(DUE_TABLE)


def _jobs():
    from shared.jobs.store import store

    return store()


def _update(uid: str, mutate):
    from shared.jobs.activities import update

    return update(uid, mutate)


def _template(record) -> dict[str, Any]:
    from shared.jobs.activities import load_entity

    entity = load_entity(record)
    template = entity.get("applicationInput")
    if not isinstance(template, dict):
        raise BadRequest("a recurring job's applicationInput must be the Job template (an object)")
    return json.loads(json.dumps(template))


def _entity_schedule(entity: Mapping[str, Any]) -> Mapping[str, Any]:
    schedule = entity.get("schedule")
    if not isinstance(schedule, Mapping):
        raise BadRequest("schedule: missing or not an object (a CronJob with at least `cron`)")
    return schedule


def _spec(state: Mapping[str, Any]) -> ScheduleSpec:
    return ScheduleSpec.parse(state["spec"])  # stored with every default filled in


def _running(state: Mapping[str, Any]) -> list[str]:
    return [e["uid"] for e in state.get("runs", []) if is_running(e)]


# ---- validation and registration --------------------------------------------------------------------------
def validate(entity: Mapping[str, Any], now: datetime | None = None, defaults: Defaults | None = None
             ) -> ScheduleSpec:
    """The RecurringJob entity's schedule, validated (cron, zone, dialect, dates, policies, fires at all);
    raises BadRequest (400) saying what is wrong. Writes nothing: the service may call it before storing."""
    now = now or clock.now()
    try:
        spec = ScheduleSpec.parse(_entity_schedule(entity), defaults or Defaults.from_settings())
        spec.check_fires(now)
    except ScheduleError as error:
        raise BadRequest(f"invalid schedule: {error}", data={"schedule": str(error)}) from None
    return spec


def new_state(spec: ScheduleSpec, now: datetime, runs: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The initial schedule state of a registration at `now` (pure)."""
    suspended = spec.suspend
    next_fire = spec.next_fire(now)
    state: dict[str, Any] = {
        "spec": spec.to_dict(),
        "state": "suspended" if suspended else "active",
        "suspendedReason": "registered with suspend=true" if suspended else None,
        "registered": iso(now),
        "lastConsidered": iso(now),
        "nextFire": iso(next_fire),
        "dueBucket": None if suspended or next_fire is None else bucket(next_fire),
        "pending": None,
        "runs": [dict(r) for r in runs if isinstance(r, Mapping)],
        "olderRuns": {},
        "counts": {"started": 0, "missed": 0, "skipped": 0, "failedToStart": 0},
        "consecutiveFailures": 0,
    }
    state["runs"], state["olderRuns"] = trim_history(state["runs"], spec.history_limit)
    return state


def _index_row(uid: str, due_bucket: str, next_fire: str | None) -> dict[str, Any]:
    return {"PartitionKey": due_bucket, "RowKey": uid, "nextFire": next_fire or ""}


def _put_index(uid: str, due_bucket: str | None, next_fire: str | None) -> None:
    if due_bucket:
        due_table().upsert_entity(_index_row(uid, due_bucket, next_fire), mode=UpdateMode.REPLACE)


def _drop_index(uid: str, due_bucket: str | None) -> None:
    if not due_bucket:
        return
    try:
        due_table().delete_entity(due_bucket, uid)
    except ResourceNotFoundError:
        pass


class IndexBatch:
    """Index writes of one tick, sent at its end as table transactions (<= 100 rows, one bucket each).

    Per schedule it keeps where the row must be and which rows must go. A target from a write this tick made
    (claim/finalize) overrides one guessed from a stale row read earlier (the same uid can sit in two rows)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, dict[str, Any]] = {}

    def move(self, uid: str, old: str | None, new: str | None, next_fire: str | None, *,
             authoritative: bool = True) -> None:
        with self.lock:
            item = self.items.setdefault(uid, {"target": None, "auth": False, "drops": set()})
            if old:
                item["drops"].add(old)
            if authoritative or not item["auth"]:
                item["target"] = (new, next_fire) if new else None
                item["auth"] = item["auth"] or authoritative

    def drop(self, uid: str, due_bucket: str | None) -> None:
        self.move(uid, due_bucket, None, None)

    def flush(self) -> int:
        """Send everything; returns the number of transactions. A delete transaction that fails (a row is
        already gone) is redone row by row."""
        puts: dict[str, list[dict[str, Any]]] = {}
        drops: dict[str, list[str]] = {}
        for uid, item in self.items.items():
            target = item["target"][0] if item["target"] else None
            if target:
                puts.setdefault(target, []).append(_index_row(uid, target, item["target"][1]))
            for old in item["drops"] - {target}:
                drops.setdefault(old, []).append(uid)
        table = due_table()
        sent = 0
        for rows in puts.values():
            for i in range(0, len(rows), 100):
                sent += 1
                if len(rows) - i == 1:  # a one-row transaction costs more than the plain request
                    table.upsert_entity(rows[i], mode=UpdateMode.REPLACE)
                    continue
                table.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}) for row in rows[i:i + 100]])
        for due_bucket, uids in drops.items():
            for i in range(0, len(uids), 100):
                chunk = uids[i:i + 100]
                sent += 1
                if len(chunk) == 1:
                    _drop_index(chunk[0], due_bucket)
                    continue
                try:
                    table.submit_transaction([("delete", {"PartitionKey": due_bucket, "RowKey": uid})
                                              for uid in chunk])
                except Exception:  # noqa: BLE001 - e.g. one row deleted meanwhile: fails the whole batch
                    for uid in chunk:
                        _drop_index(uid, due_bucket)
        self.items.clear()
        return sent


def register(record, *, now: datetime | None = None, defaults: Defaults | None = None) -> dict[str, Any]:
    """Register the schedule of a stored RecurringJob record (a `jobstore.JobRecord`, already created).

    Validates (BadRequest on a bad cron/zone/dialect/date/policy: then nothing of the schedule is written),
    writes the schedule state into the record and its due-index row. Returns `view(...)` of the schedule."""
    now = now or clock.now()
    from shared.jobs.activities import load_entity

    entity = load_entity(record)
    spec = validate(entity, now, defaults)
    _template(record)
    state = new_state(spec, now, _entity_schedule(entity).get("runs") or [])

    def mutate(r) -> bool | None:
        r.schedule = json.loads(json.dumps(state))
        r.status = JobStatus.REGISTERED
        return None

    stored = _update(record.uid, mutate)
    _put_index(record.uid, state["dueBucket"], state["nextFire"])
    return view(stored, now=now)


def register_many(records: list, *, now: datetime | None = None, defaults: Defaults | None = None,
                  workers: int = 16) -> int:
    """Bulk registration of NEW RecurringJob records (not yet stored): validate all first (BadRequest names
    the failing uid, nothing written), create the records in parallel and write the due index in table
    transactions of up to 100 rows per bucket. For imports from the old service and for benchmarks."""
    now = now or clock.now()
    defaults = defaults or Defaults.from_settings()
    prepared = []
    for record in records:
        try:
            spec = validate(record.entity, now, defaults)
        except BadRequest as error:
            raise BadRequest(f"job {record.uid}: {error.message}", data=error.data) from None
        record.schedule = new_state(spec, now, _entity_schedule(record.entity).get("runs") or [])
        record.status = JobStatus.REGISTERED
        record.kind = "recurring"
        prepared.append(record)
    jobs = _jobs()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(jobs.create, prepared))
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for record in prepared:
        s = record.schedule
        if s["dueBucket"]:
            by_bucket.setdefault(s["dueBucket"], []).append(_index_row(record.uid, s["dueBucket"], s["nextFire"]))
    table = due_table()
    batches = [rows[i:i + 100] for rows in by_bucket.values() for i in range(0, len(rows), 100)]

    def submit(rows: list[dict[str, Any]]) -> None:
        table.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}) for row in rows])

    with ThreadPoolExecutor(max_workers=max(1, min(workers, 8))) as pool:
        list(pool.map(submit, batches))
    return len(prepared)


# ---- the tick ---------------------------------------------------------------------------------------------
@dataclass
class TickReport:
    now: str
    lower_bucket: str
    upper_bucket: str
    sweep: bool = False  # lower bound dropped (hourly, or first tick)
    due: int = 0  # index rows found in the due buckets
    read: int = 0  # table entities read: state row + index rows + schedule records (re-reads included)
    started: int = 0
    skipped: int = 0  # Forbid: fire skipped, a run still going
    missed: int = 0  # fire times recorded as missed (listed or counted)
    stopped: int = 0  # Replace: runs stopped
    busy: int = 0  # claimed by another tick (lease) or lost to a concurrent claim
    stale: int = 0  # index rows that no longer matched their schedule (repaired)
    retried: int = 0  # starts that failed transiently, left for the next tick
    expired: list[str] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    leftover: bool = False  # more due than MAX_PER_TICK: the rest waits for the next tick
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _job_status_default(run_uid: str) -> str | None:
    from shared.jobs.record import JobNotFound

    try:
        return _jobs().get(run_uid).status.value
    except JobNotFound:
        return None


def _status_text(value: Any) -> str:
    if value is None:
        return "unknown"
    return value.value if isinstance(value, JobStatus) else str(value)


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def add(self, report: TickReport, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(report, name, getattr(report, name) + amount)

    def append(self, report: TickReport, name: str, value: str) -> None:
        with self.lock:
            getattr(report, name).append(value)


def _read_tick_state() -> dict[str, Any] | None:
    try:
        return dict(due_table().get_entity(STATE_PK, STATE_RK))
    except ResourceNotFoundError:
        return None


def tick(now: datetime | None = None, start_run: StartRun | None = None, stop_run: StopRun | None = None,
         job_status_of: JobStatusOf | None = None, *, max_schedules: int = MAX_PER_TICK,
         workers: int = WORKERS) -> TickReport:
    """Fire what is due at `now` (default `clock.now()`); call it from the minute timer.

    - `start_run(schedule_uid, scheduled_time, template, triggered_by) -> run uid` starts one run as a normal
      job from the template (a copy of the RecurringJob's `applicationInput`); it must be idempotent on
      (schedule_uid, scheduled_time). `triggered_by` is `Schedule (<uid>)`.
    - `stop_run(run_uid)` stops a run (Replace policy); None: Replace cannot stop and says so in the history.
    - `job_status_of(run_uid) -> status string | JobStatus | None` (None: unknown run); default: the job
      store's status. Used for the history, Forbid/Replace and suspendAfterFailures.
    """
    if start_run is None:
        raise TypeError("tick() needs start_run")
    started_at = time.perf_counter()
    now = (now or clock.now()).astimezone(UTC)
    status_of = job_status_of or _job_status_default
    upper = bucket(now)
    tick_state = _read_tick_state()
    last = tick_state.get("lastBucket") if tick_state else None
    sweep = not last or now.minute == 0
    lower = "000000000000" if sweep else bucket(min(bucket_time(last), now) - SAFETY_MARGIN)
    report = TickReport(now=iso(now), lower_bucket=lower, upper_bucket=upper, sweep=sweep, read=1)
    rows = []
    query = due_table().query_entities(
        f"PartitionKey ge '{lower}' and PartitionKey le '{upper}'", select=["PartitionKey", "RowKey"],
        results_per_page=1000)
    for row in query:
        if len(rows) >= max_schedules:
            report.leftover = True
            break
        rows.append((row["PartitionKey"], row["RowKey"]))
    report.due = len(rows)
    report.read += len(rows)
    claimer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    counter = _Counter()
    failed_buckets: list[str] = []

    batch = IndexBatch()

    def handle(item: tuple[str, str]) -> None:
        row_bucket, uid = item
        try:
            _process(uid, row_bucket, now, claimer, start_run, stop_run, status_of, report, counter, batch)
        except Exception as error:  # noqa: BLE001 - one schedule must not stop the others
            log.warning("schedule %s: tick failed: %s", uid, type(error).__name__)
            counter.append(report, "errors", f"{uid}: {type(error).__name__}: {str(error)[:200]}")
            with counter.lock:
                failed_buckets.append(row_bucket)

    if rows:
        if workers > 1 and len(rows) > 1:
            with ThreadPoolExecutor(max_workers=min(workers, len(rows))) as pool:
                list(pool.map(handle, rows))
        else:
            for item in rows:
                handle(item)
    batch.flush()
    done = upper
    if report.leftover:
        done = bucket(bucket_time(rows[-1][0]) - timedelta(minutes=1))
    if failed_buckets:
        done = min(done, bucket(bucket_time(min(failed_buckets)) - timedelta(minutes=1)))
    # An idle tick writes the state row only every few minutes: a lagging lastBucket only widens the next
    # query's lower bound a little, and it saves a write per minute.
    if not last or (done != last and (rows or bucket_time(done) - bucket_time(last) >= STATE_WRITE_EVERY
                                      or done < last)):
        due_table().upsert_entity({"PartitionKey": STATE_PK, "RowKey": STATE_RK, "lastBucket": done,
                                   "lastTick": iso(now)}, mode=UpdateMode.REPLACE)
    report.elapsed = round(time.perf_counter() - started_at, 4)
    return report


def _process(uid: str, row_bucket: str, now: datetime, claimer: str, start_run: StartRun,
             stop_run: StopRun | None, status_of: JobStatusOf, report: TickReport, counter: _Counter,
             batch: IndexBatch) -> None:
    from shared.jobs.record import JobNotFound

    statuses: dict[str, str] = {}
    outcome: dict[str, Any] = {}

    def status(run_uid: str) -> str | None:
        if run_uid not in statuses:
            value = status_of(run_uid)
            statuses[run_uid] = None if value is None else _status_text(value)
        return statuses[run_uid]

    def claim(r) -> bool | None:
        counter.add(report, "read")
        outcome.clear()
        s = r.schedule
        if not s or s.get("state") != "active" or r.status.is_final:
            outcome["kind"] = "inactive"
            return False
        if s.get("dueBucket") != row_bucket:
            outcome.update(kind="stale", bucket=s.get("dueBucket"), next=s.get("nextFire"))
            return False
        pending = s.get("pending")
        if pending:
            claimed_at = parse_iso(pending.get("claimedAt"))
            if pending.get("claimedBy") and claimed_at and now - claimed_at < LEASE:
                outcome["kind"] = "busy"
                return False
            pending.update(claimedBy=claimer, claimedAt=iso(now))  # take over a crashed / released claim
            outcome.update(kind="start", scheduled=pending["scheduled"], stop=list(pending.get("stop") or []),
                           record=r)
            return None
        spec = _spec(s)
        failures = int(s.get("consecutiveFailures") or 0)
        for entry in s.get("runs", []):
            if needs_refresh(entry):
                current = status(entry["uid"])
                if current is None:  # the job service does not know the run (any more): stop following it
                    entry.update(status="unknown", missing=True)
                    continue
                changed, failures = apply_status(s["runs"], entry["uid"], current, now, failures)
        s["consecutiveFailures"] = failures
        decision = decide(spec, ScheduleState(parse_iso(s["lastConsidered"]), tuple(_running(s)), failures), now)
        _record_decision(s, decision)
        outcome.update(missed=decision.missed_total, skipped=1 if decision.skipped else 0)
        if decision.suspend:
            s.update(state="suspended", suspendedReason=decision.suspend_reason, dueBucket=None, nextFire=None)
            outcome.update(kind="suspended")
        elif decision.start is not None:
            s["pending"] = {"scheduled": iso(decision.start), "claimedBy": claimer, "claimedAt": iso(now),
                            "stop": list(decision.stop), "attempts": 0}
            outcome.update(kind="start", scheduled=iso(decision.start), stop=list(decision.stop), record=r)
        else:
            _advance(r, s, decision.next_fire, now)
            outcome.update(kind="moved", bucket=s["dueBucket"], next=s["nextFire"])
        _fit(s, spec)
        return None

    try:
        claimed = _update(uid, claim)
    except JobNotFound:
        batch.drop(uid, row_bucket)
        counter.add(report, "stale")
        return
    kind = outcome.get("kind")
    counter.add(report, "missed", outcome.get("missed", 0))
    counter.add(report, "skipped", outcome.get("skipped", 0))
    if kind == "busy":
        counter.add(report, "busy")
        return
    if kind == "inactive":
        batch.drop(uid, row_bucket)
        return
    if kind == "stale":
        counter.add(report, "stale")
        batch.move(uid, row_bucket, outcome.get("bucket"), outcome.get("next"), authoritative=False)
        return
    if kind == "suspended":
        counter.append(report, "suspended", uid)
        batch.drop(uid, row_bucket)
        return
    if kind == "moved":
        batch.move(uid, row_bucket, outcome.get("bucket"), outcome.get("next"))
        if not outcome.get("bucket"):
            counter.append(report, "expired", uid)
        return
    # kind == "start": this tick holds the claim
    scheduled = parse_iso(outcome["scheduled"])
    stopped, stop_notes = [], []
    for run_uid in outcome.get("stop", []):
        if stop_run is None:
            stop_notes.append(f"{run_uid} not stopped (no stop_run given)")
            continue
        try:
            stop_run(run_uid)
            stopped.append(run_uid)
        except Exception as error:  # noqa: BLE001
            stop_notes.append(f"{run_uid} not stopped ({type(error).__name__})")
    counter.add(report, "stopped", len(stopped))
    run_uid, failure = None, None
    try:
        run_uid = start_run(uid, scheduled, _template(outcome["record"]), triggered_by(uid))
    except Exception as error:  # noqa: BLE001 - recorded in the history
        failure = error
        log.warning("schedule %s: starting the run for %s failed: %s", uid, iso(scheduled), type(error).__name__)
    final: dict[str, Any] = {}

    def finalize(r) -> bool | None:
        final.clear()
        s = r.schedule or {}
        pending = s.get("pending")
        if not pending or pending.get("scheduled") != outcome["scheduled"] or pending.get("claimedBy") != claimer:
            final["kind"] = "lost"
            return False
        spec = _spec(s)
        for stopped_uid in stopped:
            for entry in s.get("runs", []):
                if entry.get("uid") == stopped_uid:
                    entry["stoppedBy"] = f"concurrencyPolicy Replace ({iso(scheduled)})"
        if failure is not None:
            transient = not isinstance(failure, ApiError) or failure.status >= 500
            pending["attempts"] = int(pending.get("attempts") or 0) + 1
            if transient and pending["attempts"] < MAX_START_ATTEMPTS:
                pending["claimedBy"] = None  # released: the next tick tries again
                final["kind"] = "retry"
                return None
            s["runs"].append(run_entry(None, scheduled, "failed", ended=now,
                                       reason=f"could not start: {type(failure).__name__}: "
                                              f"{str(failure)[:200]}"))
            s["counts"]["failedToStart"] = s["counts"].get("failedToStart", 0) + 1
            s["consecutiveFailures"] = int(s.get("consecutiveFailures") or 0) + 1
        else:
            extra = {"note": "; ".join(stop_notes)} if stop_notes else {}
            s["runs"].append(run_entry(run_uid, scheduled, "starting", started=now, **extra))
            s["counts"]["started"] = s["counts"].get("started", 0) + 1
        s["pending"] = None
        if s.get("state") == "active":
            _advance(r, s, spec.next_fire(parse_iso(s["lastConsidered"])), now)
        _fit(s, spec)
        final.update(kind="done", state=s.get("state"), bucket=s.get("dueBucket"), next=s.get("nextFire"))
        return None

    _finalize_write(uid, claimed, finalize, final, report, counter)
    if final.get("kind") == "lost":  # the claim was taken over meanwhile (lease ran out): theirs now
        counter.add(report, "busy")
        return
    if final.get("kind") == "retry":
        counter.add(report, "retried")
        raise RuntimeError(f"start of {iso(scheduled)} failed ({type(failure).__name__}); retried next tick")
    if failure is None:
        counter.add(report, "started")
    if final.get("state") == "active":
        batch.move(uid, row_bucket, final.get("bucket"), final.get("next"))
    else:
        batch.drop(uid, row_bucket)
        if final.get("state") == "expired":
            counter.append(report, "expired", uid)


def _finalize_write(uid: str, claimed, finalize, final: dict[str, Any], report: TickReport,
                    counter: _Counter) -> None:
    """Finalize on the record as the claim wrote it, guarded by the claim's ETag: no read in the usual case.
    When the row changed meanwhile (a status report, a suspend) or the job's status changes (the schedule
    ends), it goes through the store's read-modify-write instead."""
    if claimed is not None and claimed.etag:
        status_before = claimed.status
        attempt = copy.deepcopy(claimed)
        if finalize(attempt) is False:
            return
        if attempt.status == status_before and _jobs().replace_if(attempt):
            return
    _update(uid, finalize)
    counter.add(report, "read")


def _advance(r, s: dict[str, Any], next_fire: datetime | None, now: datetime) -> None:
    """Point the schedule at its next fire, or end it (the RecurringJob completes) when there is none."""
    s["nextFire"] = iso(next_fire)
    s["dueBucket"] = bucket(next_fire) if next_fire else None
    if next_fire is None and s.get("state") == "active":
        s["state"] = "expired"
        if not r.status.is_final:
            r.status = JobStatus.COMPLETED
            r.ended = now
            r.message = "schedule ended: no fire time left (endDate passed)"


def _record_decision(s: dict[str, Any], decision: Decision) -> None:
    s["runs"] = apply_decision_to_runs(s.get("runs", []), decision)
    s["lastConsidered"] = iso(decision.considered_until)
    counts = s.setdefault("counts", {})
    counts["missed"] = counts.get("missed", 0) + decision.missed_total
    counts["skipped"] = counts.get("skipped", 0) + (1 if decision.skipped else 0)


def _fit(s: dict[str, Any], spec: ScheduleSpec) -> None:
    """Apply the history limit, then drop the oldest finished entries until the state fits its table cell."""
    s["runs"], s["olderRuns"] = trim_history(s.get("runs", []), spec.history_limit, s.get("olderRuns"))
    while len(json.dumps(s)) > STATE_JSON_LIMIT and len(s["runs"]) > 1:
        limit = max(1, len(s["runs"]) - max(1, len(s["runs"]) // 10))
        s["runs"], s["olderRuns"] = trim_history(s["runs"], limit, s["olderRuns"])
        if len(s["runs"]) > limit:  # only running entries left: nothing more to drop
            break


# ---- run status from the job service (optional listener) --------------------------------------------------
def run_finished(schedule_uid: str, run_uid: str, status: str | JobStatus, ended: datetime | None = None) -> bool:
    """Record a run's new status in its schedule's history at once (and count failures in a row, suspending
    the schedule when `suspendAfterFailures` is reached). Returns whether anything changed."""
    from shared.jobs.record import JobNotFound

    status_value = _status_text(status)
    when = ended or clock.now()
    changed_box: dict[str, Any] = {}

    def mutate(r) -> bool | None:
        s = r.schedule
        changed_box.clear()
        if not s:
            return False
        changed, failures = apply_status(s.get("runs", []), run_uid, status_value, when,
                                         int(s.get("consecutiveFailures") or 0))
        if not changed:
            return False
        s["consecutiveFailures"] = failures
        spec = _spec(s)
        if (s.get("state") == "active" and spec.suspend_after_failures
                and failures >= spec.suspend_after_failures):
            changed_box["drop"] = s.get("dueBucket")
            s.update(state="suspended", dueBucket=None, nextFire=None,
                     suspendedReason=f"{failures} failed runs in a row "
                                     f"(suspendAfterFailures={spec.suspend_after_failures})")
        changed_box["changed"] = True
        return None

    try:
        _update(schedule_uid, mutate)
    except JobNotFound:
        return False
    if changed_box.get("drop"):
        _drop_index(schedule_uid, changed_box["drop"])
    return bool(changed_box.get("changed"))


def schedule_uid_of(triggered: str | None) -> str | None:
    """`Schedule (<uid>)` -> uid."""
    if triggered and triggered.startswith("Schedule (") and triggered.endswith(")"):
        return triggered[len("Schedule ("):-1]
    return None


class RunListener:
    """A `shared.platform.hooks` listener: `hooks.add(schedules.RUN_LISTENER)` keeps run entries current as runs end."""

    def status_changed(self, record) -> None:
        schedule_uid = schedule_uid_of(getattr(record, "triggered_by", None))
        if schedule_uid and record.status.value in ("completed", "failed", "removed", "running"):
            run_finished(schedule_uid, record.uid, record.status, record.ended)

    def finished(self, record, result) -> None:
        return None


RUN_LISTENER = RunListener()


# ---- suspend / resume / remove / preview / view -----------------------------------------------------------
def _get(uid: str):
    from shared.jobs.record import JobNotFound

    try:
        record = _jobs().get(uid)
    except JobNotFound:
        raise NotFound(f"no recurring job with uid {uid}") from None
    if not record.schedule:
        raise BadRequest(f"job {uid} is not a recurring job")
    return record


def suspend(uid: str, *, reason: str = "suspended by request") -> dict[str, Any]:
    """Stop firing (the runs going on continue). Idempotent."""
    _get(uid)
    box: dict[str, Any] = {}

    def mutate(r) -> bool | None:
        s = r.schedule
        if s.get("state") != "active":
            box["state"] = s.get("state")
            return False
        box["drop"] = s.get("dueBucket")
        s.update(state="suspended", suspendedReason=reason, dueBucket=None, nextFire=None)
        return None

    record = _update(uid, mutate)
    if box.get("state") in ("expired", "removed"):
        raise Conflict(f"recurring job {uid} has {box['state'] == 'expired' and 'ended' or 'been removed'}")
    _drop_index(uid, box.get("drop"))
    return view(record)


def resume(uid: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Fire again from `now` on: fire times that fell while suspended are neither run nor recorded. Resets
    the failures-in-a-row count. Idempotent."""
    now = now or clock.now()
    _get(uid)
    box: dict[str, Any] = {}

    def mutate(r) -> bool | None:
        s = r.schedule
        box.clear()
        if s.get("state") != "suspended":
            box["state"] = s.get("state")
            return False
        spec = _spec(s)
        s.update(state="active", suspendedReason=None, consecutiveFailures=0,
                 lastConsidered=iso(max(now, parse_iso(s["lastConsidered"]))))
        _advance(r, s, spec.next_fire(parse_iso(s["lastConsidered"])), now)
        box.update(bucket=s["dueBucket"], next=s["nextFire"])
        return None

    record = _update(uid, mutate)
    if box.get("state") in ("expired", "removed"):
        raise Conflict(f"recurring job {uid} has {box['state'] == 'expired' and 'ended' or 'been removed'}")
    _put_index(uid, box.get("bucket"), box.get("next"))
    return view(record)


def unregister(uid: str, *, stop_running: bool = False, orchestrations: Orchestrations | None = None,
               stop_run: StopRun | None = None) -> str:
    """Remove a schedule: no further runs. With `stop_running`, its runs still going are stopped too, through
    `stop_run(run_uid)` or else the service's own stop (needs `orchestrations`). Returns a message for the
    DELETE reply. Safe to call for a uid whose record is already gone (clean-up after a failed start)."""
    from shared.jobs.record import JobNotFound

    box: dict[str, Any] = {}

    def mutate(r) -> bool | None:
        s = r.schedule
        box.clear()
        if not s:
            return False
        box.update(drop=s.get("dueBucket"), running=_running(s), state=s.get("state"))
        if s.get("state") == "removed":
            return False
        s.update(state="removed", dueBucket=None, nextFire=None, pending=None)
        return None

    try:
        _update(uid, mutate)
    except JobNotFound:
        return "schedule removed"
    _drop_index(uid, box.get("drop"))
    running = box.get("running") or []
    if not running:
        return "schedule removed; no run was going on"
    if not stop_running:
        return f"schedule removed; {len(running)} run(s) still going, not stopped: {', '.join(running)}"
    stopped, failed = [], []
    for run_uid in running:
        try:
            if stop_run is not None:
                stop_run(run_uid)
            else:
                _service_stop(run_uid, uid, orchestrations)
            stopped.append(run_uid)
        except Exception as error:  # noqa: BLE001
            failed.append(f"{run_uid} ({type(error).__name__})")
    message = f"schedule removed; stopped {len(stopped)} run(s): {', '.join(stopped)}"
    if failed:
        message += f"; could not stop: {', '.join(failed)}"
    return message


def _service_stop(run_uid: str, schedule_uid: str, orchestrations: Orchestrations | None) -> None:
    """Stop a run as its starter would, through service.stop_job."""
    if orchestrations is None:
        raise RuntimeError("no stop_run and no orchestrations given")
    from shared import service

    run = _jobs().get(run_uid)
    caller = SimpleNamespace(id=run.owner, display=triggered_by(schedule_uid))
    service.stop_job(run_uid, caller, orchestrations)


def preview(uid: str, n: int = 10, *, now: datetime | None = None) -> dict[str, Any]:
    """The next `n` fire times (1..1000) from `now`, in UTC and in the schedule's zone."""
    record = _get(uid)
    return preview_state(record.schedule, n, now=now or clock.now())


def preview_state(state: Mapping[str, Any], n: int, *, now: datetime) -> dict[str, Any]:
    spec = _spec(state)
    n = max(1, min(int(n), 1000))
    after = max(now, parse_iso(state.get("lastConsidered")) or now)
    return {"timezone": spec.timezone, "cron": spec.cron.expression, "weekdayDialect": spec.weekday_dialect,
            "state": state.get("state"), "fireTimes": spec.preview(n, after)}


def view(record, *, now: datetime | None = None) -> dict[str, Any]:
    """The schedule as `GET /api/jobs/{uid}` shows it (no I/O): spec, state, next fire, runs, counts."""
    s = record.schedule if not isinstance(record, Mapping) else record
    if not s:
        return {}
    spec = dict(s.get("spec") or {})
    body: dict[str, Any] = {**spec, "state": s.get("state"), "registered": s.get("registered"),
                            "lastConsidered": s.get("lastConsidered"), "nextFire": s.get("nextFire")}
    if s.get("nextFire"):
        try:
            body["nextFireLocal"] = parse_iso(s["nextFire"]).astimezone(_spec(s).cron.zone).isoformat(
                timespec="seconds")
        except Exception:  # noqa: BLE001 - a view never fails
            pass
    if s.get("suspendedReason"):
        body["suspendedReason"] = s["suspendedReason"]
    body.update(runs=list(s.get("runs", [])), olderRuns=dict(s.get("olderRuns") or {}),
                counts=dict(s.get("counts") or {}), consecutiveFailures=s.get("consecutiveFailures", 0))
    if s.get("pending"):
        body["pending"] = {"scheduled": s["pending"].get("scheduled")}
    return body


__all__ = ["RUN_LISTENER", "TickReport", "bucket", "preview", "register", "register_many", "resume",
           "run_finished", "suspend", "tick", "unregister", "validate", "view"]
