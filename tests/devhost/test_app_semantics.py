"""The app's own scenarios where the real host's and extension's semantics matter (the real function_app.py)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import requests

from devhost import DevHost
from devhost.history import parse_ts
from runners.registry import default_registry
from shared.jobs import activities
from shared.jobs import store as job_store
from shared.jobs.orchestrator import POLLS_PER_GENERATION
from shared.jobs.transitions import BROKEN, START_FAILED
from shared.platform.clock import ManualClock

ROOT = Path(__file__).resolve().parents[2]
SIMULATED = "dmss://WorkflowDS/Blueprints/Simulated"
SETTINGS = {"SCHEDULE_TICK": "0 0 0 1 1 *"}


def simulated_job(seconds: float) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "devhost",
        "runner": {"type": SIMULATED, "durationSeconds": seconds},
    }


@pytest.fixture
def clock():
    return ManualClock()


def app_host(clock, **kwargs) -> DevHost:
    settings = {**SETTINGS, **kwargs.pop("settings", {})}
    return DevHost(app_dir=ROOT, clock=clock, settings=settings, poll_interval=0.2, **kwargs)


def job(host, uid, **headers) -> dict:
    r = requests.get(f"{host.url}/api/jobs/{uid}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_runner_that_hangs_in_start_ends_the_job_failed_with_the_apps_reason(storage_env, clock, monkeypatch):
    """Each start runs past functionTimeout: TaskFailed; the orchestrator retries, then finishes the job."""
    runner = default_registry().get(SIMULATED)
    release = threading.Event()
    calls = []

    def hang(spec):
        calls.append(spec.uid)
        release.wait(60)
        raise RuntimeError("released")

    monkeypatch.setattr(runner, "start", hang)
    try:
        with app_host(clock, function_timeout=0.5) as host:
            uid = requests.post(f"{host.url}/api/jobs", json=simulated_job(10), timeout=30).json()["uid"]
            for _ in range(20):
                host.advance(5)
                if job(host, uid)["status"] in ("failed", "completed", "removed"):
                    break
            final = job(host, uid)
            assert final["status"] == "failed" and final["message"] == BROKEN[START_FAILED]
            assert len(calls) == 5  # FINISH_ATTEMPTS starts, each timed out
            status = host.engine.status(uid, show_history=True)
            failures = [e for e in status["historyEvents"] if e["EventType"] == 6]
            assert (
                failures
                and "Timeout value of 00:00:00.5000000 was exceeded by function: Functions.start_job_activity"
                in failures[0]["Reason"]
            )
    finally:
        release.set()


def test_a_stop_raised_during_the_last_poll_of_a_generation_stops_within_one_interval(
    storage_env, clock, monkeypatch, caplog
):
    """The stop event arrives while the generation's last poll runs: the orchestrator continues as new and the
    extension discards the event (#1676); the app has marked the job in the store, so the next generation's
    first poll ends it, one poll interval later."""
    in_last_poll, release = threading.Event(), threading.Event()
    polls: list[str] = []
    real_poll = activities.poll

    def poll(uid):
        polls.append(uid)
        answer = real_poll(uid)  # reads the job before the stop ...
        if len(polls) == POLLS_PER_GENERATION:
            in_last_poll.set()  # ... which comes while the poll is still running
            release.wait(30)
        return answer

    monkeypatch.setattr(activities, "poll", poll)
    caplog.set_level(logging.INFO, logger="devhost.engine")
    with app_host(clock) as host:
        uid = requests.post(f"{host.url}/api/jobs", json=simulated_job(100_000), timeout=30).json()["uid"]
        driver = threading.Thread(target=host.advance, args=(3600,), kwargs={"idle_timeout": 60})
        driver.start()
        assert in_last_poll.wait(30)
        stopped_at = clock.now()
        r = requests.delete(f"{host.url}/api/jobs/{uid}", timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "removed"
        deadline = time.monotonic() + 10  # the stop event reaches the orchestrator's history first
        while time.monotonic() < deadline and not any(
            e["EventType"] == 15 for e in host.engine.status(uid, show_history=True)["historyEvents"]
        ):
            time.sleep(0.05)
        generation = host.engine.stats(uid)["generations"]
        release.set()
        driver.join(120)
        assert not driver.is_alive()
        state = host.engine.store.get_state(uid)[0]
        assert state["runtimeStatus"] == "Completed"
        assert host.engine.stats(uid)["generations"] == generation + 1  # it went through continue_as_new
        assert any("discarded (stop)" in r.getMessage() for r in caplog.records)  # ... which dropped the event
        interval = 60.0  # POLL_INTERVAL_MAX_SECONDS by then
        assert (parse_ts(state["lastUpdatedTime"]) - stopped_at).total_seconds() <= interval + 1
        assert len(polls) == POLLS_PER_GENERATION + 1  # one poll of the new generation
        assert job(host, uid)["status"] == "removed"


KEY = "devhost-test-key"


def test_with_keys_a_job_holding_only_its_token_cannot_read_its_status(storage_env, clock):
    """GET /api/jobs/{uid} is FUNCTION-level (DFApp(http_auth_level=FUNCTION)): the host answers 401 before the
    app can look at the job's token. The progress route (ANONYMOUS) takes the token alone."""
    with app_host(clock, settings={"DEVHOST_REQUIRE_KEYS": "true", "DEVHOST_FUNCTION_KEY": KEY}) as host:
        assert requests.post(f"{host.url}/api/jobs", json=simulated_job(100), timeout=30).status_code == 401
        uid = requests.post(
            f"{host.url}/api/jobs", json=simulated_job(100), headers={"x-functions-key": KEY}, timeout=30
        ).json()["uid"]
        host.advance(2)
        token = job_store.store().get(uid).job_token
        bearer = {"Authorization": f"Bearer {token}"}
        r = requests.get(f"{host.url}/api/jobs/{uid}", headers=bearer, timeout=30)
        assert r.status_code == 401 and r.content == b""
        assert job(host, uid, **bearer, **{"x-functions-key": KEY})["uid"] == uid
        r = requests.put(
            f"{host.url}/api/jobs/{uid}?overwrite_log=false",
            headers=bearer,
            timeout=30,
            json={"percentage": 0.5, "logs": "half", "status": "running"},
        )
        assert r.status_code == 200, r.text
        assert requests.get(f"{host.url}/api/health", timeout=30).status_code in (200, 503)
