"""Glue between the schedule tick (shared/schedules/tick.py) and the job service: how a due run is started.

The tick only knows `start_run`/`stop_run` callables, so that it does not depend on the job service; this is
the one module of shared/schedules/ that does, and the timer calls the tick through it.

A run is a normal job started from the RecurringJob's template through `service.start_job`, on behalf of the
schedule's owner, with `triggeredBy = "Schedule (<uid>)"`. Starting is idempotent on (schedule uid, scheduled
time) through the service's idempotency keys, so a tick that is retried, or two instances that both got as far
as starting, still make one job.

Schedules started from DMSS give each run a DMSS token: a fresh one from the app's own credentials when it has
them (DMSS_APP_ACCESS_KEY), else the schedule's token; a token DMSS no longer accepts fails that run with a
message that names the cause instead of breaking the schedule silently. Such a run has no DMSS entity of its
own: whoever DMSS lets read (write) the RecurringJob may read (stop) its runs (shared.dmss.access).

Run now and backfill (shared/schedules/backfill.py decides, on the schedule's record) start their runs here
too: a claim written with the record's ETag, the start (idempotent: a backfill time has the tick's key
`schedule <uid> <time>`, a manual run `schedule <uid> manual <key>`), the finalize write. A backfill moves on
in steps (`backfill_step`): the request makes the first, then a small orchestration per schedule
(`drive`, instance `backfill-<uid>`) makes one per timer while the backfill is active, as an activity that has
the Durable client, so that a run ending leads to the next one within seconds instead of the next minute tick.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from shared import service
from shared.dmss import access as dmss_access, client as dmss, jobs as dmss_jobs
from shared.jobs.access import Caller
from shared.jobs.record import JobNotFound, JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.names import BACKFILL_DRIVER, BACKFILL_STEP_ACTIVITY
from shared.platform.errors import ApiError, BadRequest, ServiceUnavailable, Unauthorized
from shared.schedules import backfill, tick as schedule_tick
from shared.schedules.history import job_status
from shared.schedules.policy import parse_iso, triggered_by as schedule_trigger
from shared.schedules.state import template_of

log = logging.getLogger(__name__)

DRIVER, STEP_ACTIVITY = BACKFILL_DRIVER, BACKFILL_STEP_ACTIVITY
DRIVER_STEPS = 40  # steps per generation (continue_as_new keeps the history short)
FIRST_WAIT, MAX_WAIT = 1, 5  # seconds between steps: 1 after a step that did something, doubling to 5


@dataclass(frozen=True)
class ScheduleOwner:
    """Runs act for whoever registered the schedule (their identity is what authorization checks)."""

    id: str | None
    name: str | None = None

    @property
    def display(self) -> str:
        return self.name or self.id or "anonymous"


def _dmss_prepare(schedule: JobRecord, template: dict[str, Any]):
    address = f"{schedule.dmss_address}.applicationInput"
    if dmss_jobs.app_has_credentials():
        token = dmss_jobs.renew_token_for_schedule(schedule.dmss_address)
    else:
        token = schedule.secret_token or ""
        try:
            dmss.get_document(schedule.dmss_address, 0, token=token)
        except Unauthorized:
            raise dmss_jobs.TokenRenewalImpossible(
                f"run of schedule {schedule.uid} not started: {dmss_jobs.NO_APP_CREDENTIALS}"
            ) from None

    def prepare(record: JobRecord) -> None:
        environment = dmss_jobs.job_environment(address, template, token, record.uid)
        environment.pop("DMSS_TOKEN", None)
        record.dmss_address = None  # the run has no DMSS entity of its own to write back to
        record.secret_token = token
        record.extra["environment"] = environment
        record.extra[dmss_access.ACCESS_ADDRESS] = schedule.dmss_address  # who may read or stop it: DMSS says
        if schedule.extra.get(dmss_access.ACL_DOCUMENT):
            record.extra[dmss_access.ACL_DOCUMENT] = schedule.extra[dmss_access.ACL_DOCUMENT]

    return prepare


def start_run(
    orchestrations: service.Orchestrations,
    schedule_uid: str,
    scheduled: datetime,
    template: dict[str, Any],
    triggered_by: str,
    *,
    idempotency_key: str | None = None,
) -> str:
    """Start one run (idempotent on (schedule, scheduled time), or on `idempotency_key` when given)."""
    schedule = store().get(schedule_uid)
    prepare = _dmss_prepare(schedule, template) if schedule.dmss_address else None
    result = service.start_job(
        template,
        caller=ScheduleOwner(schedule.owner, schedule.triggered_by),
        orchestrations=orchestrations,
        triggered_by=triggered_by,
        prepare=prepare,
        idempotency_key=idempotency_key or f"schedule {schedule_uid} {clock.iso(scheduled)}",
    )
    return result.uid


def stop_run(orchestrations: service.Orchestrations, run_uid: str) -> None:
    run = store().get(run_uid)
    service.stop_job(run_uid, ScheduleOwner(run.owner), orchestrations)


def tick(orchestrations: service.Orchestrations, now: datetime | None = None) -> schedule_tick.TickReport:
    return schedule_tick.tick(
        now or clock.now(),
        start_run=lambda *args: start_run(orchestrations, *args),
        stop_run=lambda uid: stop_run(orchestrations, uid),
    )


# ---- run now and backfill ---------------------------------------------------------------------------------------
def _claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _remembered(status_of: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """Each run's status asked once, however often a 412 makes the claim run again."""
    seen: dict[str, str | None] = {}

    def status(run_uid: str) -> str | None:
        if run_uid not in seen:
            seen[run_uid] = status_of(run_uid)
        return seen[run_uid]

    return status


