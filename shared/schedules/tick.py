"""The minute tick: start each due run exactly once, however many instances tick and wherever one dies.

A tick reads the due rows of the index (`due_index`), and for each schedule:
1. Claim: in one ETag-guarded write of the schedule's record the tick re-decides on the fresh state
   (`policy.decide`), records missed/skipped times, moves `lastConsidered` and sets `pending` = {scheduled
   time, claimer, lease}. A second instance's write fails with 412, is redone on the fresh row and then finds
   the fire claimed (or handled) and writes nothing. `claim` says what it found as a `ClaimOutcome`.
2. Start: `start_run(schedule_uid, scheduled_time, template, triggered_by)`, idempotent on (uid, time).
3. Finalize: record the run (uid, scheduled, started, status, ended), clear `pending`, move the index row.
A crash between 1 and 3 leaves `pending` and the index row where they were; after the lease the next tick
takes the claim over and calls `start_run` again, which the idempotency turns into "return the run uid".

`claim` and `finalize` are pure functions of the record they are given; the store's read-modify-write
(`JobStore.update`) and conditional write (`JobStore.replace_if`) make them safe against concurrent writers.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Union

from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.errors import ApiError
from shared.schedules import due_index
from shared.schedules.cron import UTC
from shared.schedules.due_index import IndexBatch
from shared.schedules.history import job_status, refresh_runs, status_text
from shared.schedules.policy import decide, iso, parse_iso, run_entry, triggered_by
from shared.schedules.state import Lifecycle, Pending, ScheduleRecord, template_of
from shared.webhooks import schedule_events

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)  # a claim not finalised within this may be taken over by another tick
MAX_PER_TICK = 5000  # schedules handled per tick; the rest waits for the next tick (bounded catch-up)
MAX_START_ATTEMPTS = 3  # transient start failures retried on later ticks before the run is recorded failed
WORKERS = 8  # schedules handled in parallel within a tick

StartRun = Callable[[str, datetime, dict, str], str]
StopRun = Callable[[str], Any]
JobStatusOf = Callable[[str], "str | JobStatus | None"]
StatusOf = Callable[[str], "str | None"]


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
    not_yet: int = 0  # (always 0: index rows of this minute due later in it are not returned by the query)
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- what a claim found --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _Tally:
    missed: int = 0  # fire times the claim's decision recorded as missed
    skipped: int = 0  # 1 when it skipped a fire (Forbid)


@dataclass(frozen=True)
class Claimed(_Tally):
    """This tick holds the fire at `scheduled`: start it (after stopping `stop`), then finalize."""

    scheduled: str
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Busy(_Tally):
    """Another tick holds the claim and its lease has not run out."""


@dataclass(frozen=True)
class Stale(_Tally):
    """The index row is not where the schedule says it is: the row is repaired, the schedule untouched."""

    due_bucket: str | None
    next_fire: str | None


@dataclass(frozen=True)
class Moved(_Tally):
    """Nothing to start now (missed, skipped, or not yet due): the index row moves to the next fire."""

    due_bucket: str | None  # None: no fire left, the schedule expired
    next_fire: str | None


@dataclass(frozen=True)
class Inactive(_Tally):
    """Suspended, expired or removed meanwhile, or the job has ended: its index row goes."""


@dataclass(frozen=True)
class Suspended(_Tally):
    """The claim suspended the schedule (suspendAfterFailures reached)."""


@dataclass(frozen=True)
class Missing(_Tally):
    """No record for the row's uid (an orphan row)."""


ClaimOutcome = Union[Claimed, Busy, Stale, Moved, Inactive, Suspended, Missing]
_WRITTEN = (Claimed, Moved, Suspended)  # outcomes for which the claim wrote the record


def claim(record: JobRecord, row_bucket: str, now: datetime, claimer: str, status_of: StatusOf) -> ClaimOutcome:
    """Decide on `record` (as read just now) what this tick does with the due row in `row_bucket`.

    Changes `record` only for the outcomes in `_WRITTEN`; the caller writes it then (ETag-guarded)."""
    state = ScheduleRecord.of(record)
    if state is None or not state.active or record.status.is_final:
        return Inactive()
    if state.due_bucket != row_bucket:
        return Stale(state.due_bucket, state.next_fire)
    if state.pending is not None:
        return _take_over(record, state, state.pending, now, claimer)
    return _decide(record, state, now, claimer, status_of)


