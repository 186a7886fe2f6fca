"""Durable client (the real SDK) against the devhost engine: start, status, events, terminate, chaining, races,
continue_as_new, failures, suspend/resume, purge."""

from __future__ import annotations

import time

import pytest
import requests

from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as RS


def start(host, name, payload=None, instance_id=None):
    url = f"{host.url}/api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    r = requests.post(url, json=payload)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == r.json()["statusQueryGetUri"]
    return r.json()


def test_chain_through_http_starter_and_status_endpoint(host, sample_app):
    links = start(host, "chain", {"start": 1})
    assert host.wait_idle(10)
    r = requests.get(links["statusQueryGetUri"])
    assert r.status_code == 200
    body = r.json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"a": 2, "b": 3, "parallel": [4, 14]}
    assert body["customStatus"] == {"step": "done"}
    assert body["input"] == '{"start": 1}'  # input comes back as JSON text, as from the real host
    assert sorted(sample_app.ACTIVITY_CALLS) == [1, 2, 3, 13]
    stats = host.engine.stats(links["id"])
    assert stats["generations"] == 1 and stats["history_events"] == stats["max_history_events"] > 0

    # the status route of the app uses the SDK client's get_status
    assert requests.get(f"{host.url}/api/status/{links['id']}").json()["runtimeStatus"] == "Completed"
    assert requests.get(f"{host.url}/api/status/unknown-id").status_code == 404


def test_sdk_client_operations(host):
    client = host.client()
    iid = host.run(client.start_new("waiter", "fixed-id", None))
    assert iid == "fixed-id"
    host.wait_idle(10)
    status = host.run(client.get_status(iid))
    assert status.runtime_status == RS.Running

    # a second start with a running instance id is refused (singleton check)
    try:
        host.run(client.start_new("waiter", "fixed-id"))
        raise AssertionError("expected a refusal")
    except Exception as exc:  # noqa: BLE001
        assert "already exists" in str(exc)

    host.run(client.raise_event(iid, "go", {"n": 1}))
    host.run(client.raise_event(iid, "go2", [1, 2]))
    host.wait_idle(10)
    status = host.run(client.get_status(iid, show_history=True))
    assert status.runtime_status == RS.Completed
    # the SDK encodes event data twice and the extension keeps that layer: the orchestrator gets JSON text
    # (azure-functions-durable-python #295)
    assert status.output == ['{"n": 1}', "[1, 2]"]

    missing = host.run(client.get_status("nope"))
    assert not missing
    try:
        host.run(client.raise_event(iid, "go", 1))
        raise AssertionError("expected 410")
    except Exception as exc:  # noqa: BLE001
        assert "is gone" in str(exc)

    # terminate a waiting instance
    other = host.run(client.start_new("waiter"))
    host.wait_idle(10)
    host.run(client.terminate(other, "enough"))
    host.wait_idle(10)
    status = host.run(client.get_status(other))
    assert status.runtime_status == RS.Terminated and status.output == "enough"

    listed = host.run(client.get_status_by(runtime_status=[RS.Terminated]))
    assert [s.instance_id for s in listed] == [other]
    assert {s.instance_id for s in host.run(client.get_status_all())} == {iid, other}

    assert host.run(client.purge_instance_history(other)).instances_deleted == 1
    assert host.run(client.purge_instance_history(other)).instances_deleted == 0
    assert not host.run(client.get_status(other))

    # unknown orchestrator: the SDK surfaces the host's ExceptionMessage
    try:
        host.run(client.start_new("no_such_orchestrator"))
        raise AssertionError("expected failure")
    except Exception as exc:  # noqa: BLE001
        assert "no_such_orchestrator" in str(exc)


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")
def test_event_buffered_before_wait(host):
    client = host.client()
    iid = host.run(client.start_new("waiter"))
    host.run(client.raise_event(iid, "go2", "second"))  # raised before the orchestrator waits for it
    host.run(client.raise_event(iid, "go", "first"))
    host.wait_idle(10)
    assert host.engine.status(iid)["output"] == ['"first"', '"second"']  # JSON text (#295)


