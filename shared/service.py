"""The API as `function_app` sees it: one entry per route, putting plain jobs and recurring jobs together.

A plain job's operations are in `shared.jobs.operations`; a recurring job is a job record too, whose schedule
is kept by `shared.schedules`. This module is the only place that knows both, so neither package imports the
other's operations: a recurring start registers its schedule as its launch, a recurring read adds the
schedule's view, a recurring stop removes the schedule (and, if asked, stops its runs as a plain job is
stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.jobs import freshness, operations
from shared.jobs.access import Caller, authorize
from shared.jobs.operations import Orchestrations, Prepare, StartResult, get_log, get_record, get_result
from shared.jobs.operations import health, report_progress, status_body as job_status_body
from shared.jobs.record import JobRecord
from shared.jobs.store import store
from shared.platform import clock, lazy
from shared.platform.errors import BadRequest
from shared.platform.parsing import parse_json

# what starts and recurring jobs need, not a plain job's status read (often a cold instance's first request)
models = lazy.module("shared.jobs.models")
notify = lazy.module("shared.webhooks.notify")
policy = lazy.module("shared.schedules.policy")
schedule_events = lazy.module("shared.webhooks.schedule_events")
schedules = lazy.module("shared.schedules.operations")
validation = lazy.module("shared.jobs.validation")

__all__ = [
    "Orchestrations",
    "StartResult",
    "get_job",
    "get_log",
    "get_result",
    "health",
    "backfill_view",
    "cancel_backfill",
    "list_jobs",
    "parse_json",
    "recurring_record",
    "request_backfill",
    "preview_schedule",
    "report_progress",
    "resume_schedule",
    "start_job",
    "status_body",
    "stop_job",
    "suspend_schedule",
]


def start_job(
    data: Any,
    *,
    caller: Caller | None,
    orchestrations: Orchestrations,
    idempotency_key: str | None = None,
    triggered_by: str | None = None,
    prepare: Prepare | None = None,
) -> StartResult:
    """Validate, store and start a job (or register a recurring one)."""
    job = validation.validate_job(data)
    if triggered_by is None:  # a schedule's run: its template's receivers were checked when it was registered
        notify.check(job, caller)  # its one-off webhook receivers: a 422 before anything is stored
    if isinstance(job, models.RecurringJob):
        return operations.start_job(
            job,
            caller=caller,
            launch=schedules.register,
            undo=schedules.unregister,
            idempotency_key=idempotency_key,
            triggered_by=triggered_by,
            prepare=prepare,
        )
    return operations.start_job(
        job,
        caller=caller,
        launch=operations.orchestrated(orchestrations),
        idempotency_key=idempotency_key,
        triggered_by=triggered_by,
        prepare=prepare,
    )


def status_body(record: JobRecord) -> dict[str, Any]:
    body = job_status_body(record)
    if record.kind == "recurring":
        body["schedule"] = schedules.view(record)
    return body


def get_job(
    uid: str, caller: Caller | None = None, job_token: str | None = None, *, wake: freshness.Wake | None = None
) -> dict[str, Any]:
    record = get_record(uid)
    authorize(record, caller, "read", job_token)
    freshness.on_read(record, clock.now(), wake)
    return status_body(record)


def list_jobs(
    status: str | None,
    limit: str | None,
    token: str | None,
    caller: Caller | None = None,
    *,
    wake: freshness.Wake | None = None,
) -> dict[str, Any]:
    """The caller's jobs (shared.jobs.operations.list_jobs); the page's running jobs are woken as a read of each
    would wake it (shared.jobs.freshness.on_list)."""
    body = operations.list_jobs(status, limit, token, caller)
    freshness.on_list(body["jobs"], clock.now(), wake)
    return body


def stop_job(
    uid: str, caller: Caller | None, orchestrations: Orchestrations, *, stop_running: bool = False
) -> dict[str, Any]:
    record = get_record(uid)
    authorize(record, caller, "stop")
    if record.kind != "recurring":
        return operations.stop_job(record, caller, orchestrations)
    message = schedules.unregister(
        record.uid, stop_running=stop_running, stop_run=lambda run_uid: _stop_run(run_uid, record.uid, orchestrations)
    )
    record = operations.mark_removed(record.uid, caller, message)
    return {"status": record.status.value, "response": message}


@dataclass(frozen=True)
class _ScheduleCaller:
    """A run is stopped as its starter would stop it: the schedule's owner, shown as the schedule."""

    id: str | None
    display: str


def _stop_run(run_uid: str, schedule_uid: str, orchestrations: Orchestrations) -> None:
    run = store().get(run_uid)
    operations.stop_job(run, _ScheduleCaller(run.owner, policy.triggered_by(schedule_uid)), orchestrations)


# ---- schedules --------------------------------------------------------------------------------------------
def _recurring(uid: str, caller: Caller | None, action: str) -> JobRecord:
    record = get_record(uid)
    authorize(record, caller, action)
    if record.kind != "recurring":
        raise BadRequest(f"job {record.uid} is not a recurring job")
    return record


def recurring_record(uid: str, caller: Caller | None, action: str) -> JobRecord:
    """The recurring job `uid`, if `caller` may `action` it (404, 403, or 400 for a plain job)."""
    return _recurring(uid, caller, action)


def request_backfill(uid: str, data: Any, caller: Caller | None) -> dict[str, Any]:
    """Queue a backfill (shared.schedules.runs starts its runs). The body is `{from, to}`."""
    record = _recurring(uid, caller, "start runs of")
    who = caller.display if caller is not None else "anonymous"
    return schedules.request_backfill(record.uid, parse_json(data) if isinstance(data, bytes) else data, who)


def cancel_backfill(uid: str, caller: Caller | None) -> dict[str, Any]:
    """Drop a backfill's fire times still queued (its runs already started go on)."""
    return schedules.cancel_backfill(_recurring(uid, caller, "start runs of").uid)


def backfill_view(uid: str) -> dict[str, Any]:
    """A schedule's backfill progress."""
    return schedules.backfill_view(store().get(uid))


def suspend_schedule(uid: str, caller: Caller | None) -> dict[str, Any]:
    """Suspend; `schedule.suspended` once for a request that suspended an active schedule (schedule_events)."""
    record = _recurring(uid, caller, "suspend")
    view = schedules.suspend(record.uid)
    schedule_events.requested_suspend(record)
    return view


def resume_schedule(uid: str, caller: Caller | None) -> dict[str, Any]:
    return schedules.resume(_recurring(uid, caller, "resume").uid)


def preview_schedule(uid: str, count: str | None, caller: Caller | None) -> dict[str, Any]:
    try:
        n = int(count) if count else 5
    except ValueError:
        raise BadRequest(f"next must be an integer, not {count[:20]!r}") from None
    if not 1 <= n <= 100:
        raise BadRequest("next must be between 1 and 100")
    return schedules.preview(_recurring(uid, caller, "read").uid, n)
