"""Fresh when someone is watching, cheap when nobody is (shared/jobs/freshness.py), through the local host on a
replaced clock with the simulated runner: a read wakes the orchestration to poll now, at most once per window
however many readers there are; nobody reading leaves the backoff alone; a job that says it ended is finished
at once.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests

from devhost import DevHost
from runners.registry import default_registry
from shared.jobs.store import store
from shared.platform.clock import ManualClock

from .conftest import HOST_SETTINGS, ROOT

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
DURATION = 600


def simulated(duration: float = DURATION) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "fresh",
        "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration},
    }


@pytest.fixture
def host(storage_env):
    with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=HOST_SETTINGS) as running:
        yield running


def polls() -> int:
    return default_registry().get("JOBCORE:Simulated").polls


def read(host, uid) -> dict:
    body = requests.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()
    host.wait_idle()  # let the engine act on the wake the read raised
    return body


def start(host, duration: float = DURATION) -> str:
    uid = requests.post(f"{host.url}/api/jobs", json=simulated(duration), timeout=30).json()["uid"]
    host.wait_idle()
    return uid


def seconds_until_seen_ending(host, uid, step: float = 5) -> float:
    elapsed = 0.0
    while elapsed < DURATION + 120:
        host.advance(step)
        elapsed += step
        if read(host, uid)["status"] == "completed":
            return elapsed - DURATION
    raise AssertionError("the job was not seen ending")


def test_a_watched_job_is_seen_ending_within_a_few_seconds(host):
    uid = start(host)
    late = seconds_until_seen_ending(host, uid)
    assert late <= 10, f"seen {late} s after the runner's end (a 60 s poll backoff would be up to 60 s)"


def test_an_unwatched_job_keeps_its_backoff(host):
    uid = start(host)
    before = polls()  # after the start's own short watch of a local job
    host.advance(DURATION + 120)
    assert read(host, uid)["status"] == "completed"
    unwatched = polls() - before
    # 1, 2, 4, ... 60 s: about 17 polls in twelve minutes; a watched job polls about every 5 s (140)
    assert unwatched <= 20, unwatched


def test_many_readers_wake_once_per_window(host):
    uid = start(host)
    host.advance(300)  # the backoff has grown to its cap
    before = polls()
    for _ in range(20):  # twenty readers in the same second
        requests.get(f"{host.url}/api/jobs/{uid}", timeout=30)
    host.wait_idle()
    assert polls() - before == 1


def test_a_job_that_reports_completed_is_finished_at_once(host):
    uid = start(host, duration=120)
    host.advance(120)  # the runner has just ended; the next backoff poll is up to 60 s away
    token = store().get(uid).job_token
    response = requests.put(
        f"{host.url}/api/jobs/{uid}?overwrite_log=false",
        timeout=30,
        json={"percentage": 1.0, "logs": "done", "status": "completed"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 5  # the wake is raised without waiting for it; the clock does not move
    while not store().get(uid).log_ref and time.monotonic() < deadline:
        host.wait_idle()
        time.sleep(0.05)
    body = requests.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()
    assert body["status"] == "completed" and body["ended"], body
    assert store().get(uid).log_ref  # finished: the final log was kept
