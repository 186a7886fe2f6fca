"""The dashboard in a real browser against the local host (system clock, real shell jobs): the job list with the
old plugin's chips, filters, a running job's log growing, Stop after a confirm, and only the caller's own jobs."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
import requests

from devhost import DevHost
from shared.jobs.models import Job
from shared.jobs.operations import new_record
from shared.jobs.status import JobStatus
from shared.jobs.store import store
from shared.platform import clock
from tests.standins.dmss import make_jwt

from .conftest import ROOT, screenshot

SETTINGS = {"SCHEDULE_TICK": "0 * * * * *", "POLL_INTERVAL_MAX_SECONDS": "2"}
FINAL = {"completed", "failed", "removed"}
SHELL = {"type": "dmss://WorkflowDS/Blueprints/Shell", "script": "true"}
# what App Service Authentication adds to a signed-in user's requests (shared/platform/identity.py)
ALICE = {"X-MS-CLIENT-PRINCIPAL-ID": "alice-oid", "X-MS-CLIENT-PRINCIPAL-NAME": "alice@example.com"}


@pytest.fixture(scope="module")
def host(module_storage):
    with DevHost(app_dir=ROOT, settings=SETTINGS) as running:
        module_storage.setenv("DM_JOB_URL", f"{running.url}/api/jobs")  # where the shell jobs report progress
        yield running


def start(host, script: str, label: str, headers=None) -> str:
    job = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": label,
        "runner": {"type": "JOBCORE:Shell", "script": script},
    }
    response = requests.post(f"{host.url}/api/jobs", json=job, headers=headers or {}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["uid"]


def stored(label: str, failed: bool = False) -> str:
    """A finished shell job written through the job store as a run would leave it (no process: quick)."""
    job = Job.model_validate({"type": "dmss://WorkflowDS/Blueprints/Job", "label": label, "runner": SHELL})
    record = new_record(job, str(uuid.uuid4()), None, None)
    record.created = record.started = clock.now()
    record.ended = record.started + timedelta(seconds=2)
    record.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
    record.message = "exit code 1" if failed else "exit code 0"
    store().create(record)
    time.sleep(0.002)  # distinct creation times: the list's order is theirs
    return record.uid


def wait(host, uid: str, statuses=FINAL, headers=None, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(f"{host.url}/api/jobs/{uid}", headers=headers or {}, timeout=30).json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"{uid} still {body['status']}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def finished(host):
    """A completed and a failed job of the anonymous local caller, and a stranger's (bob's, by his token)."""
    done = start(host, "echo hello from the dashboard test", "says hello")
    failed = start(host, "echo about to fail; exit 3", "fails on purpose")
    bob = start(host, "true", "bob's secret label", {"Authorization": f"Bearer {make_jwt('bob')}"})
    for uid in (done, failed):
        wait(host, uid)
    return {"completed": done, "failed": failed, "stranger": bob}


# every row of the page has its status body (the runner column is filled)
FILLED = "() => [...document.querySelectorAll('#jobs tbody tr[data-uid] td:nth-child(4)')].every(td => td.textContent)"


def row(page, uid):
    return page.locator(f'#jobs tr[data-uid="{uid}"]')


def test_the_list_shows_a_completed_and_a_failed_job_with_the_plugins_chips(host, finished, page):
    page.goto(f"{host.url}/api/ui")
    done, failed = row(page, finished["completed"]), row(page, finished["failed"])
    done.locator("td", has_text="Shell").wait_for()  # the row has its status body: runner, started, by
    failed.locator("td", has_text="Shell").wait_for()
    done_chip, failed_chip = done.locator(".chip"), failed.locator(".chip")
    assert done_chip.inner_text() == "completed" and failed_chip.inner_text() == "failed"
    style = "e => { const s = getComputedStyle(e); return [s.color, s.backgroundColor, s.borderTopColor]; }"
    # EDS Chip "active" (primary__selected_highlight behind primary__resting) and "error" (danger__resting)
    assert done_chip.evaluate(style)[:2] == ["rgb(0, 112, 121)", "rgb(230, 250, 236)"]
    assert failed_chip.evaluate(style) == ["rgb(235, 0, 0)", "rgb(255, 255, 255)", "rgb(235, 0, 0)"]
    cells = done.locator("td").all_inner_texts()
    assert cells[1] == "says hello" and cells[2] == "job" and cells[6] == "anonymous"
    assert re.fullmatch(r"\d+ s", cells[5]), f"a duration: {cells[5]!r}"
    screenshot(page, "dashboard-jobs-two")

    page.select_option("select[name=status]", "failed")
    done.wait_for(state="detached")
    assert failed.is_visible()
    page.select_option("select[name=status]", "")
    page.fill("input[name=search]", "HELLO")
    failed.wait_for(state="detached")
    assert done.is_visible() and page.locator("#jobs tbody tr").count() == 1


def test_a_strangers_job_is_not_listed(host, finished, page):
    page.goto(f"{host.url}/api/ui#/jobs")
    row(page, finished["completed"]).wait_for()
    assert row(page, finished["stranger"]).count() == 0
    assert "bob's secret label" not in page.content()
    # signed in as alice (the headers App Service Authentication adds): her job only, not the anonymous ones
    mine = start(host, "true", "alice's job", ALICE)
    page.set_extra_http_headers(ALICE)
    page.goto(f"{host.url}/api/ui#/jobs")
    row(page, mine).wait_for()
    assert page.locator("#jobs tbody tr").count() == 1
    assert row(page, finished["completed"]).count() == 0 and "bob's secret label" not in page.content()


def test_paging_follows_the_continuation_token(host, finished, page):
    """Newest first, 25 a page: 26 more jobs (written through the job store) put the completed one on page 2."""
    uids = [stored(f"batch {i:02d}", failed=i % 6 == 5) for i in range(26)]
    page.goto(f"{host.url}/api/ui#/jobs")
    row(page, uids[-1]).wait_for()
    assert page.locator("#jobs tbody tr").count() == 25 and row(page, finished["completed"]).count() == 0
    page.click("button[name=next]")
    row(page, finished["completed"]).wait_for()
    assert row(page, uids[0]).count() == 1, "the oldest filler is first on page 2"
    page.click("button[name=prev]")
    row(page, uids[-1]).wait_for()


def test_a_running_job_shows_its_log_growing_and_stop_stops_it_after_a_confirm(host, page):
    script = (
        "for i in $(seq 1 400); do "
        'curl -s -o /dev/null -X PUT "$DM_JOB_URL/$JOB_UID?overwrite_log=false" '
        "-H 'Content-Type: application/json' -H \"Authorization: Bearer $JOB_TOKEN\" "
        '-d "{\\"percentage\\": $(awk "BEGIN {print $i / 400}"), '
        '\\"logs\\": \\"step $i of 400\\", \\"status\\": \\"running\\"}"; '
        "sleep 0.25; done"
    )
    uid = start(host, script, "a long job")
    wait(host, uid, {"running"})
    page.goto(f"{host.url}/api/ui#/job/{uid}")
    log = page.locator("#log")
    page.wait_for_function("() => Number(document.querySelector('#log')?.dataset.lines) >= 2")
    first = int(log.get_attribute("data-lines"))
    page.wait_for_function(f"() => Number(document.querySelector('#log').dataset.lines) >= {first + 3}")
    assert "step 1 of 400" in log.inner_text()
    assert page.locator(".jobhead .chip").inner_text() == "running"
    assert float(page.locator("progress").get_attribute("value")) > 0
    screenshot(page, "dashboard-job")

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first: No leaves it running
    page.click("button[name=stop]")
    time.sleep(1)
    assert wait(host, uid, {"running"})["status"] == "running"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[name=stop]")
    page.locator(".jobhead .chip", has_text="removed").wait_for()
    assert page.locator("button[name=stop]").count() == 0
    assert wait(host, uid)["status"] == "removed"
    page.goto(f"{host.url}/api/ui#/jobs")
    removed = row(page, uid).locator(".chip")
    removed.wait_for()
    assert removed.inner_text() == "removed" and "chip-default" in removed.get_attribute("class")
    page.wait_for_function(FILLED)
    screenshot(page, "dashboard-jobs")


def test_a_finished_job_shows_its_result_and_times(host, finished, page):
    page.goto(f"{host.url}/api/ui#/job/{finished['completed']}")
    page.locator("#result pre").wait_for()
    assert "hello from the dashboard test" in page.locator("#result").inner_text()
    assert page.locator('[data-fact="Ended"] time').count() == 1
    assert page.locator('[data-fact="Runner"]').inner_text() == "Shell"
    assert page.locator('[data-fact="Time limit"]').inner_text() == "2 d 0 h", "JOB_MAX_RUN_SECONDS: 172800 s"
    screenshot(page, "dashboard-job-completed")


def test_a_job_with_retries_shows_its_attempts(host, page):
    job = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "retried",
        "runner": {"type": "JOBCORE:Shell", "script": "echo try; exit 7"},
        "retry": {"maxAttempts": 2, "backoffSeconds": 0},
    }
    response = requests.post(f"{host.url}/api/jobs", json=job, timeout=30)
    assert response.status_code == 202, response.text
    uid = response.json()["uid"]
    assert wait(host, uid)["status"] == "failed"
    page.goto(f"{host.url}/api/ui#/job/{uid}")
    attempts = page.locator('[data-fact="Attempts"] tbody tr')
    attempts.nth(1).wait_for()
    assert attempts.count() == 2
    for n in (0, 1):
        cells = attempts.nth(n).locator("td").all_inner_texts()
        assert cells[0] == str(n + 1) and cells[1] == "failed" and cells[4] == "7", cells
    screenshot(page, "dashboard-job-attempts")


def test_the_whole_log_replaces_the_tail_on_request(host, page):
    uid = start(host, 'for i in $(seq 1 500); do echo "line $i"; done', "a long log")
    body = wait(host, uid)
    assert body["status"] == "completed" and len(body["log"]) < 500  # the status keeps the tail (LOG_TAIL_LINES)
    page.goto(f"{host.url}/api/ui#/job/{uid}")
    page.locator("#result pre").wait_for()
    assert page.locator("#log").get_attribute("data-lines") == str(len(body["log"]))
    page.locator('button[name="whole-log"]').click()
    page.wait_for_function("() => document.querySelector('#log').dataset.lines === '500'")
    text = page.locator("#log").inner_text()
    assert text.startswith("line 1\n") and text.rstrip().endswith("line 500")
    assert "500 lines" in page.locator("#log-note").inner_text() and "stored" in page.locator("#log-note").inner_text()
    page.wait_for_timeout(2500)  # a status refresh (every 2 s) leaves the whole log in place
    assert page.locator("#log").get_attribute("data-lines") == "500"
