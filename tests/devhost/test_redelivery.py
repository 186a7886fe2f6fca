"""Work lost to storage trouble is done again, once: an activity whose result could not be recorded runs again
after the Azure Storage provider's abandon backoff (2^attempt s), a second result of a task is dropped, an episode
that raised is retried, and a commit that landed though its answer was lost still starts what it scheduled.

Storage faults are injected at the store's methods (the real Azurite call is made, or not, then the error a
stopped Azurite gives is raised); tests/e2e/test_faults_e2e.py stops the real Azurite under the real app."""

from __future__ import annotations

import time

from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from devhost import history as h
from devhost.engine import redelivery_delay

CHAIN_OUTPUT = {"a": 1, "b": 2, "parallel": [3, 13]}


class Fault:
    """Replace `store.<method>` so its first `times` matching calls fail; with `land`, the call reaches storage
    first (a write that lands while its answer is lost)."""

    def __init__(self, store, method: str, times: int = 1, land: bool = False, error=ServiceRequestError, when=None):
        self.store, self.method, self.left, self.land, self.error = store, method, times, land, error
        self.real = getattr(store, method)
        self.when = when or (lambda *args: True)
        self.failed: list[tuple[float, tuple]] = []  # (time.monotonic(), args) of each failed call
        self.calls: list[tuple[float, tuple]] = []
        setattr(store, method, self)

    def __call__(self, *args):
        self.calls.append((time.monotonic(), args))
        if self.left > 0 and self.when(*args):
            self.left -= 1
            if self.land:
                self.real(*args)
            self.failed.append((time.monotonic(), args))
            raise self.error("storage is not reachable (injected)")
        return self.real(*args)


def is_result(instance_id, message) -> bool:
    return message.get("kind") == "result"


def history_of(host, iid) -> list[dict]:
    return host.engine.status(iid, show_history=True)["historyEvents"]


def completions(history: list[dict]) -> list[int]:
    return sorted(e["TaskScheduledId"] for e in history if e["EventType"] in (h.TASK_COMPLETED, h.TASK_FAILED))


def test_the_abandon_backoff_is_the_azure_storage_providers():
    assert [redelivery_delay(n) for n in (1, 2, 3, 4, 9, 10, 30, 31, 1000)] == [2, 4, 8, 16, 512, 600, 600, 600, 600]


def test_an_activity_whose_result_is_lost_runs_again_after_two_seconds(host, sample_app):
    lost = Fault(host.engine.store, "put_message", when=is_result)
    iid = host.run(host.client().start_new("chain", None, {"start": 0}))
    assert host.wait_idle(30)
    status = host.engine.status(iid)
    assert status["runtimeStatus"] == "Completed" and status["output"] == CHAIN_OUTPUT
    assert sorted(sample_app.ACTIVITY_CALLS) == [0, 0, 1, 2, 12]  # the first one twice, the others once
    assert host.engine.redelivered == 1
    assert completions(history_of(host, iid)) == [0, 1, 2, 3]
    failed_at, (_, message) = lost.failed[0]
    again = [t for t, (_, m) in lost.calls if m["taskId"] == message["taskId"] and t > failed_at]
    delay = again[0] - failed_at
    print(f"redelivery delay after a lost result: {delay:.2f} s")
    assert 1.9 <= delay < 8


def test_a_result_recorded_while_its_answer_was_lost_is_delivered_once(make_host, sample_app):
    """The first result lands but the engine hears an error; the work item runs again at once (no backoff here,
    and the poller, which would find the first result, is slow): two results of task 0 meet in the inbox."""
    host = make_host(poll_interval=5.0)
    Fault(host.engine.store, "put_message", land=True, when=is_result)
    host.engine.redelivery_delay = lambda attempt: 0.0
    iid = host.run(host.client().start_new("chain", None, {"start": 0}))
    assert host.wait_idle(30)
    status = host.engine.status(iid)
    assert status["runtimeStatus"] == "Completed" and status["output"] == CHAIN_OUTPUT
    assert host.engine.redelivered == 1 and sorted(sample_app.ACTIVITY_CALLS) == [0, 0, 1, 2, 12]
    assert completions(history_of(host, iid)) == [0, 1, 2, 3]  # the second result of task 0 was dropped


def test_an_episode_that_could_not_read_storage_is_retried(host, sample_app):
    failing = Fault(host.engine.store, "read_inbox", times=2)
    iid = host.run(host.client().start_new("chain", None, {"start": 0}))
    deadline = time.monotonic() + 30
    while host.engine.status(iid)["runtimeStatus"] != "Completed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(failing.failed) == 2
    assert host.engine.status(iid)["output"] == CHAIN_OUTPUT
    assert sorted(sample_app.ACTIVITY_CALLS) == [0, 1, 2, 12]


def test_a_commit_that_landed_unbeknown_still_starts_its_activities(host, sample_app):
    Fault(host.engine.store, "commit_episode", land=True, error=ServiceResponseError)
    iid = host.run(host.client().start_new("chain", None, {"start": 0}))
    deadline = time.monotonic() + 30
    while host.engine.status(iid)["runtimeStatus"] != "Completed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host.engine.status(iid)["output"] == CHAIN_OUTPUT
    history = history_of(host, iid)
    assert [e["EventType"] for e in history].count(h.EXECUTION_STARTED) == 1
    assert sorted(sample_app.ACTIVITY_CALLS) == [0, 1, 2, 12]


def test_a_redelivery_pending_at_a_crash_is_run_by_the_next_host(make_host, sample_app):
    first = make_host(worker_id="redeliver")
    first.engine.redelivery_delay = lambda attempt: 600.0  # it would not come in this test
    Fault(first.engine.store, "put_message", when=is_result)
    iid = first.run(first.client().start_new("chain", None, {"start": 0}))
    deadline = time.monotonic() + 20
    while not first.engine._abandoned and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.engine._abandoned
    first.stop(release_leases=False)  # a crash: the redelivery is gone with the host
    assert not first.engine._abandoned

    second = make_host(worker_id="redeliver")
    assert second.wait_idle(30)
    status = second.engine.status(iid)
    assert status["runtimeStatus"] == "Completed" and status["output"] == CHAIN_OUTPUT
    assert sorted(sample_app.ACTIVITY_CALLS) == [0, 0, 1, 2, 12]
