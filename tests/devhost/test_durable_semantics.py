"""Durable semantics as the real extension has them (each test names its source in devhost/)."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

import devhost.host
from devhost import history as h

DAY = 86400


def history_of(host, iid):
    return host.engine.status(iid, show_history=True)["historyEvents"]


def test_a_ten_day_timer_is_split_by_the_sdk_as_in_azure(make_host, clock):
    """The extension's context (maximumShortTimerDuration 6 days, longRunningTimerIntervalDuration 3 days)
    makes the SDK split the timer: 3 days, 3 more, then the rest."""
    host = make_host(settings={"SCHEDULE_TICK": "0 0 0 1 1 *"})  # no 5-minute ticks on the way
    start = clock.now()
    iid = host.run(host.client().start_new("long_sleep", None, 10))
    host.wait_idle(10)
    host.advance(10 * DAY - 1)
    assert host.engine.status(iid)["runtimeStatus"] == "Running"
    host.advance(1)
    status = host.engine.status(iid)
    assert status["runtimeStatus"] == "Completed"
    fire_times = [h.parse_ts(e["FireAt"]) - start for e in history_of(host, iid) if e["EventType"] == h.TIMER_CREATED]
    assert [t.total_seconds() / DAY for t in fire_times] == [3, 6, 10]


def test_a_cancelled_timer_still_fires_one_more_replay(host, sample_app):
    client = host.client()
    iid = host.run(client.start_new("race_then_wait", None, None))
    host.wait_idle(10)
    host.run(client.raise_event(iid, "first", 1))
    host.wait_idle(10)
    episodes = host.engine.stats(iid)["episodes"]
    assert host.engine.next_timer_due() is not None  # cancelled, still armed
    host.advance(30)
    assert host.engine.stats(iid)["episodes"] == episodes + 1  # it fired: one more replay, nothing else
    assert host.engine.status(iid)["runtimeStatus"] == "Running"
    assert h.TIMER_FIRED in [e["EventType"] for e in history_of(host, iid)]
    host.run(client.raise_event(iid, "second", 2))
    host.wait_idle(10)
    assert host.engine.status(iid)["output"] == {"first": "1", "second": "2"}


def test_starting_an_existing_instance_id(host):
    """NonRunningStates (the extension's default): a running instance is not replaced (the HTTP API answers
    500 and the SDK raises); a finished one is replaced by a new execution."""
    client = host.client()
    host.run(client.start_new("waiter", "same", None))
    host.wait_idle(10)
    r = requests.post(f"{host.url}/runtime/webhooks/durabletask/orchestrators/waiter/same", json=None)
    assert r.status_code == 500 and "already exists" in r.json()["ExceptionMessage"]
    with pytest.raises(Exception, match="already exists"):
        host.run(client.start_new("waiter", "same", None))
    host.run(client.terminate("same", "done"))
    host.wait_idle(10)
    first_execution = host.engine.store.get_state("same")[0]["executionId"]
    assert host.run(client.start_new("waiter", "same", None)) == "same"
    host.wait_idle(10)
    state = host.engine.store.get_state("same")[0]
    assert state["runtimeStatus"] == "Running" and state["executionId"] != first_execution


def test_an_activity_past_function_timeout_fails_with_the_hosts_message(make_host, sample_app):
    host = make_host(function_timeout=1.0)
    iid = host.run(host.client().start_new("call_sleepy", None, 30))
    host.wait_idle(20)
    out = host.engine.status(iid)["output"]
    assert (
        "Activity function 'sleepy' failed: Timeout value of 00:00:01 was exceeded by function: "
        "Functions.sleepy" in out["failed"]
    )


def test_host_json_function_timeout_is_read(make_host, monkeypatch):
    real = devhost.host.read_host_json
    monkeypatch.setattr(devhost.host, "read_host_json", lambda d: {**real(d), "functionTimeout": "00:10:00"})
    assert make_host().worker.function_timeout == 600


def test_one_worker_pool_sized_like_the_python_worker(make_host, sample_app):
    host = make_host()
    assert host.worker.size == min(32, (os.cpu_count() or 1) + 4)
    client = host.client()
    iid = host.run(client.start_new("call_sleepy", None, 0))
    other = host.run(client.start_new("race_then_wait", None, None))
    host.wait_idle(10)
    host.run(client.raise_event(other, "first", 1))
    host.wait_idle(10)
    assert host.engine.status(iid)["output"] == 0
    r = requests.get(f"{host.url}/api/inspect/x")
    threads = dict(sample_app.THREADS) | {"http": r.json()["thread"]}
    assert all(name.startswith("devhost-worker") for name in threads.values()), threads


def test_thread_count_setting_and_dispatch_limits(make_host, sample_app, monkeypatch):
    real = devhost.host.read_host_json
    limits = {"maxConcurrentActivityFunctions": 2, "maxConcurrentOrchestratorFunctions": 1}
    monkeypatch.setattr(devhost.host, "read_host_json", lambda d: {**real(d), "extensions": {"durableTask": limits}})
    host = make_host(settings={"PYTHON_THREADPOOL_THREAD_COUNT": "5"})
    assert host.worker.size == 5
    iid = host.run(host.client().start_new("many_sleepy", None, [6, 0.3]))
    started = time.monotonic()
    host.wait_idle(20)
    assert host.engine.status(iid)["output"] == [0.3] * 6
    assert sample_app.RUNNING[1] == 2  # never more than maxConcurrentActivityFunctions
    assert time.monotonic() - started >= 0.85  # three rounds of two


def test_a_bad_thread_count_falls_back_to_the_default(make_host):
    host = make_host(settings={"PYTHON_THREADPOOL_THREAD_COUNT": "zero"})
    assert host.worker.size == min(32, (os.cpu_count() or 1) + 4)


def test_event_data_reaches_the_orchestrator_as_the_extension_passes_it(host):
    """SDK raise_event: encoded twice, the extension keeps a layer: JSON text (durable-python #295). A plain JSON
    body (curl to sendEventPostUri) arrives as its value; a body that is not application/json is refused."""
    client = host.client()
    iid = host.run(client.start_new("waiter", None, None))
    host.wait_idle(10)
    host.run(client.raise_event(iid, "go", {"a": 1}))
    url = f"{host.url}/runtime/webhooks/durabletask/instances/{iid}/raiseEvent/go2"
    assert requests.post(url, data="{}", headers={"Content-Type": "text/plain"}).status_code == 400
    assert requests.post(url, json={"b": 2}).status_code == 202
    host.wait_idle(10)
    assert host.engine.status(iid)["output"] == [json.dumps({"a": 1}), {"b": 2}]
