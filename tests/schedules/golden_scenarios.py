"""Scripted schedule histories whose stored `schedule` JSON and `view()` were captured from the code before
shared/schedules/ was split into modules (golden_state.json): the typed state record must store and show
exactly what the dict of string keys did.

    .venv/bin/python -m tests.schedules.golden_scenarios   # rewrite golden_state.json from the current code

Every scenario uses fixed uids, fixed times and run uids derived from (schedule uid, scheduled time), so that
its stored JSON is the same on every run.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from shared.jobs.models import RECURRING_JOB_HANDLER_TYPE
from shared.jobs.record import ROW, JobRecord
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.schedules import history, operations, tick
from tests.support.azurite import start_azurite

from .conftest import recurring_entity

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden_state.json"
UTC = timezone.utc
T0 = datetime(2026, 5, 3, 23, 59, 30, tzinfo=UTC)


def minute(i: int, second: int = 5) -> datetime:
    return datetime(2026, 5, 4, tzinfo=UTC) + timedelta(minutes=i, seconds=second)


class Runs:
    """A deterministic run starter: run uid = uuid5(schedule uid, scheduled time)."""

    def __init__(self, status: str = "completed") -> None:
        self.status: dict[str, str] = {}
        self.default = status
        self.failures: dict[str, int] = {}  # schedule uid -> starts still to fail

    def start_run(self, schedule_uid: str, scheduled: datetime, template: dict, triggered_by: str) -> str:
        if self.failures.get(schedule_uid):
            self.failures[schedule_uid] -= 1
            raise ConnectionError("simulated outage")
        run_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{schedule_uid}|{scheduled.isoformat()}"))
        self.status.setdefault(run_uid, self.default)
        return run_uid

    def stop_run(self, run_uid: str) -> None:
        self.status[run_uid] = "removed"

    def job_status_of(self, run_uid: str) -> str | None:
        return self.status.get(run_uid)


def _record(uid: str, cron: str, **schedule: Any) -> JobRecord:
    entity = recurring_entity(cron, **schedule)
    entity["uid"] = uid
    return store().create(
        JobRecord(
            uid=uid,
            kind="recurring",
            status=JobStatus.REGISTERED,
            entity=entity,
            runner_type=RECURRING_JOB_HANDLER_TYPE,
            label=entity["label"],
        )
    )


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.golden.schedules"))


def _snapshot(api, uid: str) -> dict[str, Any]:
    row = store().jobs.get_entity(uid, ROW)
    return {"stored": row["schedule"], "status": row["status"], "view": json.dumps(api.view(store().get(uid)))}


def _ticks(api, runs: Runs, minutes) -> None:
    for i in minutes:
        api.tick(minute(i), runs.start_run, runs.stop_run, runs.job_status_of)


def allow(api) -> list[dict]:
    uid, runs = _uid("allow"), Runs()
    api.register(_record(uid, "*/5 * * * *", historyLimit=3), now=T0)
    _ticks(api, runs, range(0, 31))
    return [_snapshot(api, uid)]


def forbid(api) -> list[dict]:
    uid, runs = _uid("forbid"), Runs("running")
    api.register(_record(uid, "*/5 * * * *", concurrencyPolicy="Forbid"), now=T0)
    _ticks(api, runs, range(0, 11))
    skipping = _snapshot(api, uid)
    for run_uid in runs.status:
        runs.status[run_uid] = "completed"
    _ticks(api, runs, range(11, 16))
    return [skipping, _snapshot(api, uid)]


def replace(api) -> list[dict]:
    uid, runs = _uid("replace"), Runs("running")
    api.register(_record(uid, "*/5 * * * *", concurrencyPolicy="Replace", timezone="Europe/Oslo"), now=T0)
    _ticks(api, runs, range(0, 6))
    return [_snapshot(api, uid)]


def missed(api) -> list[dict]:
    uid, runs = _uid("missed"), Runs()
    api.register(_record(uid, "* * * * *", historyLimit=500), now=T0)
    _ticks(api, runs, [0, 3 * 60 + 7])
    late = _uid("late")
    api.register(_record(late, "0 * * * *", startingDeadlineSeconds=300), now=T0)
    _ticks(api, runs, [3 * 60 + 10, 3 * 60 + 11])
    return [_snapshot(api, uid), _snapshot(api, late)]


def failures(api) -> list[dict]:
    uid, runs = _uid("failures"), Runs("failed")
    api.register(_record(uid, "*/5 * * * *", suspendAfterFailures=2), now=T0)
    _ticks(api, runs, range(0, 16))
    suspended = _snapshot(api, uid)
    api.resume(uid, now=minute(16, second=30))
    return [suspended, _snapshot(api, uid)]


def retry(api) -> list[dict]:
    uid, runs = _uid("retry"), Runs()
    runs.failures[uid] = 1
    api.register(_record(uid, "*/5 * * * *"), now=T0)
    _ticks(api, runs, [0])
    pending = _snapshot(api, uid)
    _ticks(api, runs, [1])
    failing = _uid("failing")
    runs.failures[failing] = 3
    api.register(_record(failing, "*/5 * * * *"), now=minute(1, second=30))
    _ticks(api, runs, [5, 6, 7])
    return [pending, _snapshot(api, uid), _snapshot(api, failing)]


def expiry(api) -> list[dict]:
    uid, runs = _uid("expiry"), Runs()
    api.register(_record(uid, "*/5 * * * *", endDate="2026-05-04T00:10"), now=T0)
    _ticks(api, runs, range(0, 12))
    return [_snapshot(api, uid)]


def suspended(api) -> list[dict]:
    uid, runs = _uid("suspended"), Runs()
    registered = api.register(
        _record(uid, "30 7 * * mon-fri", suspend=True, timezone="Europe/Oslo", weekdayDialect="dmjob", custom="kept"),
        now=T0,
    )
    first = _snapshot(api, uid)
    api.resume(uid, now=minute(3))
    _ticks(api, runs, [4])
    api.suspend(uid, reason="maintenance")
    return [{"registered": json.dumps(registered)}, first, _snapshot(api, uid)]


def listener(api) -> list[dict]:
    uid, runs = _uid("listener"), Runs("running")
    api.register(_record(uid, "*/5 * * * *", suspendAfterFailures=1), now=T0)
    _ticks(api, runs, [0])
    run_uid = next(iter(runs.status))
    api.status_changed(
        SimpleNamespace(uid=run_uid, triggered_by=f"Schedule ({uid})", status=JobStatus.RUNNING, ended=None)
    )
    running = _snapshot(api, uid)
    api.status_changed(
        SimpleNamespace(uid=run_uid, triggered_by=f"Schedule ({uid})", status=JobStatus.FAILED, ended=minute(2))
    )
    return [running, _snapshot(api, uid)]


def removed(api) -> list[dict]:
    uid, runs = _uid("removed"), Runs("running")
    api.register(_record(uid, "*/5 * * * *"), now=T0)
    _ticks(api, runs, [0])
    message = api.unregister(uid, stop_running=True, stop_run=runs.stop_run)
    return [{"message": message}, _snapshot(api, uid)]


def crashed_claim(api) -> list[dict]:
    uid, runs = _uid("crashed"), Runs()
    api.register(_record(uid, "*/5 * * * *"), now=T0)

    def crash_after_claim(r):  # a claim in another key order, left by a tick that died
        r.schedule["pending"] = {
            "scheduled": "2026-05-04T00:00:00Z",
            "claimedBy": "dead",
            "attempts": 0,
            "claimedAt": "2026-05-04T00:00:05Z",
            "stop": [],
        }
        r.schedule["lastConsidered"] = "2026-05-04T00:00:05Z"

    store().update(uid, crash_after_claim)
    _ticks(api, runs, [1])
    held = _snapshot(api, uid)
    _ticks(api, runs, [3])
    return [held, _snapshot(api, uid)]


SCENARIOS: dict[str, Callable[[Any], list[dict]]] = {
    f.__name__: f
    for f in (allow, forbid, replace, missed, failures, retry, expiry, suspended, listener, removed, crashed_claim)
}


def current_api():
    """The schedules API of the code as it is now (after the split into modules)."""
    return SimpleNamespace(
        register=operations.register,
        tick=tick.tick,
        suspend=operations.suspend,
        resume=operations.resume,
        unregister=operations.unregister,
        view=operations.view,
        status_changed=history.RUN_LISTENER.status_changed,
    )


def main() -> None:
    server = start_azurite()
    os.environ["AzureWebJobsStorage"] = server.connection_string
    try:
        api = current_api()
        out = {}
        for name, scenario in SCENARIOS.items():
            os.environ["JOB_STORE_PREFIX"] = "g" + uuid.uuid4().hex[:10]
            out[name] = scenario(api)
        GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN} ({len(out)} scenarios)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
