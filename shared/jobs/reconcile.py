"""No job is left behind by a crash: jobs whose orchestration never started, or ended before the job did.

A start stores the job, then starts its orchestration; a host that dies between the two leaves a job `starting`
with no orchestration. An orchestration that fails or is terminated (a bug, a purge, an operator) leaves its job
`starting` or `running` for ever. A timer (`reconcile_jobs` in function_app) looks, every few minutes, at the
jobs in those states created in the last RECENT days and older than GRACE:

- no orchestration at all: start it now (the start activity adopts a runner-side job it may find);
- an orchestration that ended without finishing the job: finish it as failed with the reason, stopping it on
  its runner and keeping its log (the same `finish` activity the orchestration would have called).

Both are safe to run twice: starting an instance that exists is refused by the check before it, and `finish` of
a final job changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.jobs import activities, transitions
from shared.jobs.orchestrator import initial_input
from shared.jobs.outcomes import FinishRequest
from shared.jobs.polling import PollPolicy
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock

log = logging.getLogger(__name__)

GRACE = timedelta(minutes=2)  # a start stores the job and starts its orchestration within seconds
RECENT = timedelta(days=14)
MAX_PER_RUN = 500
ENDED = {"Completed", "Failed", "Terminated", "Canceled"}


class Instances(Protocol):
    """What reconciliation needs of Durable Functions (shared.platform.durable adapts the client)."""

    def runtime_status(self, uid: str) -> str | None: ...

    def start(self, uid: str, input: dict) -> None: ...


@dataclass
class ReconcileReport:
    looked_at: int = 0
    restarted: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"lookedAt": self.looked_at, "restarted": self.restarted, "closed": self.closed, "errors": self.errors}


def reconcile(instances: Instances, now: datetime | None = None) -> ReconcileReport:
    now = now or clock.now()
    report = ReconcileReport()
    rows = store().scan([JobStatus.STARTING, JobStatus.RUNNING], newest=now - GRACE, oldest=now - RECENT)
    for row in rows:
        if report.looked_at >= MAX_PER_RUN:
            break
        if row.get("kind") != "job":
            continue
        report.looked_at += 1
        try:
            _reconcile_one(instances, row["uid"], report)
        except Exception as error:  # noqa: BLE001 - one job must not stop the others; retried next run
            report.errors.append(f"{row['uid']}: {type(error).__name__}")
    return report


def _reconcile_one(instances: Instances, uid: str, report: ReconcileReport) -> None:
    status = instances.runtime_status(uid)
    if status is None:
        record = store().get(uid)
        if record.status.is_final:
            return
        log.warning("job %s has no orchestration: starting it", uid)
        instances.start(uid, initial_input(uid, record.time_limit_seconds or 0, PollPolicy.from_settings()))
        report.restarted.append(uid)
    elif status in ENDED:
        log.warning("job %s outlived its orchestration (%s): finishing it", uid, status)
        activities.finish(FinishRequest(uid, transitions.ORPHANED, last_attempt=True).to_dict())
        report.closed.append(uid)