def _start(orchestrations: service.Orchestrations, schedule_uid: str, claim: backfill.Claim, template: dict):
    """Stop what the claim says (Replace), then start its run; failures are recorded, not raised."""
    stopped = []
    for run_uid in claim.stop:
        try:
            stop_run(orchestrations, run_uid)
            stopped.append(run_uid)
        except Exception as error:  # noqa: BLE001 - the new run starts all the same
            log.warning("schedule %s: stopping run %s failed: %s", schedule_uid, run_uid, type(error).__name__)
    key = f"schedule {schedule_uid} manual {claim.key}" if claim.kind == "manual" else None
    try:
        run_uid = start_run(
            orchestrations,
            schedule_uid,
            parse_iso(claim.scheduled),
            template,
            schedule_trigger(schedule_uid),
            idempotency_key=key,
        )
    except Exception as error:  # noqa: BLE001 - recorded in the history (or the claim released for a retry)
        log.warning(
            "schedule %s: %s run for %s failed to start: %s",
            schedule_uid,
            claim.kind,
            claim.scheduled,
            type(error).__name__,
        )
        return backfill.Started(claim, failure=error, stopped=tuple(stopped))
    return backfill.Started(claim, run_uid, stopped=tuple(stopped))


def _finalize(
    schedule_uid: str, claimed: JobRecord, results: list[backfill.Started], claimer: str, now: datetime
) -> None:
    """Record the starts on the record as the claim wrote it, guarded by the claim's ETag (no read in the usual
    case, as the tick's finalize); when the row changed meanwhile (a run's status, a suspend), through the
    store's read-modify-write."""
    if claimed.etag:
        written = copy.deepcopy(claimed)
        if backfill.finalize(written, results, claimer, now) and store().replace_if(written):
            return
    store().update(schedule_uid, lambda r: None if backfill.finalize(r, results, claimer, now) else False)


@dataclass(frozen=True)
class RunNow:
    uid: str
    status: str
    message: str
    existed: bool = False

    def body(self) -> dict[str, Any]:
        return {"uid": self.uid, "message": self.message, "status": self.status}


def run_now(
    orchestrations: service.Orchestrations,
    schedule_uid: str,
    caller: Caller | None,
    idempotency_key: str | None = None,
    *,
    now: datetime | None = None,
) -> RunNow:
    """POST /api/jobs/{uid}/run: start a run of the recurring job at once, for its owner, under its concurrency
    policy, recorded in its history as `manual` with who asked. A repeated Idempotency-Key (same caller)
    answers with the first request's run."""
    if idempotency_key and len(idempotency_key) > 200:
        raise BadRequest("Idempotency-Key is longer than 200 characters")
    record = service.recurring_record(schedule_uid, caller, "start runs of")
    now, claimer, status_of = now or clock.now(), _claimer(), _remembered(job_status)
    requester = caller.display if caller is not None else "anonymous"
    key = backfill.request_key(caller.id if caller is not None else None, idempotency_key)
    out = backfill.ManualClaim()

    def mutate(r: JobRecord) -> bool | None:
        changed = backfill.claim_manual(
            r, now, claimer, status_of, schedule_tick.LEASE, key=key, requested_by=requester, out=out
        )
        return None if changed else False

    record = store().update(record.uid, mutate)
    if out.existing is not None:
        status = job_status(out.existing) or out.existing_status or "unknown"
        return RunNow(out.existing, status, f"already started with this Idempotency-Key: job {out.existing}", True)
    result = _start(orchestrations, record.uid, out.claim, template_of(record))
    _finalize(record.uid, record, [result], claimer, now)
    if result.failure is not None:
        if isinstance(result.failure, ApiError):
            raise result.failure
        raise ServiceUnavailable(f"the run could not be started ({type(result.failure).__name__}); try again")
    return RunNow(
        result.run_uid,
        JobStatus.STARTING.value,
        f"run {result.run_uid} of {record.uid} is starting (manual, requested by {requester})",
    )


