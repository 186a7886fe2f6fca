"""The DM web app's job plugin and an old job container, request for request, through the local host against the
stand-in DMSS.

What the clients do (dm-core's `useJob` hook and generated `DMJobsApi`; dm-core-plugins' `JobControl`,
`JobCreate`, `CronJob`, `common.tsx`), replayed by `Plugin` below:

- start: the entity is written back to DMSS first (with whatever it held: a re-run carries the old uid and
  status), then `POST <base>/{encodeURIComponent(address)}` with only `Authorization: Bearer <user token>`, no
  body, no Content-Type; the reply's uid, message and status are read;
- poll `GET <base>/{uid}` every 5 s (here every POLL seconds) with each user's own token; read status, log (a list
  of strings) and percentage only when truthy, shown as `Math.round(percentage * 100)%`; stop polling on failed,
  completed, registered or any HTTP error, whose body is shown whole;
- stop: `DELETE <base>/{uid}`, read status; re-run: DELETE the old uid, then POST the same address again;
- recurring: the entity JobCreate builds (RecurringJob, RecurringJobHandler, a CronJob with naive UTC dates
  `YYYY-MM-DDTHH:MM`, `runs: []`); the editor's "Weekly" is day-of-week 6 ("Will run every sunday").

The job container gets DMSS_TOKEN, DMSS_URL, DM_JOB_URL, JOB_DMSS_ID (and here JOB_UID, JOB_TOKEN) and reports
with `PUT <base>/{uid}?overwrite_log=false`, all three keys, progress as fractions.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import requests

from devhost import DevHost
from shared.dmss import access as dmss_access, client as dmss_client
from shared.dmss.writeback import DmssWriteBack
from shared.platform import settings
from tests.standins.dmss import DmssStandIn, make_jwt

from .conftest import ROOT

JOB = "dmss://WorkflowDS/Blueprints/Job"
RECURRING_JOB = "dmss://WorkflowDS/Blueprints/RecurringJob"
HANDLER = "dmss://WorkflowDS/Blueprints/RecurringJobHandler"
CRON_JOB = "dmss://WorkflowDS/Blueprints/CronJob"
POLL = 1.0  # the plugin polls every 5 s; the same requests, faster
STOP_POLLING = {"failed", "completed", "registered"}  # JobControl / useJob
ERROR_KEYS = {"status", "type", "message", "debug", "data"}

CONTAINER = r"""
set -e
for v in DMSS_TOKEN DMSS_URL DM_JOB_URL JOB_DMSS_ID JOB_UID JOB_TOKEN; do
  [ -n "$(printenv $v)" ] || { echo "missing $v"; exit 3; }
done
put() {
  curl -sf -X PUT "$DM_JOB_URL/$JOB_UID?overwrite_log=false" -H 'Content-Type: application/json' \
       -H "Access-Key: $DMSS_TOKEN" -d "$1" > /dev/null
}
put '{"percentage": 0.25, "logs": ["fetched the input"], "status": "running"}'
while [ ! -f "$MARKER" ]; do sleep 0.05; done
put '{"percentage": 0.5, "logs": "computing", "status": null}'
put '{"percentage": 1.0, "logs": "done", "status": null}'
"""


def encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) is percent-encoded."""
    return quote(text, safe="-_.!~*'()")


def shown_progress(percentage) -> str | None:
    """common.tsx `Progress`: nothing unless truthy, else `Math.round(percentage * 100)%`."""
    return f"{round(percentage * 100)}%" if percentage else None


