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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import service
from shared.dmss import access as dmss_access, client as dmss, jobs as dmss_jobs
from shared.jobs.record import JobRecord
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.errors import Unauthorized
from shared.schedules import tick as schedule_tick


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
) -> str:
    schedule = store().get(schedule_uid)
    prepare = _dmss_prepare(schedule, template) if schedule.dmss_address else None
    result = service.start_job(
        template,
        caller=ScheduleOwner(schedule.owner, schedule.triggered_by),
        orchestrations=orchestrations,
        triggered_by=triggered_by,
        prepare=prepare,
        idempotency_key=f"schedule {schedule_uid} {clock.iso(scheduled)}",
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