def backfill_step(orchestrations: service.Orchestrations, schedule_uid: str, *, now: datetime | None = None) -> dict:
    """One step of a schedule's backfill: count the runs that ended, claim what the policy lets start, start
    it, record it. Returns {active, started, finished}; `active` False: nothing more to do."""
    now, claimer, status_of = now or clock.now(), _claimer(), _remembered(job_status)
    found = [backfill.StepClaim()]

    def mutate(r: JobRecord) -> bool | None:
        found[0] = backfill.claim_step(r, now, claimer, status_of, schedule_tick.LEASE)
        return None if found[0].changed else False

    record = store().update(schedule_uid, mutate)
    step = found[0]
    if step.claims:
        template = template_of(record)
        started = [_start(orchestrations, schedule_uid, c, template) for c in step.claims]
        _finalize(schedule_uid, record, started, claimer, now)
    return {"active": step.active, "started": len(step.claims), "finished": step.finished}


def safe_step(orchestrations: service.Orchestrations, schedule_uid: str) -> dict:
    """The driver's activity: a step that never fails (a failure waits for the next step)."""
    try:
        return backfill_step(orchestrations, schedule_uid)
    except JobNotFound:  # the recurring job is gone: nothing left to drive
        return {"active": False, "started": 0, "finished": 0}
    except Exception as error:  # noqa: BLE001 - the driver tries again after its wait
        log.warning("backfill step of schedule %s failed: %s", schedule_uid, type(error).__name__)
        return {"active": True, "started": 0, "finished": 0, "error": type(error).__name__}


def drive(context):
    """The backfill driver (orchestrator, replayed: only the Durable context's time and results decide): a
    step, a timer, again, while the backfill is active; continue_as_new every DRIVER_STEPS steps."""
    data = context.get_input() or {}
    uid, wait = data.get("uid"), int(data.get("wait") or FIRST_WAIT)
    for _ in range(DRIVER_STEPS):
        try:
            step = yield context.call_activity(STEP_ACTIVITY, uid)
        except Exception:  # noqa: BLE001 - TaskFailed (past functionTimeout): the driver must not die with it
            step = {"active": True}
        if not step.get("active"):
            return {"uid": uid, "done": True}
        wait = FIRST_WAIT if step.get("started") or step.get("finished") else min(wait * 2, MAX_WAIT)
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))
    context.continue_as_new({"uid": uid, "wait": wait})
    return None


class Drivers:
    """Starts a schedule's backfill driver unless it is going (the Durable client, from an async function)."""

    ACTIVE = ("Running", "Pending", "ContinuedAsNew")

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._client, self._loop = client, loop

    def _call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def ensure(self, schedule_uid: str) -> None:
        instance = f"backfill-{schedule_uid}"
        status = self._call(self._client.get_status(instance))
        runtime = getattr(getattr(status, "runtime_status", None), "value", None)
        if runtime in self.ACTIVE:
            return
        try:
            self._call(self._client.start_new(DRIVER, instance_id=instance, client_input={"uid": schedule_uid}))
        except Exception as error:  # noqa: BLE001 - started meanwhile by another request: one is enough
            log.info("backfill driver of %s not started: %s", schedule_uid, type(error).__name__)


def request_backfill(
    orchestrations: service.Orchestrations, drivers: Drivers | None, schedule_uid: str, data: Any, caller: Caller | None
) -> dict[str, Any]:
    """POST /api/jobs/{uid}/backfill: queue the fire times, make the first step, start the driver."""
    body = service.request_backfill(schedule_uid, data, caller)
    uid = body["schedule"]
    if body["queued"]:
        backfill_step(orchestrations, uid)
    body["backfill"] = service.backfill_view(uid)
    progress = body["backfill"]
    if drivers is not None and (progress["queued"] or progress["starting"] or progress["running"]):
        drivers.ensure(uid)  # also restarts a driver that died: re-sending a backfill queues nothing twice
    return body
