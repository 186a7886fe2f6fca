"""`GET /api/jobs/{uid}/log`: the whole log, where the status keeps only the last LOG_TAIL_LINES.

Real shell jobs on Azurite: while a job runs the log is read from its runner at the request, once it has ended
it is the log stored then; the job's secret values never appear in either.
"""

from __future__ import annotations

import time

import pytest

from shared import service
from shared.jobs import activities
from shared.jobs.store import store
from shared.platform.errors import ApiError
from shared.platform.identity import Caller

from tests.integration.test_lifecycle_shell import NoOrchestrations, _shell

CANARY = "CANARY-log-5d1e-secret"
ALICE = Caller("alice", "Alice", "bearer")
BOB = Caller("bob", "Bob", "bearer")


def _start(script: str, caller: Caller | None = ALICE) -> str:
    started = service.start_job(_shell(script, [f"SECRET={CANARY}"]), caller=caller, orchestrations=NoOrchestrations())
    activities.start(started.uid)
    return started.uid


def _until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _finish(uid: str) -> dict:
    polled: dict = {}

    def done() -> bool:
        polled.update(activities.poll(uid))
        return polled["done"]

    _until(done)
    return activities.finish({"uid": uid, "reason": polled["reason"]})


def test_a_running_jobs_whole_log_comes_from_its_runner_scrubbed(storage_env, monkeypatch, tmp_path):
    monkeypatch.setenv("LOG_TAIL_LINES", "5")
    go = tmp_path / "go"
    uid = _start(f'for i in $(seq 1 50); do echo "line $i $SECRET"; done; while [ ! -e {go} ]; do sleep 0.05; done')
    _until(lambda: len(service.get_log(uid, ALICE)["log"]) >= 50)
    activities.poll(uid)
    body = service.get_log(uid, ALICE)
    assert body["source"] == "runner" and body["status"] == "running"
    assert body["lines"] == 50 and not body["truncated"]
    assert body["log"][0] == "line 1 ***" and body["log"][-1] == "line 50 ***"
    assert len(service.get_job(uid, ALICE)["log"]) <= 5  # the status keeps the tail only
    assert CANARY not in str(body)
    go.touch()
    _finish(uid)


def test_an_ended_jobs_whole_log_is_the_stored_one_and_tail_cuts_it(storage_env, monkeypatch):
    monkeypatch.setenv("LOG_TAIL_LINES", "5")
    uid = _start('for i in $(seq 1 300); do echo "line $i $SECRET"; done')
    assert _finish(uid)["status"] == "completed"
    body = service.get_log(uid, ALICE)
    assert body["source"] == "stored" and body["status"] == "completed"
    assert body["lines"] == 300 and body["log"][-1] == "line 300 ***"
    tail = service.get_log(uid, ALICE, "3")
    assert tail["log"] == ["line 298 ***", "line 299 ***", "line 300 ***"] and tail["truncated"]
    assert CANARY not in str(body) and CANARY not in store().get_text(store().get(uid).log_ref)


def test_a_job_not_yet_launched_answers_the_lines_the_app_keeps(storage_env):
    started = service.start_job(_shell("echo hi"), caller=ALICE, orchestrations=NoOrchestrations())
    body = service.get_log(started.uid, ALICE)
    assert body["source"] == "kept" and body["status"] == "starting" and body["lines"] == len(body["log"])


@pytest.mark.parametrize("tail", ["0", "-1", "x", "100001", "1" * 30])
def test_a_bad_tail_is_a_400_naming_it(storage_env, tail):
    uid = _start("echo hi")
    with pytest.raises(ApiError) as refused:
        service.get_log(uid, ALICE, tail)
    assert refused.value.status == 400 and "tail" in refused.value.message
    _finish(uid)


def test_only_who_may_read_the_job_may_read_its_log(storage_env):
    uid = _start("echo hi")
    with pytest.raises(ApiError) as refused:
        service.get_log(uid, BOB)
    assert refused.value.status == 403
    with pytest.raises(ApiError) as missing:
        service.get_log("00000000-0000-0000-0000-000000000000", ALICE)
    assert missing.value.status == 404
    _finish(uid)
