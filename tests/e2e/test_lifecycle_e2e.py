"""The job lifecycle over HTTP through the local host: the real app, the real Durable SDK, Azurite, bash."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest
import requests

from devhost import DevHost
from shared.platform.clock import ManualClock

from .conftest import HOST_SETTINGS, ROOT, Api, shell_job

ERROR_KEYS = {"status", "type", "message", "debug", "data"}


def test_shell_job_runs_to_completion_with_result(api):
    response = api.start(
        shell_job('echo hello; echo "{\\"type\\": \\"r\\", \\"uid\\": \\"$JOB_UID\\"}" > "$JOB_RESULT_FILE"')
    )
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"uid", "message", "status"} and body["status"] == "starting"
    assert response.headers["Location"] == f"/api/jobs/{body['uid']}"
    final = api.wait(body["uid"])
    assert final["status"] == "completed" and final["log"] == ["hello"] and final["percentage"] == 1.0
    assert final["started"].endswith("Z") and final["ended"].endswith("Z")
    assert final["runner"] == {"type": "dmss://WorkflowDS/Blueprints/Shell"}
    result = api.http.get(f"{api.base}/api/jobs/{body['uid']}/result").json()
    assert json.loads(result["result"]) == {"type": "r", "uid": body["uid"]}


def test_failing_job_reports_exit_code(api):
    uid = api.start(shell_job("echo broken >&2; exit 42")).json()["uid"]
    final = api.wait(uid)
    assert final["status"] == "failed" and "exit code 42" in final["message"] and "broken" in final["log"]


def test_long_job_is_stopped_and_its_processes_are_gone(api, tmp_path):
    pids = tmp_path / "pids"
    uid = api.start(shell_job(f"echo $$ >> {pids}; (sleep 600 & echo $! >> {pids}; wait) & wait")).json()["uid"]
    api.wait(uid, {"running"})
    deadline = time.monotonic() + 10
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = api.http.delete(f"{api.base}/api/jobs/{uid}").json()
    assert stopped["status"] == "removed" and set(stopped) >= {"status", "response"}
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert api.http.delete(f"{api.base}/api/jobs/{uid}").json()["status"] == "removed"  # harmless repeat
    assert api.get(uid)["status"] == "removed"


def test_time_limit_stops_the_job_and_marks_it_failed(api):
    uid = api.start(shell_job("sleep 60", timeLimitSeconds=2)).json()["uid"]
    final = api.wait(uid, timeout=30)
    assert final["status"] == "failed" and "time limit of 2 s" in final["message"]


def test_progress_reported_by_the_job_itself(host, api):
    os.environ["DM_JOB_URL"] = f"{host.url}/api/jobs"
    script = (
        'for i in 1 2; do curl -s -X PUT "$DM_JOB_URL/$JOB_UID?overwrite_log=false" '
        "-H 'Content-Type: application/json' -H \"Authorization: Bearer $JOB_TOKEN\" "
        '-d "{\\"percentage\\": $(awk "BEGIN {print $i / 2}"), \\"logs\\": \\"step $i\\", '
        '\\"status\\": \\"running\\"}"; '
        "done; sleep 0.5"
    )
    uid = api.start(shell_job(script)).json()["uid"]
    final = api.wait(uid)
    assert final["status"] == "completed"
    assert final["log"] == ["step 1", "step 2"] and final["percentage"] == 1.0


def test_idempotent_start_over_http(api):
    first = api.start(shell_job("true"), **{"Idempotency-Key": "same-key"})
    again = api.start(shell_job("true"), **{"Idempotency-Key": "same-key"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["uid"] == first.json()["uid"]


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{oops", 400),
        (json.dumps({"type": "dmss://WorkflowDS/Blueprints/Nope", "runner": {"type": "x"}}).encode(), 400),
        (json.dumps({"type": "JOBCORE:Job"}).encode(), 422),
        (json.dumps({"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Unknown"}}).encode(), 422),
        (b"[" + b"1," * 600_000 + b"1]", 413),
    ],
)
def test_bad_starts_over_http(api, body, status):
    response = api.http.post(f"{api.base}/api/jobs", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert set(response.json()) == ERROR_KEYS
    assert api.http.get(f"{api.base}/api/jobs").json()["jobs"] == []


def test_bad_and_unknown_uids_over_http(api):
    assert api.http.get(f"{api.base}/api/jobs/not-a-uid").status_code == 400
    unknown = api.http.get(f"{api.base}/api/jobs/0b7e3d52-5e0e-4b6b-9c7e-2a1d8f0c1e11")
    assert unknown.status_code == 404 and set(unknown.json()) == ERROR_KEYS
    uid = api.start(shell_job("sleep 5")).json()["uid"]
    early = api.http.get(f"{api.base}/api/jobs/{uid}/result")
    assert early.status_code == 409
    api.http.delete(f"{api.base}/api/jobs/{uid}")


def test_listing_and_health(api):
    uids = [api.start(shell_job("true")).json()["uid"] for _ in range(3)]
    listed = api.http.get(f"{api.base}/api/jobs?limit=2").json()
    assert [j["uid"] for j in listed["jobs"]] == uids[::-1][:2] and listed["continuationToken"]
    rest = api.http.get(
        f"{api.base}/api/jobs", params={"limit": 2, "continuationToken": listed["continuationToken"]}
    ).json()
    assert [j["uid"] for j in rest["jobs"]] == [uids[0]]
    assert api.http.get(f"{api.base}/api/jobs?status=bogus").status_code == 400
    assert api.http.get(f"{api.base}/api/health").status_code == 200


def test_canary_secret_never_leaves(api, caplog, capfd):
    canary = "CANARY-e2e-5b1f0c9d"
    caplog.set_level(logging.DEBUG)
    uid = api.start(
        shell_job('echo "secret=$SECRET"; echo "$SECRET" > "$JOB_RESULT_FILE"; exit 1', [f"SECRET={canary}"])
    ).json()["uid"]
    texts = [json.dumps(api.wait(uid))]
    texts.append(api.http.get(f"{api.base}/api/jobs/{uid}/result").text)
    texts.append(api.http.get(f"{api.base}/api/jobs").text)
    texts.append(api.http.delete(f"{api.base}/api/jobs/{uid}").text)
    bad = api.start(shell_job("true", [f"1BAD={canary}"]))
    assert bad.status_code == 422
    texts.append(bad.text)
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    for text in texts:
        assert canary not in text
    assert "secret=***" in texts[0]


def test_host_restart_in_the_middle_of_a_job(storage_env, tmp_path):
    marker = tmp_path / "go"
    job = shell_job(f"while [ ! -f {marker} ]; do sleep 0.1; done; echo resumed")
    with DevHost(app_dir=ROOT, worker_id="worker-a", settings=HOST_SETTINGS) as first:
        uid = requests.post(f"{first.url}/api/jobs", json=job).json()["uid"]
        Api(first.url).wait(uid, {"running"})
    marker.write_text("now")  # the job finishes while no host is running
    with DevHost(app_dir=ROOT, worker_id="worker-a", settings=HOST_SETTINGS) as second:
        final = Api(second.url).wait(uid, timeout=60)
        assert final["status"] == "completed" and final["log"] == ["resumed"]


def test_a_long_job_keeps_history_bounded(storage_env):
    """Six hours at the 60 s poll cap are some 360 polls in 20-odd generations: each generation's history is as
    long as in a day-long job (bench/bench_long_job.py runs the full 24 hours and prints its figures)."""
    clock = ManualClock()
    hours = 6 * 3600
    job = {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Simulated", "durationSeconds": hours}}
    with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as host:
        uid = requests.post(f"{host.url}/api/jobs", json=job).json()["uid"]
        host.wait_idle()
        host.advance(hours + 120)
        body = Api(host.url).get(uid)
        stats = host.engine.stats(uid)
    assert body["status"] == "completed"
    assert stats["max_history_events"] <= 200 and stats["generations"] > 1


def test_nightly_purge_removes_old_finished_history_but_keeps_the_job(storage_env):
    from datetime import timedelta

    from shared.platform.durable import purge_finished_history

    clock = ManualClock()
    job = {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 0}}
    with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as host:
        done = requests.post(f"{host.url}/api/jobs", json=job).json()["uid"]
        host.wait_idle()
        assert host.engine.status(done)["runtimeStatus"] == "Completed"
        clock.advance(31 * 86400)  # a month later (no timers fire: the clock is just set forward)
        running = requests.post(
            f"{host.url}/api/jobs",
            json={"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 600}},
        ).json()["uid"]
        host.wait_idle()
        purged = host.run(purge_finished_history(host.client(), 30, clock.now()))
        assert purged == 1
        assert host.engine.status(done) is None  # its Durable history is gone
        assert host.engine.status(running)["runtimeStatus"] == "Running"
        assert Api(host.url).get(done)["status"] == "completed"  # the job itself is still there
        assert host.run(purge_finished_history(host.client(), 30, clock.now() + timedelta(days=1))) == 0


def test_stop_works_after_continue_as_new(storage_env):
    clock = ManualClock()
    job = {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Simulated", "durationSeconds": 86400}}
    with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as host:
        uid = requests.post(f"{host.url}/api/jobs", json=job).json()["uid"]
        host.wait_idle()
        host.advance(3 * 3600)  # several generations of 16 polls
        assert host.engine.stats(uid)["generations"] > 2
        stopped = requests.delete(f"{host.url}/api/jobs/{uid}").json()
        assert stopped["status"] == "removed"
        host.wait_idle()
        host.advance(120)
        assert host.engine.status(uid)["runtimeStatus"] == "Completed"
        body = Api(host.url).get(uid)
    assert body["status"] == "removed" and body["ended"]