def _take_over(record: JobRecord, state: ScheduleRecord, pending: Pending, now: datetime, claimer: str) -> ClaimOutcome:
    """A claim already there: somebody else's while its lease lasts, else ours (it crashed, or released the
    claim after a transient start failure)."""
    if pending.held(now, LEASE):
        return Busy()
    pending.claimed_by, pending.claimed_at = claimer, iso(now)
    state.save(record)
    return Claimed(pending.scheduled, tuple(pending.stop))


def _decide(record: JobRecord, state: ScheduleRecord, now: datetime, claimer: str, status_of: StatusOf) -> ClaimOutcome:
    spec = state.schedule_spec()
    refresh_runs(state, status_of, now)
    decision = decide(spec, state.policy_state(), now)
    state.record_decision(decision)
    tally = {"missed": decision.missed_total, "skipped": 1 if decision.skipped else 0}
    outcome: ClaimOutcome
    if decision.suspend:
        state.suspend(decision.suspend_reason)
        outcome = Suspended(**tally)
    elif decision.start is not None:
        fire = decision.fields(decision.start)  # jitter's actual time, the expression, since when it waited
        state.pending = Pending(iso(decision.start), claimer, iso(now), list(decision.stop), fire=fire)
        outcome = Claimed(state.pending.scheduled, tuple(decision.stop), **tally)
    else:
        state.advance(record, decision.next_fire, now)
        outcome = Moved(state.due_bucket, state.next_fire, **tally)
    state.fit(spec)
    state.save(record)
    return outcome


# ---- what finalizing found ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """What happened to a claimed fire between claim and finalize."""

    scheduled: str
    claimer: str
    now: datetime
    run_uid: str | None = None
    failure: Exception | None = None
    stopped: tuple[str, ...] = ()  # Replace: runs stopped first
    notes: tuple[str, ...] = ()  # Replace: runs that could not be stopped


@dataclass(frozen=True)
class Lost:
    """The claim was taken over meanwhile (its lease ran out): the fire is the other tick's now."""


@dataclass(frozen=True)
class Retry:
    """The start failed transiently: the claim is released for the next tick."""


@dataclass(frozen=True)
class Done:
    state: Lifecycle
    due_bucket: str | None
    next_fire: str | None


FinalOutcome = Union[Lost, Retry, Done]


def finalize(record: JobRecord, attempt: Attempt) -> FinalOutcome:
    """Record the attempt in `record` (unless Lost: then `record` is left as it was)."""
    state = ScheduleRecord.of(record)
    pending = state.pending if state is not None else None
    if (
        state is None
        or pending is None
        or pending.scheduled != attempt.scheduled
        or pending.claimed_by != attempt.claimer
    ):
        return Lost()
    spec = state.schedule_spec()
    scheduled = parse_iso(attempt.scheduled)
    _mark_stopped(state, attempt.stopped, f"concurrencyPolicy Replace ({iso(scheduled)})")
    if attempt.failure is not None and _released(pending, attempt.failure):
        state.save(record)
        return Retry()
    _record_start(state, attempt, scheduled, pending.fire)
    state.pending = None
    if state.active:
        state.advance(record, spec.next_due(state.considered_at), attempt.now)
    state.fit(spec)
    state.save(record)
    return Done(state.state, state.due_bucket, state.next_fire)


def _mark_stopped(state: ScheduleRecord, stopped: tuple[str, ...], note: str) -> None:
    for entry in state.runs:
        if entry.get("uid") in stopped:
            entry["stoppedBy"] = note


def _released(pending: Pending, failure: Exception) -> bool:
    """Count the failed start; release the claim when it may be retried (transient, attempts left)."""
    transient = not isinstance(failure, ApiError) or failure.status >= 500
    pending.attempts += 1
    if transient and pending.attempts < MAX_START_ATTEMPTS:
        pending.claimed_by = None
        return True
    return False


