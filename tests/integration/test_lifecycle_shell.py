"""Start, poll and finish activities with the real shell runner and real Azurite (no orchestration host)."""

import os
import time

import pytest

from runners.base import RetryLater, Runner

from shared.jobs import activities as lifecycle
from shared import service
from shared.jobs.store import store


class NoOrchestrations:
    def __init__(self):
        self.started, self.stops = [], []

    def start(self, uid, input):
        self.started.append((uid, input))

    def raise_stop(self, uid):
        self.stops.append(uid)


def _shell(script, env=()):
    return {
        "type": "JOBCORE:Job",
        "label": "t",
        "runner": {"type": "JOBCORE:Shell", "script": script, "environmentVariables": list(env)},
    }


def _run_to_end(uid, timeout=20):
    if lifecycle.start(uid)["state"] == "finished":
        return lifecycle.finish({"uid": uid, "reason": None})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        polled = lifecycle.poll(uid)
        if polled["done"]:
            return lifecycle.finish({"uid": uid, "reason": polled["reason"]})
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_completed_with_result_file(storage_env):
    orch = NoOrchestrations()
    started = service.start_job(
        _shell('echo hello; echo "$JOB_UID" > "$JOB_RESULT_FILE"'), caller=None, orchestrations=orch
    )
    assert orch.started[0][0] == started.uid
    assert _run_to_end(started.uid)["status"] == "completed"
    body = service.get_job(started.uid)
    assert body["status"] == "completed" and "hello" in body["log"] and body["ended"]
    assert service.get_result(started.uid)["result"].strip() == started.uid


def test_failure_reports_exit_code_and_result_falls_back_to_output(storage_env):
    started = service.start_job(_shell("echo oops >&2; exit 3"), caller=None, orchestrations=NoOrchestrations())
    assert _run_to_end(started.uid)["status"] == "failed"
    body = service.get_job(started.uid)
    assert "exit code 3" in body["message"]
    assert "oops" in service.get_result(started.uid)["result"]


def test_stop_kills_the_process_group(storage_env, tmp_path):
    pidfile = tmp_path / "pids"
    orch = NoOrchestrations()
    started = service.start_job(
        _shell(f"sleep 300 & echo $! >> {pidfile}; echo $$ >> {pidfile}; wait"), caller=None, orchestrations=orch
    )
    lifecycle.start(started.uid)
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and len(pidfile.read_text().split()) == 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in pidfile.read_text().split()]
    reply = service.stop_job(started.uid, None, orch)
    assert reply["status"] == "removed" and orch.stops == [started.uid]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert lifecycle.poll(started.uid)["done"]
    lifecycle.finish({"uid": started.uid, "reason": "stopped"})
    assert service.get_job(started.uid)["status"] == "removed"
    assert service.stop_job(started.uid, None, orch)["status"] == "removed"  # harmless repeat


def test_canary_secret_is_scrubbed_from_log_result_and_replies(storage_env):
    canary = "CANARY-7f3a9c-secret"
    started = service.start_job(
        _shell('echo "token is $SECRET"; echo "$SECRET" > "$JOB_RESULT_FILE"', [f"SECRET={canary}"]),
        caller=None,
        orchestrations=NoOrchestrations(),
    )
    _run_to_end(started.uid)
    record = store().get(started.uid)
    texts = [str(service.get_job(started.uid)), str(service.get_result(started.uid)), store().get_text(record.log_ref)]
    assert all(canary not in text for text in texts)
    assert "token is ***" in service.get_job(started.uid)["log"]


def test_time_limit_marks_failed(storage_env):
    started = service.start_job(
        {**_shell("sleep 30"), "timeLimitSeconds": 5}, caller=None, orchestrations=NoOrchestrations()
    )
    lifecycle.start(started.uid)
    result = lifecycle.finish({"uid": started.uid, "reason": "timeout"})
    assert result["status"] == "failed"
    assert "time limit of 5 s" in service.get_job(started.uid)["message"]


class ThrottledAtTheEnd(Runner):
    """A runner whose API throttles every read once the job has ended (as ARM may)."""

    type_names = ("test:Throttled",)
    cleaned: list = []

    def start(self, job):
        return {"uid": job.uid}

    def status(self, handle):
        raise RetryLater("throttled", retry_after=7)

    def stop(self, handle):
        return "stopped"

    def cleanup(self, handle):
        self.cleaned.append(handle["uid"])


def test_finish_waits_for_a_throttling_runner_then_closes_the_job(storage_env):
    from runners.registry import default_registry

    default_registry().register(ThrottledAtTheEnd)
    uid = service.start_job(
        {"type": "JOBCORE:Job", "runner": {"type": "test:Throttled"}}, caller=None, orchestrations=NoOrchestrations()
    ).uid
    assert lifecycle.start(uid)["state"] == "started"
    assert lifecycle.poll(uid) == {"done": False, "reason": None, "changed": False}
    assert "could not tell" in service.get_job(uid)["message"]
    assert lifecycle.finish({"uid": uid, "reason": None}) == {"retryAfter": 7.0}
    assert ThrottledAtTheEnd.cleaned == []  # nothing released while we may still read it
    assert lifecycle.finish({"uid": uid, "reason": None, "lastAttempt": True}) == {"status": "failed"}
    assert "final state could not be read" in service.get_job(uid)["message"]
    assert ThrottledAtTheEnd.cleaned == [uid]
