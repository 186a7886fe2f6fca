"""Activities are at-least-once: a start run again adopts the job it launched; a job's own final status stands.

With the real shell runner and real Azurite, calling the activities the way a host that died and came back
would (the same activity twice, a poll after the job said it ended).
"""

from __future__ import annotations

import time
from pathlib import Path

from shared import service
from shared.jobs import activities, transitions
from shared.jobs.store import store
from shared.platform import hooks

from tests.integration.test_lifecycle_shell import NoOrchestrations, _shell


def _until_done(uid: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        polled = activities.poll(uid)
        if polled["done"]:
            return polled
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_a_start_run_twice_launches_once(storage_env, tmp_path):
    marker = tmp_path / "starts"
    started = service.start_job(
        _shell(f"echo start >> {marker}; sleep 1"), caller=None, orchestrations=NoOrchestrations()
    )
    first = activities.start(started.uid)
    handle = store().get(started.uid).handle
    second = activities.start(started.uid)  # the host died after the first returned; the activity runs again
    assert first["state"] in ("started", "finished") and second["state"] == "started"
    assert store().get(started.uid).handle == handle
    polled = _until_done(started.uid)
    assert activities.finish({"uid": started.uid, "reason": polled["reason"]})["status"] == "completed"
    assert Path(marker).read_text().splitlines() == ["start"]


def _report(uid: str, status: str, token: str) -> None:
    body = f'{{"percentage": null, "logs": "said {status}", "status": "{status}"}}'.encode()
    service.report_progress(uid, body, "false", job_token=token)


def test_a_job_that_reports_failed_and_keeps_running_ends_failed_not_removed(storage_env, monkeypatch):
    monkeypatch.setattr(transitions, "REPORTED_GRACE_SECONDS", 0.5)
    started = service.start_job(_shell("echo working; sleep 60"), caller=None, orchestrations=NoOrchestrations())
    activities.start(started.uid)
    _report(started.uid, "failed", store().get(started.uid).job_token)
    assert activities.poll(started.uid)["done"] is False  # still within its grace period
    time.sleep(0.6)
    polled = _until_done(started.uid)
    assert polled["reason"] == transitions.REPORTED
    assert activities.finish({"uid": started.uid, "reason": polled["reason"]})["status"] == "failed"
    body = service.get_job(started.uid)
    assert body["status"] == "failed" and body["message"] == "the job reported that it failed"
    assert "said failed" in body["log"] and body["ended"]
    assert "working" in service.get_result(started.uid)["result"]  # the output kept (no result file written)


def test_a_job_that_reports_completed_and_exits_keeps_its_result(storage_env):
    script = 'echo "$JOB_UID" > "$JOB_RESULT_FILE"; sleep 0.5'
    started = service.start_job(_shell(script), caller=None, orchestrations=NoOrchestrations())
    activities.start(started.uid)
    _report(started.uid, "completed", store().get(started.uid).job_token)
    polled = _until_done(started.uid)
    assert polled["reason"] is None  # it exited by itself within the grace period
    assert activities.finish({"uid": started.uid, "reason": None})["status"] == "completed"
    assert service.get_result(started.uid)["result"].strip() == started.uid


def test_a_job_that_reports_completed_but_exits_non_zero_stays_completed(storage_env):
    started = service.start_job(_shell("sleep 0.3; exit 4"), caller=None, orchestrations=NoOrchestrations())
    activities.start(started.uid)
    _report(started.uid, "completed", store().get(started.uid).job_token)
    polled = _until_done(started.uid)
    assert activities.finish({"uid": started.uid, "reason": polled["reason"]})["status"] == "completed"


def test_a_job_may_not_report_removed(storage_env):
    started = service.start_job(_shell("true"), caller=None, orchestrations=NoOrchestrations())
    body = b'{"percentage": null, "logs": null, "status": "removed"}'
    try:
        service.report_progress(started.uid, body, "false", job_token=store().get(started.uid).job_token)
    except Exception as error:  # noqa: BLE001
        assert getattr(error, "status", None) == 422
    else:
        raise AssertionError("a reported `removed` was accepted")
    assert store().get(started.uid).status.value == "starting"


class _Recorder:
    """A lifecycle listener that remembers what it heard; `die` makes it raise a BaseException once, the way a
    host killed inside the listeners stops the activity (hooks catch Exception, not a dying process)."""

    def __init__(self):
        self.ends: list[tuple[str, str | None]] = []
        self.changes: list[str] = []
        self.die = False

    def status_changed(self, record) -> None:
        self.changes.append(record.status.value)

    def finished(self, record, result) -> None:
        if self.die:
            self.die = False
            raise KeyboardInterrupt("host died inside the finish listeners")
        self.ends.append((record.status.value, result))


def test_a_finish_that_died_in_its_listeners_tells_them_when_run_again(storage_env):
    recorder = _Recorder()
    hooks.add(recorder)
    try:
        script = 'echo out; printf done > "$JOB_RESULT_FILE"'
        started = service.start_job(_shell(script), caller=None, orchestrations=NoOrchestrations())
        activities.start(started.uid)
        polled = _until_done(started.uid)
        recorder.die = True
        try:
            activities.finish({"uid": started.uid, "reason": polled["reason"]})
        except KeyboardInterrupt:
            pass
        assert store().get(started.uid).status.value == "completed"  # written, but nobody was told
        assert recorder.ends == [] and store().get(started.uid).extra.get(activities.HOOKS_PENDING)
        assert activities.finish({"uid": started.uid, "reason": polled["reason"]})["status"] == "completed"
        assert recorder.ends == [("completed", "done")]  # the result as stored
        assert recorder.changes[-1] == "completed"
        assert activities.HOOKS_PENDING not in store().get(started.uid).extra
        activities.finish({"uid": started.uid, "reason": polled["reason"]})  # a third run: nothing heard again
        assert recorder.ends == [("completed", "done")]
    finally:
        hooks.remove(recorder)
