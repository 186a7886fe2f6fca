"""Helpers for the schedule tests against Azurite: recurring-job records and a fake run starter."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

import pytest

from shared.jobs.models import CRON_JOB_TYPE, JOB_TYPE, RECURRING_JOB_HANDLER_TYPE, RECURRING_JOB_TYPE


def recurring_entity(cron: str = "*/5 * * * *", **schedule: Any) -> dict[str, Any]:
    return {
        "type": RECURRING_JOB_TYPE,
        "label": "every few minutes",
        "status": "registered",
        "runner": {"type": RECURRING_JOB_HANDLER_TYPE},
        "applicationInput": {
            "type": JOB_TYPE,
            "label": "the template",
            "status": "not started",
            "applicationInput": {
                "type": "dmss://system/SIMOS/Reference",
                "referenceType": "link",
                "address": "~.~.~.sce",
            },
            "runner": {"type": "dmss://WorkflowDS/Blueprints/Shell", "script": "echo hi"},
        },
        "schedule": {"type": CRON_JOB_TYPE, "cron": cron, "runs": [], **schedule},
    }


def new_record(cron: str = "*/5 * * * *", **schedule: Any):
    from shared.jobs.record import JobRecord
    from shared.jobs.status import JobStatus

    uid = str(uuid.uuid4())
    entity = recurring_entity(cron, **schedule)
    entity["uid"] = uid
    return JobRecord(
        uid=uid,
        kind="recurring",
        status=JobStatus.REGISTERED,
        entity=entity,
        runner_type=RECURRING_JOB_HANDLER_TYPE,
        label=entity["label"],
    )


def stored_record(cron: str = "*/5 * * * *", **schedule: Any):
    from shared.jobs.store import store

    return store().create(new_record(cron, **schedule))


class FakeRuns:
    """start_run / stop_run / job_status_of for tick(): records every call; idempotent on (uid, time) like the
    real one must be. `finish_after` ticks: runs report `running` until told otherwise."""

    def __init__(self, status: str = "completed"):
        self.lock = threading.Lock()
        self.calls: list[tuple[str, datetime]] = []
        self.runs: dict[tuple[str, datetime], str] = {}
        self.status: dict[str, str] = {}
        self.templates: list[dict] = []
        self.triggered: set[str] = set()
        self.stopped: list[str] = []
        self.default_status = status
        self.fail_next = 0

    def start_run(self, schedule_uid: str, scheduled: datetime, template: dict, triggered_by: str) -> str:
        with self.lock:
            self.calls.append((schedule_uid, scheduled))
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("simulated outage")
            key = (schedule_uid, scheduled)
            if key not in self.runs:
                run_uid = str(uuid.uuid4())
                self.runs[key] = run_uid
                self.status[run_uid] = self.default_status
                self.templates.append(template)
                self.triggered.add(triggered_by)
            return self.runs[key]

    def stop_run(self, run_uid: str) -> None:
        with self.lock:
            self.stopped.append(run_uid)
            self.status[run_uid] = "removed"

    def job_status_of(self, run_uid: str) -> str | None:
        with self.lock:
            return self.status.get(run_uid)

    def started_for(self, schedule_uid: str) -> list[datetime]:
        with self.lock:
            return sorted(t for (uid, t) in self.runs if uid == schedule_uid)


@pytest.fixture
def fake_runs():
    return FakeRuns()
