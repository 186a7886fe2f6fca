"""Run now and backfill through the local host on a replaced clock (real orchestrations, the simulated runner,
Azurite): POST /api/jobs/{uid}/run and POST/DELETE /api/jobs/{uid}/backfill.

One host for the module (the tests use their own schedules); the clock only moves when a test advances it.
The schedule timer is set to fire once a year here, so that only the requests and the backfill driver start
runs: every run a test sees is one it asked for.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest
import requests

from devhost import DevHost
from shared.platform.clock import ManualClock

from .conftest import ROOT

START = datetime(2026, 3, 2, 12, 0, 30, tzinfo=timezone.utc)  # a Monday
ALICE = {"X-MS-CLIENT-PRINCIPAL-ID": "alice", "X-MS-CLIENT-PRINCIPAL-NAME": "Alice"}
SETTINGS = {"SCHEDULE_TICK": "0 0 0 1 1 *"}  # the tick stays out of the way (it would fire the cron too)


@pytest.fixture(autouse=True)
def schedule_tick_setting(monkeypatch):
    monkeypatch.setenv("SCHEDULE_TICK", SETTINGS["SCHEDULE_TICK"])


@pytest.fixture(scope="module")
def host(azurite):
    prefix = "sr" + uuid.uuid4().hex[:8]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AzureWebJobsStorage": azurite.connection_string,
            "JOB_STORE_PREFIX": prefix,
            "JOB_ORCHESTRATION_STORE_PREFIX": prefix + "h",
            "ENABLE_LOCAL_RUNNERS": "true",
            **SETTINGS,
        }.items():
            patch.setenv(name, value)
        with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=SETTINGS) as running:
            yield running


def recurring(policy: str, duration: float = 30, cron: str = "0 * * * *", **schedule) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "label": f"hourly, {policy}",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": {
            "type": "dmss://WorkflowDS/Blueprints/Job",
            "label": "a run",
            "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration},
        },
        "schedule": {
            "type": "dmss://WorkflowDS/Blueprints/CronJob",
            "cron": cron,
            "concurrencyPolicy": policy,
            "runs": [],
            **schedule,
        },
    }


def register(host, job, **headers) -> str:
    response = requests.post(f"{host.url}/api/jobs", json=job, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["uid"]


def schedule_of(host, uid, **headers) -> dict:
    response = requests.get(f"{host.url}/api/jobs/{uid}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["schedule"]


def run_now(host, uid, key: str | None = None, **headers) -> requests.Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(f"{host.url}/api/jobs/{uid}/run", headers=headers, timeout=30)


def backfill(host, uid, first: str, last: str, **headers) -> requests.Response:
    return requests.post(
        f"{host.url}/api/jobs/{uid}/backfill", json={"from": first, "to": last}, headers=headers, timeout=30
    )


def runs_started(host, uid, **headers) -> list[dict]:
    return [r for r in schedule_of(host, uid, **headers)["runs"] if r.get("uid")]


def test_run_now_starts_a_manual_run_for_the_owner_and_forbid_refuses_a_second(host):
    uid = register(host, recurring("Forbid"), **ALICE)
    stranger = run_now(host, uid, **{"X-MS-CLIENT-PRINCIPAL-ID": "mallory"})
    assert stranger.status_code == 403, stranger.text
    first = run_now(host, uid, **ALICE)
    assert first.status_code == 202, first.text
    run_uid = first.json()["uid"]
    assert first.headers["Location"] == f"/api/jobs/{run_uid}"
    entry = next(r for r in runs_started(host, uid, **ALICE) if r["uid"] == run_uid)
    assert entry["trigger"] == "manual" and entry["requestedBy"] == "Alice"
    run = requests.get(f"{host.url}/api/jobs/{run_uid}", headers=ALICE, timeout=30).json()
    assert run["triggeredBy"] == f"Schedule ({uid})"  # the run acts for the schedule's owner
    second = run_now(host, uid, **ALICE)
    assert second.status_code == 409, second.text
    assert run_uid in second.json()["message"] and second.json()["data"]["run"] == run_uid
    host.advance(45)
    assert next(r for r in runs_started(host, uid, **ALICE) if r["uid"] == run_uid)["status"] == "completed"
    third = run_now(host, uid, **ALICE)
    assert third.status_code == 202, third.text
    assert [r["trigger"] for r in runs_started(host, uid, **ALICE)] == ["manual", "manual"]
    host.advance(45)


def test_run_now_is_idempotent_with_a_key_and_allow_starts_alongside(host):
    uid = register(host, recurring("Allow"))
    first = run_now(host, uid, "k-1")
    again = run_now(host, uid, "k-1")
    assert (first.status_code, again.status_code) == (202, 200), (first.text, again.text)
    assert again.json()["uid"] == first.json()["uid"]
    other = run_now(host, uid, "k-2")  # Allow: a second run while the first goes on
    assert other.status_code == 202 and other.json()["uid"] != first.json()["uid"]
    assert len(runs_started(host, uid)) == 2
    host.advance(45)


def test_replace_stops_the_current_run(host):
    uid = register(host, recurring("Replace", duration=600))
    first = run_now(host, uid).json()["uid"]
    second = run_now(host, uid)
    assert second.status_code == 202, second.text
    host.advance(30)
    statuses = {r["uid"]: r["status"] for r in runs_started(host, uid)}
    assert statuses[first] == "removed" and statuses[second.json()["uid"]] in ("starting", "running")
    requests.delete(f"{host.url}/api/jobs/{uid}?stopRunning=true", timeout=30)
    host.advance(30)


def test_backfill_runs_each_fire_time_once_one_after_another_and_a_resend_starts_nothing(host):
    uid = register(host, recurring("Forbid", duration=20))
    response = backfill(host, uid, "2026-03-01T00:00", "2026-03-01T05:59")  # naive: UTC, the schedule's zone
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["fireTimes"], body["queued"]) == (6, 6)
    assert body["backfill"]["started"] == 1 and body["backfill"]["queued"] == 5  # the first at once
    again = backfill(host, uid, "2026-03-01T00:00:00Z", "2026-03-01T05:00:00Z").json()
    assert (again["queued"], again["alreadyQueuedOrRun"]) == (0, 6)
    host.advance(10)
    assert len(runs_started(host, uid)) == 1  # Forbid: one after another
    host.advance(300)
    view = schedule_of(host, uid)
    progress = view["backfill"]
    assert (progress["queued"], progress["started"], progress["finished"], progress["running"]) == (0, 6, 6, 0)
    scheduled = sorted(r["scheduled"] for r in view["runs"] if r.get("uid"))
    assert scheduled == [f"2026-03-01T0{h}:00:00Z" for h in range(6)]
    assert all(r["trigger"] == "backfill" and r["status"] == "completed" for r in view["runs"] if r.get("uid"))
    later = backfill(host, uid, "2026-03-01T03:00", "2026-03-01T07:00").json()  # overlaps: only 06:00, 07:00 new
    assert (later["fireTimes"], later["queued"]) == (5, 2)
    host.advance(120)
    scheduled = sorted(r["scheduled"] for r in schedule_of(host, uid)["runs"] if r.get("uid"))
    assert scheduled == [f"2026-03-01T0{h}:00:00Z" for h in range(8)]


def test_backfill_in_the_schedules_zone_with_allow_runs_concurrently(host):
    uid = register(host, recurring("Allow", duration=60, timezone="Europe/Oslo"))
    body = backfill(host, uid, "2026-03-01T10:00", "2026-03-01T12:00").json()  # Oslo: 09:00Z .. 11:00Z
    assert body["from"] == "2026-03-01T09:00:00Z" and body["queued"] == 3
    host.advance(5)
    assert len(runs_started(host, uid)) == 3  # all three at once (the cap is 10)
    host.advance(120)
    assert schedule_of(host, uid)["backfill"]["finished"] == 3


def test_replace_backfills_only_the_last_time(host):
    uid = register(host, recurring("Replace", duration=5))
    body = backfill(host, uid, "2026-03-01T00:00", "2026-03-01T05:00").json()
    assert (body["fireTimes"], body["queued"]) == (1, 1)
    host.advance(30)
    assert [r["scheduled"] for r in runs_started(host, uid)] == ["2026-03-01T05:00:00Z"]


def test_cancel_drops_what_is_queued_and_a_later_backfill_may_queue_it_again(host):
    uid = register(host, recurring("Forbid", duration=20))
    backfill(host, uid, "2026-03-02T00:00", "2026-03-02T09:00")
    cancelled = requests.delete(f"{host.url}/api/jobs/{uid}/backfill", timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelled"] == 9 and cancelled.json()["backfill"]["queued"] == 0
    host.advance(120)
    assert [r["scheduled"] for r in runs_started(host, uid)] == ["2026-03-02T00:00:00Z"]
    again = backfill(host, uid, "2026-03-02T00:00", "2026-03-02T01:00").json()
    assert (again["queued"], again["alreadyQueuedOrRun"]) == (1, 1)  # 00:00 ran; 01:00 was cancelled
    host.advance(60)
    assert [r["scheduled"] for r in runs_started(host, uid)] == ["2026-03-02T00:00:00Z", "2026-03-02T01:00:00Z"]


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"from": "yesterday", "to": "2026-03-01T01:00"}, 422, "from"),
        ({"from": "2026-03-01T01:00"}, 422, "to: required"),
        ({"from": "2026-03-02T00:00", "to": "2026-03-01T00:00"}, 422, "is after"),
        ({"from": "2026-01-01T00:00", "to": "2026-03-01T00:00"}, 422, "at most 1000"),
        ({"from": "2026-03-01T00:00", "to": "2026-03-01T01:00", "extra": 1}, 422, "unknown attribute"),
        ([1, 2], 422, "JSON object"),
    ],
)
def test_bad_backfills_are_refused_and_store_nothing(host, body, status, needle):
    uid = register(host, recurring("Forbid"))
    before = schedule_of(host, uid)
    response = requests.post(f"{host.url}/api/jobs/{uid}/backfill", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert needle in response.json()["message"]
    assert schedule_of(host, uid) == before


def test_backfill_and_run_now_of_what_is_not_a_recurring_job(host):
    missing = str(uuid.uuid4())
    assert backfill(host, missing, "2026-03-01T00:00", "2026-03-01T01:00").status_code == 404
    assert run_now(host, missing).status_code == 404
    assert requests.delete(f"{host.url}/api/jobs/{missing}/backfill", timeout=30).status_code == 404
    plain = register(host, recurring("Forbid")["applicationInput"])
    refused = backfill(host, plain, "2026-03-01T00:00", "2026-03-01T01:00")
    assert refused.status_code == 400 and "not a recurring job" in refused.json()["message"]
    assert run_now(host, "not-a-uid").status_code == 400
    host.advance(5)


def test_no_secret_in_the_replies(host):
    canary = "canary-" + os.urandom(6).hex()
    job = recurring("Allow")
    job["applicationInput"]["environmentVariables"] = [f"SECRET={canary}"]
    uid = register(host, job)
    texts = [run_now(host, uid).text, backfill(host, uid, "2026-03-01T00:00", "2026-03-01T01:00").text]
    texts.append(requests.get(f"{host.url}/api/jobs/{uid}", timeout=30).text)
    assert all(canary not in text for text in texts)
    host.advance(60)
