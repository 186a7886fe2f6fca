"""The dashboard's schedules in a real browser, against a local host that checks function keys as Azure does and
runs on a replaced clock: the key typed once (kept for the tab's session), next fire times, the runs' timeline
(completed, failed, missed, skipped), suspend then resume, and Run now / Backfill only where the app has them."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

import pytest
import requests

from devhost import DevHost
from shared.platform.clock import ManualClock

from .conftest import ROOT, screenshot

KEY = "dashboard-" + secrets.token_urlsafe(16)
# the schedule timer ticks every 5 minutes here (an app setting): a simulated hour in seconds
SETTINGS = {
    "SCHEDULE_TICK": "0 */5 * * * *",
    "DEVHOST_REQUIRE_KEYS": "true",
    "DEVHOST_FUNCTION_KEY": KEY,
    "POLL_INTERVAL_MIN_SECONDS": "60",
    "POLL_INTERVAL_MAX_SECONDS": "300",
}  # few polls of the simulated runs
START = datetime(2026, 3, 2, 7, 0, 30, tzinfo=timezone.utc)


def recurring(label: str, cron: str, duration: float, exit_code: int = 0, **schedule) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "label": label,
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": {
            "type": "dmss://WorkflowDS/Blueprints/Job",
            "label": f"{label} run",
            "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration, "exitCode": exit_code},
        },
        "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": cron, "runs": [], **schedule},
    }


@pytest.fixture(scope="module")
def host(module_storage):
    with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=SETTINGS) as running:
        yield running


def api(host, method: str, path: str, **kwargs):
    response = requests.request(
        method, f"{host.url}/api/{path}", headers={"x-functions-key": KEY}, timeout=30, **kwargs
    )
    assert response.ok, response.text
    return response.json()


@pytest.fixture(scope="module")
def schedules(host):
    """Two recurring jobs after an hour, 25 minutes of it in the middle when nothing ticked (a host outage)."""
    nightly = api(
        host,
        "POST",
        "jobs",
        json=recurring(
            "ten-minutely report", "*/10 * * * *", 120, timezone="Europe/Oslo", startingDeadlineSeconds=3600
        ),
    )["uid"]
    flaky = api(
        host,
        "POST",
        "jobs",
        json=recurring("flaky import", "*/15 * * * *", 1000, exit_code=1, concurrencyPolicy="Forbid"),
    )["uid"]
    host.advance(1500)
    host.clock.advance(1500)  # nobody ticks for 25 minutes
    host.advance(600)
    return {"ok": nightly, "flaky": flaky}


def card(page, uid):
    return page.locator(f'section.schedule[data-uid="{uid}"]')


def sign_in_with_the_key(page, host):
    page.goto(f"{host.url}/api/ui#/schedules")
    page.locator("#key-form input[name=key]").fill(KEY)
    page.click("#key-form button[type=submit]")


def test_the_key_is_asked_for_once_and_kept_for_the_session(host, schedules, page):
    assert requests.get(f"{host.url}/api/jobs", timeout=30).status_code == 401, "the data routes need the key"
    assert requests.get(f"{host.url}/api/ui", timeout=30).status_code == 200, "the page itself is anonymous"
    page.goto(f"{host.url}/api/ui#/jobs")
    page.locator("#key-form").wait_for()
    assert page.locator("#jobs tbody tr").count() == 0
    page.locator("#key-form input[name=key]").fill(KEY)
    page.click("#key-form button[type=submit]")
    page.locator("#jobs tr[data-uid]").first.wait_for()
    assert page.evaluate("sessionStorage.getItem('dmjob.functionKey')") == KEY
    page.reload()
    page.locator("#jobs tr[data-uid]").first.wait_for()
    assert page.locator("#key-form").count() == 0, "kept for the tab's session: not asked again"
    assert KEY not in page.content(), "never shown"


def test_a_schedule_shows_its_next_fire_times_and_its_runs_timeline(host, schedules, page):
    sign_in_with_the_key(page, host)
    ok, flaky = card(page, schedules["ok"]), card(page, schedules["flaky"])
    ok.wait_for()
    flaky.wait_for()
    preview = api(host, "GET", f"jobs/{schedules['ok']}/schedule", params={"next": 5})
    rows = ok.locator("table.fires tbody tr")
    assert rows.count() == 5
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[0] == preview["fireTimes"][0]["utc"]
    assert first[1].startswith(preview["fireTimes"][0]["local"]) and re.search(r"\+0[12]:00", first[1])
    assert "Europe/Oslo" in ok.inner_text() and "*/10 * * * *" in ok.inner_text()
    assert "Forbid" in flaky.inner_text()

    def kinds(section) -> set[str]:
        return set(section.locator("svg.timeline g.run").evaluate_all("gs => gs.map(g => g.dataset.kind)"))

    assert {"completed", "missed", "next"} <= kinds(ok), kinds(ok)
    assert {"failed", "skipped"} <= kinds(flaky), kinds(flaky)
    colour = "e => getComputedStyle(e).fill"
    assert ok.locator("g.run-completed circle").first.evaluate(colour) == "rgb(75, 183, 72)"
    assert flaky.locator("g.run-failed circle").first.evaluate(colour) == "rgb(235, 0, 0)"
    screenshot(page, "dashboard-schedules")


def test_suspend_then_resume(host, schedules, page):
    sign_in_with_the_key(page, host)
    ok = card(page, schedules["ok"])
    ok.locator("button[name=suspend]").click()
    page.locator(f'section.schedule[data-uid="{schedules["ok"]}"][data-state="suspended"]').wait_for()
    assert api(host, "GET", f"jobs/{schedules['ok']}")["schedule"]["state"] == "suspended"
    card(page, schedules["ok"]).locator("button[name=resume]").click()
    page.locator(f'section.schedule[data-uid="{schedules["ok"]}"][data-state="active"]').wait_for()
    assert api(host, "GET", f"jobs/{schedules['ok']}")["schedule"]["state"] == "active"


def test_run_now_and_backfill_appear_only_when_the_app_has_them(host, schedules, page):
    paths = requests.get(f"{host.url}/api/openapi.json", timeout=30).json()["paths"]
    sign_in_with_the_key(page, host)
    ok = card(page, schedules["ok"])
    ok.locator("button[name=suspend]").wait_for()
    for route, button in (("run", "run-now"), ("backfill", "backfill")):
        documented = any(
            re.fullmatch(rf"/jobs/\{{[^}}]+\}}/{route}", p) and "post" in item for p, item in paths.items()
        )
        assert ok.locator(f"button[name={button}]").count() == (1 if documented else 0), route


def documented(host, route: str) -> bool:
    paths = requests.get(f"{host.url}/api/openapi.json", timeout=30).json()["paths"]
    return any(re.fullmatch(rf"/jobs/\{{[^}}]+\}}/{route}", p) and "post" in item for p, item in paths.items())


def test_run_now_starts_a_run_after_a_confirm_and_backfill_queues_the_range(host, schedules, page):
    assert documented(host, "run") and documented(host, "backfill"), "the page feature-detects these routes"
    uid = schedules["ok"]
    before = {r["uid"] for r in api(host, "GET", f"jobs/{uid}")["schedule"]["runs"] if r.get("uid")}
    sign_in_with_the_key(page, host)
    page.once("dialog", lambda dialog: dialog.accept())
    card(page, uid).locator("button[name=run-now]").click()
    card(page, uid).locator(".note", has_text="manual").wait_for()
    after = {r["uid"] for r in api(host, "GET", f"jobs/{uid}")["schedule"]["runs"] if r.get("uid")}
    assert len(after - before) == 1, "one run more"

    answers = iter(["2026-03-02T06:00", "2026-03-02T06:20"])  # three fire times, in the schedule's zone
    page.on("dialog", lambda dialog: dialog.accept(next(answers)))
    card(page, uid).locator("button[name=backfill]").click()
    card(page, uid).locator(".note", has_text="backfill").wait_for()
    assert api(host, "GET", f"jobs/{uid}")["schedule"]["backfill"], "the range is queued"
    screenshot(page, "dashboard-schedules-actions")
