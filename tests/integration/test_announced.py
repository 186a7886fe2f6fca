"""A status change is announced at least once: its index row and its listeners (webhooks, DMSS, the schedule's
history) hear of it even when the host died between the write and them.

The store writes the change with a marker (`extra["announcing"]`) and clears it once the index and the listeners
have it; a poll that finds a marker older than the grace (the writer died) announces again. Real shell jobs, real
Azurite; a crash is a BaseException raised inside the store's own steps, the way a killed host stops them.
"""

from __future__ import annotations

import time

import pytest

from shared import service
from shared.jobs import activities, store as store_module
from shared.jobs.status import JobStatus
from shared.jobs.store import ANNOUNCING, TableJobStore, store
from shared.platform import hooks

from tests.integration.test_lifecycle_shell import NoOrchestrations, _shell


class Crash(BaseException):
    """A host killed in the middle (hooks catch Exception, not this)."""


class Listener:
    def __init__(self, die_on: str | None = None):
        self.changes: list[str] = []
        self.die_on = die_on

    def status_changed(self, record) -> None:
        if record.status.value == self.die_on:
            self.die_on = None
            raise Crash(f"died telling of {record.status.value}")
        self.changes.append(record.status.value)

    def finished(self, record, result) -> None:
        pass


@pytest.fixture
def listener():
    heard = Listener()
    hooks.add(heard)
    yield heard
    hooks.remove(heard)


def _running_job() -> str:
    started = service.start_job(_shell("echo up; sleep 30"), caller=None, orchestrations=NoOrchestrations())
    try:
        activities.start(started.uid)
    except Crash:
        pass
    deadline = time.monotonic() + 20
    while store().get(started.uid).status != JobStatus.RUNNING and time.monotonic() < deadline:
        try:
            activities.poll(started.uid)
        except Crash:
            pass
        time.sleep(0.05)
    return started.uid


def _listed(status: JobStatus) -> set[str]:
    rows, _ = store().list(status, 1000, None)
    return {row["uid"] for row in rows}


def test_a_status_change_leaves_no_marker_and_is_heard_once(storage_env, listener):
    uid = _running_job()
    assert ANNOUNCING not in store().get(uid).extra
    assert listener.changes.count("running") == 1
    activities.poll(uid)
    assert listener.changes.count("running") == 1
    service.stop_job(uid, None, NoOrchestrations(), stop_running=True)


def test_a_host_that_died_telling_of_running_tells_at_the_next_poll(storage_env, listener, monkeypatch):
    listener.die_on = "running"
    uid = _running_job()
    assert store().get(uid).extra.get(ANNOUNCING, {}).get("status") == "running"  # written, nobody told
    assert "running" not in listener.changes
    activities.poll(uid)  # within the grace: the writer may still be telling them
    assert "running" not in listener.changes
    monkeypatch.setattr(store_module, "ANNOUNCE_GRACE_SECONDS", 0)
    activities.poll(uid)
    assert listener.changes.count("running") == 1
    assert ANNOUNCING not in store().get(uid).extra
    activities.poll(uid)
    assert listener.changes.count("running") == 1
    service.stop_job(uid, None, NoOrchestrations(), stop_running=True)


def test_a_host_that_died_before_the_index_row_lists_the_job_right_after_the_next_poll(
    storage_env, listener, monkeypatch
):
    real_index = TableJobStore._index

    def dying_index(self, record):
        if record.status == JobStatus.RUNNING and ANNOUNCING in record.extra:
            monkeypatch.setattr(TableJobStore, "_index", real_index)
            raise Crash("died before the index row")
        real_index(self, record)

    monkeypatch.setattr(TableJobStore, "_index", dying_index)
    uid = _running_job()
    assert store().get(uid).status == JobStatus.RUNNING and uid not in _listed(JobStatus.RUNNING)
    monkeypatch.setattr(store_module, "ANNOUNCE_GRACE_SECONDS", 0)
    activities.poll(uid)
    assert uid in _listed(JobStatus.RUNNING) and listener.changes.count("running") == 1
    service.stop_job(uid, None, NoOrchestrations(), stop_running=True)