class Plugin:
    """One user's browser tab with the job plugin open on one entity."""

    def __init__(self, base: str, dmss: DmssStandIn, user: str, address: str):
        self.base, self.dmss, self.address = f"{base}/api/jobs", dmss, address
        self.token = make_jwt(user)
        self.http = requests.Session()
        self.shown: list[tuple[str, str | None, tuple[str, ...]]] = []  # (status, progress, log) as rendered
        self.error: dict | None = None

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def save_entity(self, entity: dict) -> None:
        """The plugin writes the entity it holds back to DMSS before each start (stale uid and status too)."""
        response = self.http.put(
            f"{self.dmss.url}/api/documents/{quote(self.address, safe='')}",
            files={"data": (None, json.dumps(entity))},
            headers=self.auth,
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def start(self) -> requests.Response:
        response = self.http.post(f"{self.base}/{encode_uri_component(self.address)}", headers=self.auth, timeout=30)
        assert "Content-Type" not in response.request.headers and not response.request.body
        return response

    def poll_once(self, uid: str) -> str | None:
        """One poll; the status, or None when the plugin stops on an error (kept whole in `error`)."""
        response = self.http.get(f"{self.base}/{uid}", headers=self.auth, timeout=30)
        if response.status_code >= 400:
            self.error = response.json()
            return None
        body = response.json()
        log = body.get("log") or []
        assert all(isinstance(line, str) for line in log)
        self.shown.append((body["status"], shown_progress(body.get("percentage")), tuple(log)))
        return body["status"]

    def poll(self, uid: str, until=lambda status: status in STOP_POLLING, timeout: float = 40.0) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.poll_once(uid)
            if status is None or status in STOP_POLLING or until(status):
                return status
            assert time.monotonic() < deadline, f"job {uid} still {status} after {timeout} s"
            time.sleep(POLL)

    def stop(self, uid: str) -> requests.Response:
        return self.http.delete(f"{self.base}/{uid}", headers=self.auth, timeout=30)


# ---- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def dmss():
    server = DmssStandIn().start()
    server.add_data_source("DS")
    yield server
    server.stop()
    dmss_client.reset_session()


@pytest.fixture
def host(storage_env, dmss, monkeypatch):
    monkeypatch.setenv("DMSS_URL", dmss.url)
    monkeypatch.setenv("PUBLIC_DMSS_URL", "")
    monkeypatch.setenv("DMSS_APP_ACCESS_KEY", "")
    monkeypatch.setenv("DMSS_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "auto")
    monkeypatch.setenv("DMSS_ACCESS_CACHE_SECONDS", "60")
    monkeypatch.setenv("DM_JOB_URL", "http://127.0.0.1:9/api/jobs")
    monkeypatch.setenv("SCHEDULE_TICK", settings.get("SCHEDULE_TICK"))
    monkeypatch.setattr(DmssWriteBack, "delivery_backoff", 0.05)
    dmss_access.forget()
    with DevHost(app_dir=ROOT) as running:
        monkeypatch.setenv("DM_JOB_URL", f"{running.url}/api/jobs")
        yield running
    dmss_access.forget()


def access_checks(dmss: DmssStandIn, plugin: Plugin) -> list:
    """DMSS calls made to decide what `plugin`'s user may do (with their own JWT, not a job token)."""
    return [
        r
        for r in dmss.requests
        if r.bearer == plugin.token and r.access_key is None and r.endpoint in ("get", "whoami", "acl")
    ]


# ---- a job, two users, progress, stop and re-run ----------------------------------------------------------
def test_the_job_plugin_request_for_request(host, dmss, tmp_path):
    marker = tmp_path / "go"
    analysis = dmss.put(
        "DS",
        {
            "type": "dmss://DS/Blueprints/Analysis",
            "name": "analysis",
            "job": {
                "type": JOB,
                "label": "Fetch signals",
                "status": "not started",
                "runner": {"type": "JOBCORE:Shell", "script": CONTAINER, "environmentVariables": [f"MARKER={marker}"]},
            },
        },
    )
    dmss.set_acl("DS", analysis, owner="alice", users={"bob": "WRITE"}, others="NONE")
    address = f"DS/${analysis}.job"
    alice, bob, mallory = (Plugin(host.url, dmss, name, address) for name in ("alice", "bob", "mallory"))

    # alice opens the entity and starts it: the entity is saved first, then the POST (a bearer, no body)
    alice.save_entity(dmss.lookup(address))
    started = alice.start()
    assert started.status_code == 202, started.text
    first = started.json()
    assert {"uid", "message", "status"} <= set(first) and first["status"] == "starting"
    uid = first["uid"]
    assert dmss.lookup(address)["uid"] == uid  # what bob's tab will read from the entity

    # both poll with their own tokens; the container reports a quarter done
    assert alice.poll(uid, until=lambda s: s == "running" and alice.shown[-1][1]) == "running"
    assert alice.shown[-1] == ("running", "25%", ("fetched the input",))
    bob_uid = dmss.lookup(address)["uid"]
    for _ in range(4):
        assert bob.poll_once(bob_uid) == "running"
        time.sleep(POLL)
    assert bob.shown[-1] == ("running", "25%", ("fetched the input",)) and bob.error is None

    # someone DMSS does not let read the entity is refused with DMSS's answer, and their tab stops polling
    assert mallory.poll(uid) is None
    assert set(mallory.error) == ERROR_KEYS and mallory.error["status"] == 403
    assert mallory.error["message"] == "The requested operation requires 'READ' privileges"

    # bob re-runs it: DELETE the old uid, save the entity as his tab holds it (old uid, stale status), POST again
    stale = dmss.lookup(address)
    stopped = bob.stop(uid)
    assert stopped.status_code == 200 and stopped.json()["status"] == "removed"
    bob.save_entity(stale)
    restarted = bob.start()
    assert restarted.status_code == 202, restarted.text
    second = restarted.json()["uid"]
    assert second != uid and restarted.json()["status"] == "starting"
    assert alice.poll_once(uid) == "removed"

    # the second run goes to the end; both tabs follow it until it completes
    assert bob.poll(second, until=lambda s: s == "running" and bob.shown[-1][1]) == "running"
    marker.write_text("go")
    assert bob.poll(second) == "completed" and alice.poll(second) == "completed"
    assert bob.shown[-1] == ("completed", "100%", ("fetched the input", "computing", "done"))
    assert alice.shown[-1] == bob.shown[-1]
    progress_seen = [p for _, p, _ in bob.shown if p]
    assert progress_seen[0] == "25%" and progress_seen[-1] == "100%"
    assert all(p in ("25%", "50%", "100%") for p in progress_seen)

    # the entity ends as the second run left it (the stopped run's end does not overwrite it)
    deadline = time.monotonic() + 20
    while dmss.lookup(address).get("status") != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
    entity = dmss.lookup(address)
    assert entity["uid"] == second and entity["status"] == "completed" and entity["ended"]
    time.sleep(1.0)
    assert dmss.lookup(address)["uid"] == second and dmss.lookup(address)["status"] == "completed"

    # what it cost DMSS: bob's polls of both runs were one READ check (same entity, within the minute), his
    # stop one whoami + one ACL read; alice was checked once, for bob's run (her own run needs no check)
    bob_checks = access_checks(dmss, bob)
    assert [r.endpoint for r in bob_checks].count("get") == 1
    assert sorted(r.endpoint for r in bob_checks if r.endpoint != "get") == ["acl", "whoami"]
    alice_checks = access_checks(dmss, alice)
    assert [(r.endpoint, r.params) for r in alice_checks] == [("get", {"depth": "0"})]


# ---- a recurring job as JobCreate builds it ----------------------------------------------------------------
def job_create_entity(cron: str) -> dict:
    """JobCreate: a RecurringJob around the Job, the CronJob editor's cron and its naive UTC dates."""
    now = datetime.now(timezone.utc)
    naive = "%Y-%m-%dT%H:%M"
    template = {
        "type": JOB,
        "label": "weekly fetch",
        "status": "not started",
        "runner": {"type": "JOBCORE:Shell", "script": "echo fetched"},
    }
    return {
        "type": RECURRING_JOB,
        "label": "weekly fetch",
        "status": "not started",
        "applicationInput": template,
        "runner": {"type": HANDLER},
        "schedule": {
            "type": CRON_JOB,
            "cron": cron,
            "startDate": now.strftime(naive),
            "endDate": (now + timedelta(days=90)).strftime(naive),
            "runs": [],
        },
    }


def test_a_weekly_recurring_job_from_the_plugin_runs_on_sundays(host, dmss):
    doc = dmss.put(
        "DS",
        {"type": "dmss://DS/Blueprints/Analysis", "name": "a", "job": job_create_entity("30 7 * * 6")},
        owner="alice",
    )  # "Weekly" at 07:30: "Will run every sunday at 07:30 O'clock"
    address = f"DS/${doc}.job"
    alice = Plugin(host.url, dmss, "alice", address)
    alice.save_entity(dmss.lookup(address))
    started = alice.start()
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "registered"
    uid = started.json()["uid"]
    assert alice.poll(uid) == "registered"  # the plugin stops polling here

    preview = requests.get(
        f"{host.url}/api/jobs/{uid}/schedule", params={"next": 4}, headers=alice.auth, timeout=30
    ).json()
    assert preview["weekdayDialect"] == "dmjob" and preview["cron"] == "30 7 * * 6"
    assert [fire["weekday"] for fire in preview["fireTimes"]] == ["Sunday"] * 4
    assert all(fire["utc"].endswith("T07:30:00Z") for fire in preview["fireTimes"])
    assert all(datetime.fromisoformat(f["utc"].replace("Z", "+00:00")).weekday() == 6 for f in preview["fireTimes"])

    schedule = dmss.lookup(address)["schedule"]
    assert schedule["weekdayDialect"] == "dmjob"  # the entity says what it means now
    assert schedule["cron"] == "30 7 * * 6" and schedule["runs"] == [] and "T" in schedule["startDate"]

    bob = Plugin(host.url, dmss, "bob", address)  # others may READ (DMSS's default ACL): bob sees it too
    assert bob.poll(uid) == "registered" and bob.error is None


def test_the_editors_24_00_is_refused_naming_the_field(host, dmss):
    doc = dmss.put(
        "DS",
        {"type": "dmss://DS/Blueprints/Analysis", "name": "a", "job": job_create_entity("0 24 * * 6")},
        owner="alice",
    )
    address = f"DS/${doc}.job"
    alice = Plugin(host.url, dmss, "alice", address)
    before = dmss.lookup(address)
    refused = alice.start()
    assert refused.status_code == 422
    body = refused.json()  # what the plugin shows, whole
    assert set(body) == ERROR_KEYS and body["type"] == "ValidationException"
    assert "hour: 24 is out of range 0-23" in body["message"] and body["data"]["field"] == "hour"
    assert dmss.lookup(address) == before and dmss.writes == []
    assert requests.get(f"{host.url}/api/jobs", timeout=30).json()["jobs"] == []