def _record_start(state: ScheduleRecord, attempt: Attempt, scheduled: datetime, fire: dict[str, Any]) -> None:
    failure = attempt.failure
    if failure is not None:
        state.runs.append(
            run_entry(
                None,
                scheduled,
                "failed",
                ended=attempt.now,
                reason=f"could not start: {type(failure).__name__}: {str(failure)[:200]}",
                **fire,
            )
        )
        state.count("failedToStart")
        state.consecutive_failures += 1
        return
    extra = {**fire, **({"note": "; ".join(attempt.notes)} if attempt.notes else {})}
    state.runs.append(run_entry(attempt.run_uid, scheduled, "starting", started=attempt.now, **extra))
    state.count("started")


def _write_final(uid: str, claimed: JobRecord, attempt: Attempt) -> tuple[FinalOutcome, bool]:
    """Finalize on the record as the claim wrote it, guarded by the claim's ETag: no read in the usual case.
    When the row changed meanwhile (a status report, a suspend) or the job's status changes (the schedule
    ends), it goes through the store's read-modify-write instead. Returns (outcome, whether it re-read)."""
    if claimed.etag:
        written = copy.deepcopy(claimed)
        outcome = finalize(written, attempt)
        if isinstance(outcome, Lost):
            return outcome, False
        if written.status == claimed.status and store().replace_if(written):
            return outcome, False
    final: list[FinalOutcome] = []

    def mutate(r: JobRecord) -> bool | None:
        final[:] = [finalize(r, attempt)]
        return False if isinstance(final[0], Lost) else None

    store().update(uid, mutate)
    return final[0], True


# ---- one tick ------------------------------------------------------------------------------------------------
class _Counter:
    """Adds to the report from the worker threads."""

    def __init__(self, report: TickReport) -> None:
        self.report = report
        self.lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self.report, name, getattr(self.report, name) + amount)

    def append(self, name: str, value: str) -> None:
        with self.lock:
            getattr(self.report, name).append(value)


def _remembered(status_of: JobStatusOf) -> StatusOf:
    """`status_of` asked once per run: a claim redone after a 412 does not ask again."""
    seen: dict[str, str | None] = {}

    def status(run_uid: str) -> str | None:
        if run_uid not in seen:
            value = status_of(run_uid)
            seen[run_uid] = None if value is None else status_text(value)
        return seen[run_uid]

    return status


