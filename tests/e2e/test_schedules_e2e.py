"""Recurring jobs through the local host with its clock replaced: the timer trigger fires due schedules and
starts each run as a normal job (real orchestrations, simulated runner, Azurite)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from devhost import DevHost
from shared.platform.clock import ManualClock

from .conftest import HOST_SETTINGS, ROOT

START = datetime(2026, 3, 2, 0, 0, 30, tzinfo=timezone.utc)  # a Monday


def recurring(cron: str, duration: float = 5, **schedule) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "label": "every so often",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": {
            "type": "dmss://WorkflowDS/Blueprints/Job",
            "label": "a run",
            "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration},
        },
        "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": cron, "runs": [], **schedule},
    }


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def host(storage_env, clock):
    with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as running:
        yield running


def register(host, job) -> str:
    response = requests.post(f"{host.url}/api/jobs", json=job, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "registered"
    return response.json()["uid"]


def runs_of(host, uid) -> list[dict]:
    body = requests.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()
    return body["schedule"]["runs"]


def started_jobs(host) -> list[dict]:
    jobs, token = [], None
    while True:
        page = requests.get(
            f"{host.url}/api/jobs", params={"limit": 1000, **({"continuationToken": token} if token else {})}
        ).json()
        jobs += [j for j in page["jobs"] if j["kind"] == "job"]
        token = page["continuationToken"]
        if not token:
            return jobs


def test_every_five_minutes_over_a_day_starts_exactly_288_runs(storage_env, clock):
    # The tick runs every 5 minutes here (SCHEDULE_TICK is an app setting) to keep the simulated day short in
    # wall time; test_two_hosts... and the others tick every minute.
    with DevHost(app_dir=ROOT, clock=clock, settings={"SCHEDULE_TICK": "0 */5 * * * *"}) as host:
        uid = register(host, recurring("*/5 * * * *", duration=0))
        host.advance(86400)
        jobs = started_jobs(host)
        assert len(jobs) == 288
        body = requests.get(f"{host.url}/api/jobs/{uid}").json()
        assert body["status"] == "registered"
        run = requests.get(f"{host.url}/api/jobs/{jobs[-1]['uid']}").json()
        assert run["triggeredBy"] == f"Schedule ({uid})" and run["status"] == "completed"
        scheduled = sorted(r["scheduled"] for r in body["schedule"]["runs"] if r.get("uid"))
        assert len(set(scheduled)) == len(scheduled)


def test_forbid_skips_while_the_last_run_is_going(host):
    uid = register(host, recurring("* * * * *", duration=150, concurrencyPolicy="Forbid"))
    host.advance(6 * 60)
    runs = runs_of(host, uid)
    started = [r for r in runs if r.get("uid")]
    skipped = [r for r in runs if r.get("status") == "skipped"]
    assert len(started) == 2 and len(skipped) >= 3
    assert len(started_jobs(host)) == 2


def test_replace_stops_the_running_one(host):
    uid = register(host, recurring("*/2 * * * *", duration=600, concurrencyPolicy="Replace"))
    host.advance(7 * 60)
    jobs = started_jobs(host)
    statuses = sorted(requests.get(f"{host.url}/api/jobs/{j['uid']}").json()["status"] for j in jobs)
    assert len(jobs) == 3 and statuses == ["removed", "removed", "running"]
    assert sorted(r["uid"] for r in runs_of(host, uid) if r.get("uid")) == sorted(j["uid"] for j in jobs)


def test_downtime_then_recovery_runs_once_and_records_the_missed(storage_env, clock):
    job = recurring("*/10 * * * *", duration=5, startingDeadlineSeconds=3600)
    with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as first:
        uid = register(first, job)
        first.advance(11 * 60)
    clock.advance(3 * 3600)  # nobody ticks for three hours
    with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as second:
        second.advance(60)
        runs = runs_of(second, uid)
        assert len(started_jobs(second)) == 2  # the one before the outage, one catch-up
    missed = [r for r in runs if r.get("status") == "missed"]
    assert len(missed) >= 17


def test_two_hosts_on_one_storage_start_each_run_once(storage_env, clock):
    with (
        DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS, worker_id="a") as one,
        DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS, worker_id="b") as two,
    ):
        register(one, recurring("* * * * *", duration=5))
        register(two, recurring("*/2 * * * *", duration=5))
        for _ in range(10):
            clock.advance(60)
            one.fire_due()
            two.fire_due()
            one.wait_idle()
            two.wait_idle()
        assert len(started_jobs(one)) == 10 + 5


def test_suspend_and_resume(host):
    uid = register(host, recurring("* * * * *", duration=5))
    host.advance(3 * 60)
    assert requests.post(f"{host.url}/api/jobs/{uid}/suspend").status_code == 200
    host.advance(5 * 60)
    assert len(started_jobs(host)) == 3
    assert requests.post(f"{host.url}/api/jobs/{uid}/resume").status_code == 200
    host.advance(2 * 60)
    assert len(started_jobs(host)) == 5


def test_end_date_expiry(host):
    end = (START + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")  # naive, as the old UI sends it
    uid = register(host, recurring("* * * * *", duration=5, endDate=end))
    host.advance(15 * 60)
    assert len(started_jobs(host)) == 5
    assert requests.get(f"{host.url}/api/jobs/{uid}").json()["schedule"]["state"] == "expired"


def test_preview_in_utc_and_in_the_zone(host):
    uid = register(host, recurring("0 9 * * *", timezone="Europe/Oslo"))
    preview = requests.get(f"{host.url}/api/jobs/{uid}/schedule?next=3").json()
    assert len(preview["fireTimes"]) == 3
    assert requests.get(f"{host.url}/api/jobs/{uid}/schedule?next=zero").status_code == 400


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron": "61 * * * *"},
        {"cron": "* * *"},
        {"cron": "* * * * *", "timezone": "Mars/Olympus"},
        {"cron": "* * * * *", "startDate": "next tuesday"},
        {"cron": "* * * * *", "concurrencyPolicy": "Sometimes"},
    ],
)
def test_bad_schedules_are_rejected_with_nothing_stored(host, schedule):
    job = recurring("* * * * *")
    job["schedule"].update(schedule)
    response = requests.post(f"{host.url}/api/jobs", json=job)
    assert response.status_code == 422, response.text  # an invalid schedule is a validation error
    assert requests.get(f"{host.url}/api/jobs").json()["jobs"] == []


def test_delete_stops_further_runs(host):
    uid = register(host, recurring("* * * * *", duration=5))
    host.advance(2 * 60)
    assert requests.delete(f"{host.url}/api/jobs/{uid}").json()["status"] == "removed"
    host.advance(5 * 60)
    assert len(started_jobs(host)) == 2
