"""BufferOne, jitter and several cron expressions through the local host on a replaced clock: the timer trigger
ticks every minute and starts runs as normal jobs (real orchestrations, simulated runner, Azurite); and a
RecurringJob with all three started from the stand-in DMSS."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import requests

from devhost import DevHost
from shared.dmss import client as dmss_client
from shared.platform.clock import ManualClock
from tests.standins.dmss import DmssStandIn

from .conftest import HOST_SETTINGS, ROOT

START = datetime(2026, 3, 2, 0, 0, 30, tzinfo=timezone.utc)  # a Monday


def iso_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def recurring(cron, duration: float = 0, **schedule) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "label": "policies",
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": {
            "type": "dmss://WorkflowDS/Blueprints/Job",
            "label": "a run",
            "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration},
        },
        "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": cron, "runs": [], **schedule},
    }


@pytest.fixture(scope="module")
def clock():
    return ManualClock(START)


@pytest.fixture(scope="module")
def host(azurite, clock):
    """One host for the module (its own table prefix); each test removes the schedules it registered."""
    prefix = "t" + uuid.uuid4().hex[:10]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AzureWebJobsStorage", azurite.connection_string)
        env.setenv("JOB_STORE_PREFIX", prefix)
        env.setenv("JOB_ORCHESTRATION_STORE_PREFIX", prefix + "h")
        env.setenv("ENABLE_LOCAL_RUNNERS", "true")
        env.setenv("SCHEDULE_TICK", HOST_SETTINGS["SCHEDULE_TICK"])
        with DevHost(app_dir=ROOT, clock=clock, settings=HOST_SETTINGS) as running:
            yield running


@pytest.fixture
def registered(host):
    uids: list[str] = []

    def register(job: dict) -> str:
        response = requests.post(f"{host.url}/api/jobs", json=job, timeout=30)
        assert response.status_code == 202, response.text
        uids.append(response.json()["uid"])
        return uids[-1]

    yield register
    for uid in uids:
        requests.delete(f"{host.url}/api/jobs/{uid}", timeout=30)


def schedule_of(host, uid) -> dict:
    return requests.get(f"{host.url}/api/jobs/{uid}", timeout=30).json()["schedule"]


def run_jobs(host, schedule_uid) -> list[dict]:
    """The runs the schedule started, as the job service shows them, oldest first."""
    runs = [r for r in schedule_of(host, schedule_uid)["runs"] if r.get("uid")]
    return [{**r, "job": requests.get(f"{host.url}/api/jobs/{r['uid']}", timeout=30).json()} for r in runs]


def all_jobs(host) -> int:
    return len(requests.get(f"{host.url}/api/jobs", params={"limit": 1000}, timeout=30).json()["jobs"])


def test_buffer_one_runs_one_after_another_and_skips_what_cannot_wait(host, registered):
    # fires every 5 minutes, each run takes 8: one runs, one waits, the third finds one waiting and is skipped
    uid = registered(recurring("*/5 * * * *", duration=480, concurrencyPolicy="BufferOne"))
    host.advance(40 * 60)
    runs = run_jobs(host, uid)
    entries = schedule_of(host, uid)["runs"]
    skipped = [e for e in entries if e["status"] == "skipped"]
    assert len(runs) >= 4 and len(skipped) >= 2
    assert all("BufferOne" in e["reason"] and "already waiting" in e["reason"] for e in skipped)
    ended = [r for r in runs if r["job"]["status"] == "completed"]
    for earlier, later in zip(runs, runs[1:]):
        end, start = iso_time(earlier["job"]["ended"]), iso_time(later["job"]["started"])
        assert start >= end, "a BufferOne run started while the one before was going"
        # the waiting run starts at the first tick after the end: within the tick's minute
        assert start - end <= timedelta(seconds=61), (earlier, later)
        assert later["waitedSince"] <= later["started"]
    assert len(ended) >= len(runs) - 1
    scheduled = [e["scheduled"] for e in entries if e.get("scheduled")]
    assert len(scheduled) == len(set(scheduled))  # every fire time once: started, waiting or skipped
    assert sum(1 for r in runs if r["job"]["status"] in ("running", "starting")) <= 1


def test_jitter_spreads_starts_deterministically_and_runs_record_nominal_and_actual(host, registered):
    uids = [registered(recurring("*/10 * * * *", jitterSeconds=540)) for _ in range(4)]
    previews = {
        uid: requests.get(f"{host.url}/api/jobs/{uid}/schedule", params={"next": 3}, timeout=30).json() for uid in uids
    }
    for preview in previews.values():
        for fire in preview["fireTimes"]:
            shift = (iso_time(fire["utc"]) - iso_time(fire["nominal"])).total_seconds()
            assert 0 <= shift <= 540 and iso_time(fire["nominal"]).minute % 10 == 0
    assert len({p["fireTimes"][0]["utc"] for p in previews.values()}) > 1  # four schedules, not one second
    host.advance(30 * 60)
    for uid in uids:
        runs = run_jobs(host, uid)
        shown = previews[uid]["fireTimes"]
        assert [(r["scheduled"], r["actual"]) for r in runs[:2]] == [(f["nominal"], f["utc"]) for f in shown[:2]]
        for run in runs:
            started = iso_time(run["job"]["started"])
            assert timedelta(0) <= started - iso_time(run["actual"]) <= timedelta(seconds=61)
        assert schedule_of(host, uid)["jitterSeconds"] == 540


def test_several_expressions_fire_once_per_time_and_say_which(host, clock, registered):
    uid = registered(recurring(["*/2 * * * *", "*/3 * * * *"]))
    preview = requests.get(f"{host.url}/api/jobs/{uid}/schedule", params={"next": 4}, timeout=30).json()
    assert preview["cron"] == ["*/2 * * * *", "*/3 * * * *"]
    minute0 = clock.now().replace(second=0, microsecond=0)
    host.advance(12 * 60 + 30)
    times = [minute0 + timedelta(minutes=m) for m in range(1, 13)]
    expected = {
        t.strftime("%Y-%m-%dT%H:%M:%SZ"): "*/2 * * * *" if t.minute % 2 == 0 else "*/3 * * * *"
        for t in times
        if t.minute % 2 == 0 or t.minute % 3 == 0
    }
    runs = run_jobs(host, uid)
    assert {r["scheduled"]: r["expression"] for r in runs} == expected and len(runs) == len(expected)
    assert all(r["job"]["status"] == "completed" for r in runs)
    assert [(f["utc"], f["expression"]) for f in preview["fireTimes"]] == list(expected.items())[:4]


@pytest.mark.parametrize(
    ("schedule", "attribute", "says"),
    [
        ({"jitterSeconds": -1}, "schedule.jitterSeconds", "between 0 and 86400"),
        ({"jitterSeconds": 86_401}, "schedule.jitterSeconds", "between 0 and 86400"),
        ({"jitterSeconds": "a bit"}, "schedule.jitterSeconds", "not a whole number"),
        ({"cron": []}, "schedule.cron", "empty list"),
        ({"cron": ["0 8 * * 1-5", "61 * * * *"]}, "schedule.cron", "cron[1]"),
        ({"cron": ["* * * * *"] * 21}, "schedule.cron", "at most 20"),
        ({"concurrencyPolicy": "BufferTwo"}, "schedule.concurrencyPolicy", "BufferOne"),
    ],
)
def test_bad_values_are_refused_naming_the_attribute_and_nothing_is_stored(host, schedule, attribute, says):
    before = all_jobs(host)
    job = recurring("* * * * *")
    job["schedule"].update(schedule)
    response = requests.post(f"{host.url}/api/jobs", json=job, timeout=30)
    assert response.status_code == 422, response.text
    body = response.json()
    assert says in body["message"] and body["data"]["attribute"] == attribute
    assert all_jobs(host) == before


def test_a_cron_list_that_is_not_strings_is_refused(host):
    job = recurring([5])
    response = requests.post(f"{host.url}/api/jobs", json=job, timeout=30)
    assert response.status_code == 422 and "cron" in response.text


# ---- from DMSS ----------------------------------------------------------------------------------------------
def test_a_dmss_recurring_job_takes_the_attributes_from_its_entity_and_keeps_them(azurite, monkeypatch):
    prefix = "t" + uuid.uuid4().hex[:10]
    for name, value in {
        "AzureWebJobsStorage": azurite.connection_string,
        "JOB_STORE_PREFIX": prefix,
        "JOB_ORCHESTRATION_STORE_PREFIX": prefix + "h",
        "ENABLE_LOCAL_RUNNERS": "true",
        "PUBLIC_DMSS_URL": "",
        "DMSS_APP_ACCESS_KEY": "",
        "DMSS_TIMEOUT_SECONDS": "1",
        "CALLER_IDENTITY_SOURCE": "auto",
    }.items():
        monkeypatch.setenv(name, value)
    dmss = DmssStandIn().start()
    try:
        dmss.add_data_source("DS")
        monkeypatch.setenv("DMSS_URL", dmss.url)
        token = dmss.issue_token(subject="alice")
        schedule = {
            "type": "dmss://WorkflowDS/Blueprints/CronJob",
            "cron": ["0 8 * * 1-5", "0 10 * * 6"],
            "timezone": "Europe/Oslo",
            "weekdayDialect": "unix",
            "concurrencyPolicy": "BufferOne",
            "jitterSeconds": 900,
            "runs": [],
        }
        entity = recurring("unused")
        entity.update(name="mornings", status="not started", schedule=schedule)
        entity["applicationInput"]["runner"] = {"type": "dmss://WorkflowDS/Blueprints/Shell", "script": "true"}
        address = f"dmss://DS/${dmss.put('DS', entity)}"
        with DevHost(app_dir=ROOT, settings=HOST_SETTINGS) as host:
            started = requests.post(
                f"{host.url}/api/jobs/{quote(address, safe='')}", headers={"Access-Key": token}, timeout=30
            )
            assert started.status_code == 202, started.text
            uid = started.json()["uid"]
            status = requests.get(f"{host.url}/api/jobs/{uid}", headers={"Access-Key": token}, timeout=30).json()
            shown = status["schedule"]
            assert shown["cron"] == schedule["cron"] and shown["jitterSeconds"] == 900
            assert shown["concurrencyPolicy"] == "BufferOne"
            preview = requests.get(
                f"{host.url}/api/jobs/{uid}/schedule", params={"next": 6}, headers={"Access-Key": token}, timeout=30
            ).json()
            assert {f["expression"] for f in preview["fireTimes"]} == set(schedule["cron"])
            assert all(
                0 <= (iso_time(f["utc"]) - iso_time(f["nominal"])).total_seconds() <= 900 for f in preview["fireTimes"]
            )
            assert iso_time(shown["nextFire"]) == iso_time(preview["fireTimes"][0]["utc"])
            written = dmss.lookup(address)  # the write-back (uid, status, started) leaves the schedule as it was
            assert written["uid"] == uid and written["status"] == "registered"
            assert {k: written["schedule"][k] for k in schedule if k != "runs"} == {
                k: v for k, v in schedule.items() if k != "runs"
            }
            requests.delete(f"{host.url}/api/jobs/{uid}", headers={"Access-Key": token}, timeout=30)
    finally:
        dmss.stop()
        dmss_client.reset_session()
