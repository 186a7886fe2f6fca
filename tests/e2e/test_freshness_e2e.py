"""Fresh when someone is watching, cheap when nobody is (shared/jobs/freshness.py, shared/jobs/polling.py),
through the local host on a replaced clock with the simulated runner: a read wakes the orchestration and keeps it
polling once per window, so a watched job's end is stored before its reader's next read; at most one poll per
window however many readers there are; nobody reading leaves the backoff alone; a job that says it ended is
finished at once; a stop during a wake-up still stops; a wake works across continue-as-new, and one the extension
drops there costs one window, nothing more; a shell job's own exit is seen within a second or two, with nobody
reading and the backoff a minute away.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime, timezone

import pytest
import requests

from devhost import DevHost
from runners.registry import default_registry
from shared.jobs.orchestrator import POLLS_PER_GENERATION
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
    time.sleep(0.05)  # the wake is raised without waiting for it: let it reach the engine
    host.wait_idle()  # let the engine act on it before the clock moves
    return body


def start(host, duration: float = DURATION) -> str:
    uid = requests.post(f"{host.url}/api/jobs", json=simulated(duration), timeout=30).json()["uid"]
    host.wait_idle()
    return uid


def seconds_until_seen_ending(host, uid, step: float = 5, duration: float = DURATION) -> float:
    elapsed = 0.0
    while elapsed < duration + 120:
        host.advance(step)
        elapsed += step
        if read(host, uid)["status"] == "completed":
            return elapsed - duration
    raise AssertionError("the job was not seen ending")


def stored_lag(uid: str, duration: float) -> float:
    """Seconds of the job's clock from the runner's end to the final status stored (what any read then sees)."""
    record = store().get(uid)
    return (record.ended - record.started).total_seconds() - duration


def generation(host, uid) -> int:
    return int(host.engine.store.get_state(uid)[0].get("generation", 1))


def test_a_watched_job_is_seen_ending_before_the_next_read(host):
    """The reader's wakes keep the job polling once per window between reads: its end is stored within a window,
    and the reader sees it at its very next read."""
    duration = DURATION + 2.5  # the end falls between two reads
    uid = start(host, duration)
    before = polls()
    late = seconds_until_seen_ending(host, uid, duration=duration)
    stored = stored_lag(uid, duration)
    assert stored <= 5, f"stored {stored} s after the runner's end (seen by the reader after {late} s)"
    assert late <= 5, f"seen {late} s after the runner's end, stored after {stored} s (a 60 s backoff: up to 60 s)"
    windows = (duration + late) / 5
    assert polls() - before <= windows + 8, (polls() - before, windows)  # + the backoff's own first polls


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


def test_a_stop_during_a_wake_up_still_stops(host, monkeypatch):
    """A DELETE that arrives while the poll a read woke is in flight: the job ends removed and is stopped on the
    runner, and nothing wakes it afterwards."""
    runner = default_registry().get("JOBCORE:Simulated")
    uid = start(host)
    host.advance(300)
    polling, release = threading.Event(), threading.Event()
    status = runner.status

    def slow_status(handle):
        polling.set()
        release.wait(30)
        return status(handle)

    monkeypatch.setattr(runner, "status", slow_status)
    requests.get(f"{host.url}/api/jobs/{uid}", timeout=30)  # wakes it: the poll starts and blocks
    assert polling.wait(30), "the read did not wake the orchestration"
    stopped = requests.delete(f"{host.url}/api/jobs/{uid}", timeout=30)
    assert stopped.status_code == 200, stopped.text
    release.set()
    host.wait_idle()
    host.advance(120)
    body = read(host, uid)
    assert body["status"] == "removed", body
    assert runner.cleaned(uid)
    assert host.engine.status(uid)["runtimeStatus"] == "Completed"


def test_a_wake_across_continue_as_new(host, monkeypatch, caplog):
    """Past POLLS_PER_GENERATION polls a read still wakes the job. A wake raised while the generation's last poll
    is in flight is dropped at continue-as-new (as the extension drops it, durable-extension #1676): that costs
    one window: the next read after it wakes the job again."""
    runner = default_registry().get("JOBCORE:Simulated")
    uid = start(host, 7200)
    status, calls = runner.status, {}

    def status_reading_at_the_last_poll(handle):
        gen = generation(host, uid)
        calls[gen] = calls.get(gen, 0) + 1
        if gen == 2 and calls[gen] == POLLS_PER_GENERATION:
            requests.get(f"{host.url}/api/jobs/{uid}", timeout=30)  # a reader, just as the generation ends
            time.sleep(0.3)  # its wake reaches the engine before this poll's result does
        return status(handle)

    monkeypatch.setattr(runner, "status", status_reading_at_the_last_poll)
    caplog.set_level(logging.INFO, logger="devhost")
    while generation(host, uid) < 3:
        host.advance(60)
    assert any("discarded (wake)" in r.getMessage() for r in caplog.records), "the wake was not dropped"
    host.advance(5)  # past the window the dropped wake claimed
    before = polls()
    read(host, uid)  # woken again, in generation 3: watched, it polls once per window (the backoff: per minute)
    host.advance(10)
    assert polls() - before >= 2, polls() - before
    assert generation(host, uid) >= 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_shell_job_is_seen_ending_at_its_exit_with_nobody_reading(storage_env, tmp_path):
    """The shell runner's launcher tells the app when the script exits: the job is finished within a second or
    two of its exit though nobody reads it and its backoff's next poll is a minute (of a clock that does not
    move) away."""
    port = free_port()
    settings = {**HOST_SETTINGS, "DM_JOB_URL": f"http://127.0.0.1:{port}/api/jobs", "JOB_WORK_DIR": str(tmp_path)}
    ended_at, go = tmp_path / "ended", tmp_path / "go"
    script = f"while [ ! -e {go} ]; do sleep 0.05; done; date +%s.%N > {ended_at}"  # ends when the test says
    job = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "exit",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/Shell", "script": script},
    }
    with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=settings, port=port) as shell_host:
        uid = requests.post(f"{shell_host.url}/api/jobs", json=job, timeout=30).json()["uid"]
        shell_host.advance(600)  # the job's clock: 10 minutes in, polls backed off to a minute
        assert store().get(uid).status.value == "running"
        go.touch()
        deadline = time.monotonic() + 60
        while not store().get(uid).status.is_final and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = time.time()
        record = store().get(uid)
        assert record.status.value == "completed", record.message
        lag = seen - float(ended_at.read_text())
        assert lag < 5, f"seen {lag:.1f} s after the script's exit"


def test_the_list_wakes_the_running_jobs_it_returns(host):
    """A list read wakes each running job on its page once per window, like a read of each."""
    uids = [start(host), start(host)]
    host.advance(300)
    before = polls()
    listed = requests.get(f"{host.url}/api/jobs?status=running", timeout=30).json()["jobs"]
    assert {job["uid"] for job in listed} >= set(uids)
    deadline = time.monotonic() + 20  # the wakes are raised without waiting for them
    while polls() - before < len(listed) and time.monotonic() < deadline:
        host.wait_idle()
        time.sleep(0.05)
    assert polls() - before == len(listed)
    requests.get(f"{host.url}/api/jobs", timeout=30)  # the same window: no wake
    time.sleep(0.5)
    host.wait_idle()
    assert polls() - before == len(listed)
