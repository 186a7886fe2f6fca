"""Retry policies end to end through the local host, on a ManualClock (backoff waits and time limits are durable
timers the test moves past) with real shell jobs: a script that fails twice and then succeeds is retried to
success with its three attempts listed and each attempt's log and result kept; notOnExitCodes stops retrying;
a stop during a backoff wait ends the job removed with no further attempt; a start activity run again (a crash
after the runner launched, before the handle was stored) still launches one process per attempt; the time
limit counts across attempts and waits; a recurring job's run counts once toward its failures; bad policies are
refused with nothing stored.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from devhost import DevHost
from runners.registry import default_registry
from shared.jobs import activities
from shared.jobs.store import store
from shared.platform.clock import ManualClock

from .conftest import FINAL, HOST_SETTINGS, ROOT, shell_job

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def host(storage_env, tmp_path, monkeypatch):
    monkeypatch.setenv("JOB_WORK_DIR", str(tmp_path / "work"))
    with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=HOST_SETTINGS) as running:
        yield running


def counting_script(runs: Path, succeed_at: int = 0, code: int = 1, then: str = "") -> str:
    """Counts its runs in `runs` (one line each); fails with `code` until run `succeed_at` (0: never)."""
    return (
        f'echo run >> {runs}; n=$(wc -l < {runs}); echo "attempt $n says hello"; '
        'echo "result of attempt $n" > "$JOB_RESULT_FILE"; '
        f"{then}"
        f'[ {succeed_at} -gt 0 ] && [ "$n" -ge {succeed_at} ] && exit 0; exit {code}'
    )


def start(host, job: dict) -> str:
    response = requests.post(f"{host.url}/api/jobs", json=job, timeout=30)
    assert response.status_code == 202, response.text
    host.wait_idle()
    return response.json()["uid"]


def status(host, uid: str) -> dict:
    response = requests.get(f"{host.url}/api/jobs/{uid}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def drive(host, uid: str, until, step: float = 5, budget: float = 1200, wall: float = 90) -> dict:
    """Move the clock `step` seconds at a time (shell scripts run in real time meanwhile) until `until(body)`."""
    moved, deadline = 0.0, time.monotonic() + wall
    while True:
        body = status(host, uid)
        if until(body):
            return body
        if moved >= budget or time.monotonic() > deadline:
            raise AssertionError(f"job {uid} never got there ({moved} s on the clock): {body}")
        time.sleep(0.05)  # let a script that is running end in real time
        host.advance(step)
        moved += step


def final(body: dict) -> bool:
    return body["status"] in FINAL


def waiting_for(attempt: int):
    return lambda body: len(body.get("attempts") or []) >= attempt and body["status"] == "starting"


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_retried_to_success_with_every_attempt_listed_and_kept(host, tmp_path):
    runs = tmp_path / "runs"
    job = shell_job(counting_script(runs, succeed_at=3), retry={"maxAttempts": 3, "backoffSeconds": 30})
    uid = start(host, job)
    waiting = drive(host, uid, waiting_for(2))
    assert waiting["message"] == "attempt 2 of 3 after exit code 1: starts in 30 s", waiting
    assert waiting["attempts"][0]["status"] == "failed" and waiting["attempts"][0]["exitCode"] == 1
    body = drive(host, uid, final)
    assert body["status"] == "completed", body
    assert body["message"] == "exit code 0 (attempt 3 of 3)"
    assert body["log"] == ["attempt 3 says hello"]
    assert [(a["attempt"], a["status"], a["exitCode"]) for a in body["attempts"]] == [
        (1, "failed", 1),
        (2, "failed", 1),
        (3, "completed", 0),
    ]
    assert all(a["started"] and a["ended"] for a in body["attempts"])
    assert body["attempts"][1]["started"] >= body["attempts"][0]["ended"]
    assert lines(runs) == 3
    for n in (1, 2, 3):
        kept = requests.get(f"{host.url}/api/jobs/{uid}/result", params={"attempt": n}, timeout=30)
        assert kept.status_code == 200, kept.text
        assert kept.json()["log"] == f"attempt {n} says hello"
        assert kept.json()["result"].strip() == f"result of attempt {n}"
        assert kept.json()["status"] == ("completed" if n == 3 else "failed")
    last = requests.get(f"{host.url}/api/jobs/{uid}/result", timeout=30).json()
    assert last["result"].strip() == "result of attempt 3" and last["status"] == "completed"
    missing = requests.get(f"{host.url}/api/jobs/{uid}/result", params={"attempt": 4}, timeout=30)
    assert missing.status_code == 404
    bad = requests.get(f"{host.url}/api/jobs/{uid}/result", params={"attempt": "one"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["status"] == 400


def test_not_on_exit_codes_stops_retrying(host, tmp_path):
    runs = tmp_path / "runs"
    job = shell_job(counting_script(runs, code=3), retry={"maxAttempts": 3, "backoffSeconds": 5, "notOnExitCodes": [3]})
    uid = start(host, job)
    body = drive(host, uid, final)
    assert body["status"] == "failed"
    assert body["message"] == "the script failed with exit code 3 (attempt 1 of 3: exit code 3 is not retried)"
    assert len(body["attempts"]) == 1 and lines(runs) == 1
    host.advance(60)
    assert lines(runs) == 1


def test_stop_during_the_backoff_wait_ends_the_job_with_no_further_attempt(host, tmp_path):
    runs = tmp_path / "runs"
    uid = start(host, shell_job(counting_script(runs), retry={"maxAttempts": 3, "backoffSeconds": 300}))
    drive(host, uid, waiting_for(2))
    stopped = requests.delete(f"{host.url}/api/jobs/{uid}", timeout=30)
    assert stopped.status_code == 200 and stopped.json()["status"] == "removed", stopped.text
    host.wait_idle()
    host.advance(600)
    body = status(host, uid)
    assert body["status"] == "removed" and body["ended"]
    assert [a["attempt"] for a in body["attempts"]] == [1]  # the waiting attempt never ran
    assert lines(runs) == 1
    assert host.engine.status(uid)["runtimeStatus"] == "Completed"


def test_a_start_run_again_launches_one_process_per_attempt(host, tmp_path):
    runs = tmp_path / "runs"
    uid = start(host, shell_job(counting_script(runs, succeed_at=2), retry={"maxAttempts": 3, "backoffSeconds": 60}))
    drive(host, uid, waiting_for(2))
    assert lines(runs) == 1
    # attempt 2's start, as a host that dies after the runner launched it and before the handle was stored
    # leaves it: launched on the runner, nothing in the record ...
    record = store().get(uid)
    spec = activities._spec(record)
    assert spec.attempt == 2 and spec.run_id == f"{uid}-a2"
    default_registry().get(record.runner_type).start(spec)
    # ... then the start activity run again (twice), and the orchestration's own start when the wait is over
    assert activities.start(uid)["state"] in ("started", "finished")  # adopted: the attempt may be over already
    assert activities.start(uid)["state"] == "started"  # the handle is stored now
    body = drive(host, uid, final)
    assert body["status"] == "completed", body
    assert lines(runs) == 2  # one process for attempt 1, one for attempt 2
    assert [a["attempt"] for a in body["attempts"]] == [1, 2]


def test_the_time_limit_counts_across_attempts_and_waits(host, tmp_path):
    runs = tmp_path / "runs"
    script = counting_script(runs, then='[ "$n" -ge 2 ] && sleep 600; ')  # attempt 2 runs on and on
    job = shell_job(script, timeLimitSeconds=60, retry={"maxAttempts": 5, "backoffSeconds": 20})
    uid = start(host, job)
    drive(host, uid, lambda body: body["status"] == "running" and len(body.get("attempts") or []) == 2)
    assert not final(status(host, uid))
    body = drive(host, uid, final, step=5, budget=120)
    assert body["status"] == "failed", body
    assert "time limit of 60 s" in body["message"] and "no time for another" in body["message"], body
    assert [a["attempt"] for a in body["attempts"]] == [1, 2]
    assert body["attempts"][1]["reason"] == "time-limit"
    ended = datetime.fromisoformat(body["ended"].replace("Z", "+00:00"))
    assert (ended - START).total_seconds() <= 70  # the job's minute, not a fresh one for attempt 2
    assert lines(runs) == 2


def test_a_recurring_run_counts_once_however_many_attempts(host):
    template = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "a run",
        "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 0, "exitCode": 1},
        "retry": {"maxAttempts": 3, "backoffSeconds": 5},
    }
    recurring = {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": template,
        "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": "*/10 * * * *", "runs": []},
    }
    response = requests.post(f"{host.url}/api/jobs", json=recurring, timeout=30)
    assert response.status_code == 202, response.text
    schedule = response.json()["uid"]
    host.advance(11 * 60)
    view = status(host, schedule)["schedule"]
    run = [r for r in view["runs"] if r.get("uid")]
    assert len(run) == 1 and run[0]["status"] == "failed", view
    assert view["consecutiveFailures"] == 1
    body = status(host, run[0]["uid"])
    assert body["status"] == "failed" and len(body["attempts"]) == 3, body


@pytest.mark.parametrize(
    "bad",
    [
        {"maxAttempts": 0},
        {"maxAttempts": "3"},
        {"maxAttempts": 3, "onExitCodes": [1], "notOnExitCodes": [2]},
        {"maxAttempts": 3, "onReasons": ["cosmic-rays"]},
        {"maxAttempts": 3, "backoffFactor": True},
        {"maxAttempts": 3, "retries": 2},
    ],
)
def test_bad_policies_get_422_and_nothing_is_stored(host, bad):
    response = requests.post(f"{host.url}/api/jobs", json=shell_job("true", retry=bad), timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("invalid job entity: retry")
    assert requests.get(f"{host.url}/api/jobs", timeout=30).json()["jobs"] == []
