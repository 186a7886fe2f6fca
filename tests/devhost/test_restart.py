"""Restart and takeover: a new host over the same storage finishes what a dead one started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.ports import free_port

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
ROOT = Path(__file__).resolve().parents[2]


def test_restart_mid_orchestration_same_worker(make_host, sample_app):
    first = make_host(worker_id="w1")
    client = first.client()
    iid = first.run(client.start_new("slow_chain"))
    first.wait_idle(10)
    first.advance(30)  # second activity done, second timer armed
    assert first.engine.stats(iid)["runtime_status"] == "Running"
    first.stop(release_leases=False)  # crash: leases stay taken

    second = make_host(worker_id="w1")  # same worker id: takes over at once
    assert second.engine.owns(iid)
    second.advance(30)
    second.advance(30)
    status = second.engine.status(iid)
    assert status["runtimeStatus"] == "Completed" and status["output"] == 3


def test_activity_in_flight_at_crash_runs_again(make_host, clock, sample_app):
    first = make_host(worker_id="w2")
    client = first.client()
    iid = first.run(client.start_new("monitor", None, {"round": 0, "pings": [], "max_rounds": 1, "gated": True}))
    first.wait_idle(10)
    clock.advance(10)
    first.engine.fire_due_timers()
    deadline = time.monotonic() + 10
    while not first.engine._owned[iid].running and time.monotonic() < deadline:
        time.sleep(0.01)
    first.stop(release_leases=False)  # the activity's result is lost with the host
    sample_app.GATE.set()

    second = make_host(worker_id="w2")
    second.wait_idle(10)
    status = second.engine.status(iid)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["round"] == 1


def test_two_hosts_respect_leases_then_take_over(make_host):
    a = make_host(worker_id="a", lease_seconds=1.0)
    b = make_host(worker_id="b", lease_seconds=1.0)
    iid = a.run(a.client().start_new("waiter"))
    a.wait_idle(10)
    time.sleep(1.5)  # a renews its lease; b must not steal the instance
    assert a.engine.owns(iid) and not b.engine.owns(iid)
    # an event sent through b's HTTP API is applied by a, the owner
    r = requests.post(f"{b.url}/runtime/webhooks/durabletask/instances/{iid}/raiseEvent/go", json="1")
    assert r.status_code == 202
    a.wait_idle(10)
    a.stop(release_leases=False)  # a dies; b takes over once the lease expires
    deadline = time.monotonic() + 10
    while not b.engine.owns(iid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.engine.owns(iid)
    b.run(b.client().raise_event(iid, "go2", 2))
    b.wait_idle(10)
    assert b.engine.status(iid)["output"] == ["1", "2"]  # event data as JSON text (#295)


def test_separate_process_host_then_in_process_takeover(make_host, storage_env):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--port", str(port), "--app-dir", str(SAMPLE_APP), "--worker-id", "proc1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/admin/host/status", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        r = requests.post(f"http://127.0.0.1:{port}/api/orchestrators/waiter")
        if r.status_code != 202:
            proc.send_signal(signal.SIGINT)
            raise AssertionError(f"{r.status_code}: {proc.communicate(timeout=10)[0][:6000]}")
        iid = r.json()["id"]
        requests.post(r.json()["sendEventPostUri"].replace("{eventName}", "go"), json={"from": "proc"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            history = requests.get(r.json()["statusQueryGetUri"] + "&showHistory=true").json()["historyEvents"]
            if any(e["EventType"] == 15 for e in history):
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    host = make_host(worker_id="proc1")  # the restarted worker resumes at once
    assert host.engine.owns(iid)
    host.run(host.client().raise_event(iid, "go2", "in-process"))
    host.wait_idle(10)
    assert host.engine.status(iid)["output"] == [{"from": "proc"}, '"in-process"']