def test_timer_vs_event_race(host, clock):
    client = host.client()
    by_event = host.run(client.start_new("approval", None, {"timeout": 60}))
    by_timer = host.run(client.start_new("approval", None, {"timeout": 60}))
    host.wait_idle(10)
    host.advance(30)
    host.run(client.raise_event(by_event, "approve", "alice"))
    host.wait_idle(10)
    assert host.engine.status(by_event)["output"] == {"result": "approved", "by": '"alice"'}
    assert host.engine.status(by_timer)["runtimeStatus"] == "Running"
    host.advance(29)
    assert host.engine.status(by_timer)["runtimeStatus"] == "Running"
    host.advance(1)
    status = host.engine.status(by_timer)
    assert status["output"] == {"result": "timeout"}
    assert status["lastUpdatedTime"] == "2026-01-01T00:01:00Z"
    # the approved instance finished: its cancelled timer went with it
    assert host.engine.next_timer_due() is None


def test_continue_as_new_bounds_history_and_drops_unconsumed_events(host, sample_app):
    client = host.client()
    iid = host.run(client.start_new("monitor", None, {"round": 0, "pings": [], "max_rounds": 6}))
    host.wait_idle(10)
    host.advance(10)  # round 0: timer wins, activity runs, continue_as_new
    host.run(client.raise_event(iid, "ping", "p1"))  # round 1 wins by event
    host.wait_idle(10)
    # round 2: the timer wins, its activity runs and the round continues as new at once; rounds 3 and 4 (timer)
    host.advance(10)
    host.advance(10)
    host.advance(10)
    host.run(client.raise_event(iid, "ping", "p2"))  # round 5 wins by event
    host.wait_idle(10)
    status = host.engine.status(iid)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["pings"] == ['"p1"', '"p2"']
    assert status["output"]["round"] == 6
    stats = host.engine.stats(iid)
    assert stats["generations"] == 7
    assert stats["max_history_events"] < 20  # bounded: one round's worth, not six


def test_activity_failure(host):
    client = host.client()
    failed = host.run(client.start_new("failing", None, {}))
    caught = host.run(client.start_new("failing", None, {"catch": True}))
    host.wait_idle(10)
    status = host.run(client.get_status(failed))
    assert status.runtime_status == RS.Failed
    assert "activity failed: boom" in status.output and "Orchestrator function 'failing' failed" in status.output
    assert requests.get(f"{host.url}/runtime/webhooks/durabletask/instances/{failed}").status_code == 400
    out = host.engine.status(caught)["output"]
    # the extension's wording: "failed: " + the worker's message as cut from " ValueError: ..." (two spaces)
    assert "Activity function 'explode' failed:  ValueError: activity failed: boom" in out["caught"]


def test_suspend_and_resume(host):
    client = host.client()
    iid = host.run(client.start_new("waiter"))
    host.wait_idle(10)
    host.run(client.suspend(iid, "hold on"))
    host.wait_idle(10)
    assert host.run(client.get_status(iid)).runtime_status == RS.Suspended
    host.run(client.raise_event(iid, "go", 1))
    host.run(client.raise_event(iid, "go2", 2))
    host.wait_idle(10)
    assert host.run(client.get_status(iid)).runtime_status == RS.Suspended
    host.run(client.resume(iid, "go on"))
    host.wait_idle(10)
    assert host.run(client.get_status(iid)).output == ["1", "2"]


def test_event_raised_while_continue_as_new_is_pending_is_lost(host, clock, sample_app):
    """The timer won the race; while the round's activity runs, an event comes for the abandoned wait. The
    extension discards it at continue_as_new (azure-functions-durable-extension #1676), and so does devhost."""
    client = host.client()
    iid = host.run(client.start_new("monitor", None, {"round": 0, "pings": [], "max_rounds": 2, "gated": True}))
    host.wait_idle(10)
    clock.advance(10)
    host.engine.fire_due_timers()  # the timer fires; the `gated` activity starts and blocks
    deadline = time.monotonic() + 10
    while not any(host.engine._owned[iid].running) and time.monotonic() < deadline:
        time.sleep(0.01)
    host.run(client.raise_event(iid, "ping", "late"))
    time.sleep(0.3)  # let the engine hand the event to the (abandoned) wait
    sample_app.GATE.set()  # activity completes -> continue_as_new
    host.wait_idle(10)
    assert host.engine.status(iid)["runtimeStatus"] == "Running"  # round 1 waits: "late" did not reach it
    host.advance(10)
    status = host.engine.status(iid)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["pings"] == []


def test_fan_out_of_two_hundred_activities(host):
    started = time.monotonic()
    iid = host.run(host.client().start_new("fan_out", None, 200))
    assert host.wait_idle(30)
    status = host.engine.status(iid)
    assert status["runtimeStatus"] == "Completed" and status["output"] == sum(range(1, 201))
    assert time.monotonic() - started < 20