def _stop_runs(stop_run: StopRun | None, uids: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Replace: stop the runs going on before the new one starts. Returns (stopped, notes on the others)."""
    stopped, notes = [], []
    for run_uid in uids:
        if stop_run is None:
            notes.append(f"{run_uid} not stopped (no stop_run given)")
            continue
        try:
            stop_run(run_uid)
            stopped.append(run_uid)
        except Exception as error:  # noqa: BLE001 - noted in the new run's entry
            notes.append(f"{run_uid} not stopped ({type(error).__name__})")
    return tuple(stopped), tuple(notes)


class _Tick:
    """One tick's shared context: its clock, identity, callbacks, report and index writes."""

    def __init__(
        self, now: datetime, start_run: StartRun, stop_run: StopRun | None, status_of: JobStatusOf, report: TickReport
    ) -> None:
        self.now, self.start_run, self.stop_run, self.status_of = now, start_run, stop_run, status_of
        self.claimer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.counter = _Counter(report)
        self.batch = IndexBatch()
        self.failed_buckets: list[str] = []

    def run(self, rows: list[tuple[str, str]], workers: int) -> None:
        if workers > 1 and len(rows) > 1:
            with ThreadPoolExecutor(max_workers=min(workers, len(rows))) as pool:
                list(pool.map(self.handle, rows))
        else:
            for row in rows:
                self.handle(row)

    def handle(self, row: tuple[str, str]) -> None:
        row_bucket, uid = row
        try:
            self.process(uid, row_bucket)
        except Exception as error:  # noqa: BLE001 - one schedule must not stop the others
            log.warning("schedule %s: tick failed: %s", uid, type(error).__name__)
            self.counter.append("errors", f"{uid}: {type(error).__name__}: {str(error)[:200]}")
            with self.counter.lock:
                self.failed_buckets.append(row_bucket)

    def process(self, uid: str, row_bucket: str) -> None:
        outcome, record = self.claim(uid, row_bucket)
        schedule_events.claimed(record, outcome)  # webhooks: missed, skipped, suspended (enqueued only)
        self.counter.add("missed", outcome.missed)
        self.counter.add("skipped", outcome.skipped)
        if isinstance(outcome, Claimed) and record is not None:
            self.fire(uid, row_bucket, outcome, record)
        else:
            self.settle(uid, row_bucket, outcome)

    def claim(self, uid: str, row_bucket: str) -> tuple[ClaimOutcome, JobRecord | None]:
        status_of = _remembered(self.status_of)
        found: list[ClaimOutcome] = []

        def mutate(r: JobRecord) -> bool | None:
            self.counter.add("read")
            found[:] = [claim(r, row_bucket, self.now, self.claimer, status_of)]
            return None if isinstance(found[0], _WRITTEN) else False

        try:
            record = store().update(uid, mutate)
        except JobNotFound:
            return Missing(), None
        return found[0], record

    def settle(self, uid: str, row_bucket: str, outcome: ClaimOutcome) -> None:
        """The index row (and the report) after a claim that started nothing."""
        if isinstance(outcome, Busy):
            self.counter.add("busy")
        elif isinstance(outcome, Stale):
            self.counter.add("stale")
            self.batch.move(uid, row_bucket, outcome.due_bucket, outcome.next_fire, authoritative=False)
        elif isinstance(outcome, Moved):
            self.batch.move(uid, row_bucket, outcome.due_bucket, outcome.next_fire)
            if not outcome.due_bucket:
                self.counter.append("expired", uid)
        else:  # Inactive, Suspended, Missing: the row goes
            self.batch.drop(uid, row_bucket)
            if isinstance(outcome, Suspended):
                self.counter.append("suspended", uid)
            elif isinstance(outcome, Missing):
                self.counter.add("stale")

    def fire(self, uid: str, row_bucket: str, claimed: Claimed, record: JobRecord) -> None:
        scheduled = parse_iso(claimed.scheduled)
        stopped, notes = _stop_runs(self.stop_run, claimed.stop)
        self.counter.add("stopped", len(stopped))
        run_uid, failure = None, None
        try:
            run_uid = self.start_run(uid, scheduled, template_of(record), triggered_by(uid))
        except Exception as error:  # noqa: BLE001 - recorded in the history
            failure = error
            log.warning("schedule %s: starting the run for %s failed: %s", uid, iso(scheduled), type(error).__name__)
        attempt = Attempt(claimed.scheduled, self.claimer, self.now, run_uid, failure, stopped, notes)
        final, reread = _write_final(uid, record, attempt)
        if reread:
            self.counter.add("read")
        self.settle_final(uid, row_bucket, final, attempt)

    def settle_final(self, uid: str, row_bucket: str, final: FinalOutcome, attempt: Attempt) -> None:
        if isinstance(final, Lost):
            self.counter.add("busy")
            return
        if isinstance(final, Retry):
            self.counter.add("retried")
            raise RuntimeError(
                f"start of {attempt.scheduled} failed ({type(attempt.failure).__name__}); retried next tick"
            )
        if attempt.failure is None:
            self.counter.add("started")
        if final.state is Lifecycle.ACTIVE:
            self.batch.move(uid, row_bucket, final.due_bucket, final.next_fire)
            return
        self.batch.drop(uid, row_bucket)
        if final.state is Lifecycle.EXPIRED:
            self.counter.append("expired", uid)


def tick(
    now: datetime | None = None,
    start_run: StartRun | None = None,
    stop_run: StopRun | None = None,
    job_status_of: JobStatusOf | None = None,
    *,
    max_schedules: int = MAX_PER_TICK,
    workers: int = WORKERS,
) -> TickReport:
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
    span = due_index.window(now)
    report = TickReport(now=iso(now), lower_bucket=span.lower, upper_bucket=span.upper, sweep=span.sweep, read=1)
    found = due_index.due_rows(span, max_schedules, now)
    rows, report.leftover, report.not_yet = found.rows, found.leftover, found.not_yet
    report.due = len(rows)
    report.read += found.read
    run = _Tick(now, start_run, stop_run, job_status_of or job_status, report)
    run.run(rows, workers)
    run.batch.flush()
    done = due_index.processed_until(span, rows, report.leftover, run.failed_buckets)
    due_index.save_progress(span, done, now, had_rows=bool(rows))
    report.elapsed = round(time.perf_counter() - started_at, 4)
    return report
