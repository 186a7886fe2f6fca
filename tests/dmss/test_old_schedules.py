"""Old schedules keep their old meaning. The DM web app's schedule editor (dm-core-plugins CronJob.tsx) writes
day-of-week 6 for "Weekly" and says "Will run every sunday"; the old service's APScheduler counted 0 = Monday, so
6 was Sunday. A RecurringJob read from DMSS without `weekdayDialect` runs in that dialect (`dmjob`), and the
entity is told so. The editor also offers "24:00" (hour 24): refused with 422 naming the field, nothing written.
Real Azurite, stand-in DMSS."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared import service
from shared.dmss.start import old_schedule_meaning, start_from_address
from shared.jobs.store import store
from shared.platform import clock
from shared.platform.errors import ApiError

RECURRING = "dmss://WorkflowDS/Blueprints/RecurringJob"
CRON_JOB = "dmss://WorkflowDS/Blueprints/CronJob"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # a Monday


class Orchestrations:
    def start(self, uid, input):  # pragma: no cover - a recurring job is never orchestrated
        raise AssertionError("no orchestration for a recurring job")

    def raise_stop(self, uid):  # pragma: no cover
        pass


@pytest.fixture
def fixed_clock():
    previous = clock.get_clock()
    clock.set_clock(clock.ManualClock(NOW))
    yield
    clock.set_clock(previous)


def weekly(cron: str = "30 7 * * 6", **schedule) -> dict:
    """A RecurringJob as the plugin's JobCreate builds it: "Weekly", naive UTC dates, no dialect."""
    template = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "fetch",
        "status": "not started",
        "runner": {"type": "JOBCORE:Shell", "script": "true"},
    }
    return {
        "type": RECURRING,
        "label": "weekly fetch",
        "status": "not started",
        "applicationInput": template,
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "schedule": {
            "type": CRON_JOB,
            "cron": cron,
            "startDate": "2026-06-01T00:00",
            "endDate": "2027-06-01T00:00",
            "runs": [],
            **schedule,
        },
    }


def test_old_schedule_meaning_adds_the_old_services_dialect_only_when_none_is_named():
    entity, changes = old_schedule_meaning(weekly())
    assert changes == {"weekdayDialect": "dmjob"} and entity["schedule"]["weekdayDialect"] == "dmjob"
    assert entity["schedule"]["cron"] == "30 7 * * 6" and entity["schedule"]["runs"] == []
    original = weekly()
    old_schedule_meaning(original)
    assert "weekdayDialect" not in original["schedule"]  # the entity given is not changed
    for named in ("unix", "dmjob"):
        entity, changes = old_schedule_meaning(weekly(weekdayDialect=named))
        assert changes == {} and entity["schedule"]["weekdayDialect"] == named
    job = {"type": "dmss://WorkflowDS/Blueprints/Job", "runner": {"type": "JOBCORE:Shell"}}
    assert old_schedule_meaning(job) == (job, {})


def test_a_weekly_schedule_from_dmss_runs_on_sundays_and_the_entity_says_so(storage_env, dmss, token, fixed_clock):
    doc = dmss.put("DS", weekly())
    started = start_from_address(f"DS/${doc}", {"Access-Key": token}, caller=None, orchestrations=Orchestrations())
    assert started.status.value == "registered"

    preview = service.preview_schedule(started.uid, "3", None)
    assert preview["weekdayDialect"] == "dmjob"
    assert [f["weekday"] for f in preview["fireTimes"]] == ["Sunday"] * 3
    assert [f["utc"] for f in preview["fireTimes"]] == [
        "2026-06-07T07:30:00Z",
        "2026-06-14T07:30:00Z",
        "2026-06-21T07:30:00Z",
    ]
    assert service.get_job(started.uid)["schedule"]["weekdayDialect"] == "dmjob"

    entity = dmss.lookup(f"dmss://DS/${doc}")
    assert entity["schedule"]["weekdayDialect"] == "dmjob"
    assert entity["schedule"]["cron"] == "30 7 * * 6" and entity["schedule"]["runs"] == []  # the rest kept
    assert entity["schedule"]["startDate"] == "2026-06-01T00:00" and entity["uid"] == started.uid
    schedule_writes = [w for w in dmss.writes if w.address.endswith(".schedule")]
    assert len(schedule_writes) == 1 and schedule_writes[0].partial_update
    assert schedule_writes[0].data == {"type": CRON_JOB, "weekdayDialect": "dmjob"}


def test_a_schedule_that_names_its_dialect_keeps_it(storage_env, dmss, token, fixed_clock):
    doc = dmss.put("DS", weekly(weekdayDialect="unix"))
    started = start_from_address(f"DS/${doc}", {"Access-Key": token}, caller=None, orchestrations=Orchestrations())
    preview = service.preview_schedule(started.uid, "2", None)
    assert preview["weekdayDialect"] == "unix" and [f["weekday"] for f in preview["fireTimes"]] == ["Saturday"] * 2
    assert not [w for w in dmss.writes if w.address.endswith(".schedule")]


def test_an_inline_start_keeps_the_apps_default(storage_env, fixed_clock, monkeypatch):
    monkeypatch.delenv("SCHEDULE_WEEKDAY_DIALECT", raising=False)
    started = service.start_job(weekly(), caller=None, orchestrations=Orchestrations())
    preview = service.preview_schedule(started.uid, "1", None)
    assert preview["weekdayDialect"] == "unix" and preview["fireTimes"][0]["weekday"] == "Saturday"


@pytest.mark.parametrize(
    "cron, field",
    [
        ("0 24 * * 6", "hour"),
        ("60 7 * * *", "minute"),
        ("0 7 32 * *", "day-of-month"),
        ("0 7 * 13 *", "month"),
        ("0 7 * * 7", "day-of-week"),
    ],
)  # 7 is not a dmjob weekday
def test_an_out_of_range_field_is_a_422_naming_it_and_nothing_is_written(
    storage_env, dmss, token, fixed_clock, cron, field
):
    doc = dmss.put("DS", weekly(cron))
    before = dmss.lookup(f"dmss://DS/${doc}")
    with pytest.raises(ApiError) as raised:
        start_from_address(f"DS/${doc}", {"Access-Key": token}, caller=None, orchestrations=Orchestrations())
    assert raised.value.status == 422 and raised.value.type == "ValidationException"
    assert f"{field}: " in raised.value.message and "out of range" in raised.value.message
    assert raised.value.data["field"] == field and raised.value.data["attribute"] == "schedule.cron"
    assert dmss.writes == [] and dmss.lookup(f"dmss://DS/${doc}") == before
    assert store().list(None, 10, None)[0] == []


def test_an_inline_hour_24_is_a_422_too(storage_env, fixed_clock):
    with pytest.raises(ApiError) as raised:
        service.start_job(weekly("0 24 * * 6"), caller=None, orchestrations=Orchestrations())
    assert raised.value.status == 422 and "hour: 24 is out of range 0-23" in raised.value.message
    assert store().list(None, 10, None)[0] == []
