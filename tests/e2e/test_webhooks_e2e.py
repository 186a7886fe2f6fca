"""Webhooks end to end through the local host: real shell jobs, the real Durable SDK, Azurite, and a receiver
stand-in on 127.0.0.1 that verifies every request with the `standardwebhooks` package (tests/webhooks/receiver.py).

Time is a ManualClock: retries wait on durable timers that `host.advance` fires, so backoff is exercised without
real waiting (only the 1 s attempt timeout is real).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest

from devhost import DevHost
from shared.platform.clock import ManualClock
from tests.e2e.conftest import HOST_SETTINGS, ROOT, Api, shell_job
from tests.webhooks.receiver import Receiver

CANARY = "canary-7f3b9e1d-webhook-secret"
SETTINGS = {
    **HOST_SETTINGS,
    "WEBHOOK_ALLOW_LOCAL": "true",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    "WEBHOOK_RETRY_FIRST_SECONDS": "5",
    "WEBHOOK_RETRY_MAX_SECONDS": "60",
    "WEBHOOK_RETRY_HOURS": "24",
    "WEBHOOK_SECRET_GRACE_SECONDS": "3600",
}
JOB_EVENTS = ["job.started", "job.running", "job.completed", "job.failed", "job.removed"]


def bearer(oid: str) -> dict[str, str]:
    """An unverified JWT naming the caller (CALLER_IDENTITY_SOURCE auto: local development)."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return {"Authorization": f"Bearer {part({'alg': 'none'})}.{part({'oid': oid, 'name': oid})}.x"}


@pytest.fixture
def env(storage_env, monkeypatch):
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    return storage_env


def subscribe(api: Api, url: str, events=JOB_EVENTS, who: str = "alice", **extra) -> dict:
    response = api.http.post(
        f"{api.base}/api/subscriptions", json={"url": url, "events": events, **extra}, headers=bearer(who), timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()


def run_job(host: DevHost, api: Api, script: str, who: str = "alice", **extra) -> str:
    response = api.start(shell_job(script, **extra), **bearer(who))
    assert response.status_code == 202, response.text
    uid = response.json()["uid"]
    deadline = time.monotonic() + 60
    while api.get(uid, **bearer(who))["status"] not in ("completed", "failed", "removed"):
        assert time.monotonic() < deadline, "job did not finish"
        host.advance(1)
    return uid


def advance_until(host: DevHost, done, step: float = 5, limit: float = 600) -> None:
    moved = 0.0
    while not done():
        assert moved < limit, "not done after advancing the clock"
        host.advance(step)
        moved += step


def events_log(api: Api, uid: str, who: str = "alice") -> dict:
    response = api.http.get(f"{api.base}/api/jobs/{uid}/events", headers=bearer(who), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_event_arrives_once_in_order_through_failures_and_a_restart(env):
    clock = ManualClock()
    receiver = Receiver()
    receiver.script = [500, "timeout"]  # then the receiver goes away, then it answers 200
    try:
        with DevHost(app_dir=ROOT, clock=clock, worker_id="hooks-a", settings=SETTINGS) as host:
            api = Api(host.url)
            sub = subscribe(api, receiver.url())
            receiver.secrets = [sub["secret"]]
            uid = run_job(
                host,
                api,
                'echo "value: $CANARY"; sleep 1.5; echo done',  # running long enough to be seen running
                env=[f"CANARY={CANARY}"],
            )
            host.advance(0)
            advance_until(host, lambda: len(receiver.received) >= 2, step=2)  # the 500 and the timeout
            receiver.go_away()
            host.advance(30)  # one or more attempts find the port closed
            refused = [a for e in events_log(api, uid)["events"] for d in e["deliveries"] for a in d["attempts"]]
            assert any(a["error"] == "connection failed" for a in refused), refused
        # the host goes down while the deliveries wait for their next attempt; a new one takes over
        receiver.come_back()
        with DevHost(app_dir=ROOT, clock=clock, worker_id="hooks-a", settings=SETTINGS) as host:
            api = Api(host.url)
            advance_until(host, lambda: len(receiver.delivered()) >= 3, step=10)
            host.advance(120)  # anything still to come would come now
            log = events_log(api, uid)
    finally:
        receiver.stop()

    arrived = receiver.delivered()
    assert [r.payload["type"] for r in arrived] == ["job.started", "job.running", "job.completed"]
    assert all(r.verified_with == [sub["secret"]] for r in receiver.received), "every request verifies"
    by_id: dict[str, set[str]] = {}
    for r in receiver.received:
        by_id.setdefault(r.id, set()).add(r.body)
    assert all(len(bodies) == 1 for bodies in by_id.values()), "a retry sends the same body under the same id"
    assert len({r.id for r in arrived}) == 3
    final = arrived[-1].payload["data"]
    assert final["uid"] == uid and final["status"] == "completed"
    assert "environmentVariables" not in json.dumps(final) and "job_token" not in json.dumps(final)
    for r in receiver.received:
        assert CANARY not in r.body and CANARY not in json.dumps(r.headers)
    assert CANARY not in json.dumps(log)
    events = log["events"]
    assert [e["type"] for e in events] == ["job.started", "job.running", "job.completed"]
    first = events[0]["deliveries"][0]
    assert first["state"] == "delivered" and first["subscription"] == sub["id"]
    codes = [a["statusCode"] for a in first["attempts"]]
    assert codes[0] == 500 and codes[-1] == 200 and None in codes  # the timeout and the refused connections
    assert all(len(a["response"] or "") <= 1024 for a in first["attempts"])
    assert all(e["deliveries"][0]["state"] == "delivered" for e in events)


def test_rotation_gone_ssrf_ownership_and_redelivery(env):
    clock = ManualClock()
    receiver = Receiver()
    gone = Receiver()
    try:
        with DevHost(app_dir=ROOT, clock=clock, settings=SETTINGS) as host:
            api = Api(host.url)
            http = api.http
            # SSRF: link-local (instance metadata) and private addresses are refused, as is a URL with a password
            for url in ("http://169.254.169.254/latest/meta-data", "http://10.1.2.3/hook", "http://u:p@127.0.0.1/"):
                refused = http.post(
                    f"{api.base}/api/subscriptions", json={"url": url, "events": ["job.completed"]}, timeout=30
                )
                assert refused.status_code == 422, (url, refused.text)
                assert "p@" not in refused.text
            bad = http.post(f"{api.base}/api/subscriptions", json={"url": receiver.url(), "events": ["x"]}, timeout=30)
            assert bad.status_code == 422

            sub = subscribe(api, receiver.url("/rotated"), events=["job.completed"])
            receiver.secrets = [sub["secret"]]
            # the secret is shown once: never by GET or the list, and other callers do not see the subscription
            shown = http.get(f"{api.base}/api/subscriptions/{sub['id']}", headers=bearer("alice"), timeout=30)
            assert shown.status_code == 200 and "secret" not in shown.json() and sub["secret"] not in shown.text
            listed = http.get(f"{api.base}/api/subscriptions", headers=bearer("alice"), timeout=30).json()
            assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]] and sub["secret"] not in json.dumps(listed)
            assert (
                http.get(f"{api.base}/api/subscriptions/{sub['id']}", headers=bearer("bob"), timeout=30).status_code
                == 404
            )
            assert (
                http.delete(f"{api.base}/api/subscriptions/{sub['id']}", headers=bearer("bob"), timeout=30).status_code
                == 404
            )
            assert http.get(f"{api.base}/api/subscriptions", headers=bearer("bob"), timeout=30).json() == {
                "subscriptions": []
            }

            rotated = http.post(f"{api.base}/api/subscriptions/{sub['id']}/rotate", headers=bearer("alice"), timeout=30)
            assert rotated.status_code == 200, rotated.text
            new_secret = rotated.json()["secret"]
            assert new_secret != sub["secret"] and rotated.json()["previousSecretsExpire"]
            receiver.secrets = [sub["secret"], new_secret]
            gone.default = 410
            gone_sub = subscribe(api, gone.url(), events=["job.completed", "job.failed"])
            bobs = subscribe(api, receiver.url("/bob"), events=["job.completed"], who="bob")

            uid = run_job(host, api, "echo one")
            host.advance(0)
            got = receiver.wait_for(1, path="/rotated")
            assert set(got[0].verified_with) == {sub["secret"], new_secret}, "both secrets sign during the grace period"
            assert len(gone.received) == 1 and gone.received[0].answered == 410
            assert not receiver.delivered("/bob"), "bob's subscription hears nothing of alice's job"
            state = http.get(
                f"{api.base}/api/subscriptions/{gone_sub['id']}", headers=bearer("alice"), timeout=30
            ).json()
            assert state["disabled"] is True and "410" in state["disabledReason"]

            host.advance(3601)  # the grace period is over: the old secret no longer signs
            second = run_job(host, api, "exit 3")
            failed_sub_events = subscribe(api, receiver.url("/failed"), events=["job.failed"])
            assert failed_sub_events  # made after the job ended: hears nothing of it
            host.advance(0)
            assert len(gone.received) == 1, "a disabled subscription is not called again"
            log = events_log(api, uid)
            delivery = next(d for e in log["events"] for d in e["deliveries"] if d["subscription"] == sub["id"])
            assert delivery["state"] == "delivered"
            gone_delivery = next(
                d for e in log["events"] for d in e["deliveries"] if d["subscription"] == gone_sub["id"]
            )
            assert gone_delivery["state"] == "gone"
            assert events_log(api, second)["events"] == [] or all(
                d["subscription"] != gone_sub["id"] for e in events_log(api, second)["events"] for d in e["deliveries"]
            )

            # redelivery: the same event again, under the same webhook-id, now signed with the new secret only
            receiver.secrets = [new_secret]
            redo = http.post(
                f"{api.base}/api/deliveries/{delivery['id']}/redeliver", headers=bearer("alice"), timeout=30
            )
            assert redo.status_code == 202, redo.text
            assert (
                http.post(
                    f"{api.base}/api/deliveries/{delivery['id']}/redeliver", headers=bearer("bob"), timeout=30
                ).status_code
                == 404
            )
            assert http.post(f"{api.base}/api/deliveries/dlv_nonsense/redeliver", timeout=30).status_code == 404
            host.advance(0)
            deadline = time.monotonic() + 30
            while len([r for r in receiver.received if r.path == "/rotated"]) < 2:
                assert time.monotonic() < deadline, "redelivery did not arrive"
                time.sleep(0.05)
            again = [r for r in receiver.received if r.path == "/rotated"]
            assert again[1].id == again[0].id and again[1].body == again[0].body
            assert again[1].verified_with == [new_secret]

            deleted = http.delete(f"{api.base}/api/subscriptions/{sub['id']}", headers=bearer("alice"), timeout=30)
            assert deleted.status_code == 200
            assert (
                http.get(f"{api.base}/api/subscriptions/{sub['id']}", headers=bearer("alice"), timeout=30).status_code
                == 404
            )
            assert bobs["id"] != sub["id"]
    finally:
        receiver.stop()
        gone.stop()
    for r in receiver.received + gone.received:
        assert sub["secret"] not in r.body and new_secret not in r.body


def recurring(label: str, cron: str = "* * * * *", seconds: float = 0, exit_code: int = 0, **schedule) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
        "label": label,
        "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
        "applicationInput": {
            "type": "dmss://WorkflowDS/Blueprints/Job",
            "label": f"{label} run",
            "runner": {"type": "JOBCORE:Simulated", "durationSeconds": seconds, "exitCode": exit_code},
        },
        "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": cron, "runs": [], **schedule},
    }


def test_schedule_events_started_skipped_missed_suspended(env):
    clock = ManualClock(datetime(2026, 3, 2, 12, 0, 30, tzinfo=timezone.utc))
    receiver = Receiver()
    try:
        with DevHost(app_dir=ROOT, clock=clock, settings=SETTINGS) as host:
            api = Api(host.url)
            kinds = ["schedule.run.started", "schedule.run.skipped", "schedule.run.missed", "schedule.suspended"]
            sub = subscribe(api, receiver.url("/schedules"), events=kinds)
            receiver.secrets = [sub["secret"]]
            busy = api.start(recurring("busy", seconds=150, concurrencyPolicy="Forbid"), **bearer("alice")).json()[
                "uid"
            ]
            failing = api.start(recurring("failing", exit_code=1, suspendAfterFailures=1), **bearer("alice")).json()[
                "uid"
            ]
            host.advance(95)  # 12:01 and 12:02 fire: busy starts a run, then skips; failing's run fails: suspended
            clock.advance(600)  # ten minutes pass without a tick (the host was asleep)
            host.advance(60)
            deadline = time.monotonic() + 30
            wanted = {(busy, "schedule.run.started"), (busy, "schedule.run.skipped"), (busy, "schedule.run.missed")}
            wanted |= {(failing, "schedule.suspended")}

            def seen() -> set:
                out = set()
                for r in receiver.delivered():
                    body = r.payload
                    owner = body["data"].get("triggeredBy", "")
                    uid = owner[len("Schedule (") : -1] if owner.startswith("Schedule (") else body["data"]["uid"]
                    out.add((uid, body["type"]))
                return out

            while not wanted <= seen():
                assert time.monotonic() < deadline, f"missing {wanted - seen()}"
                time.sleep(0.05)
            got = receiver.delivered()
            suspended = next(r.payload for r in got if r.payload["type"] == "schedule.suspended")
            assert suspended["data"]["uid"] == failing and suspended["data"]["schedule"]
            assert "failed runs in a row" in suspended["details"]["reason"]
            skipped = next(r.payload for r in got if r.payload["type"] == "schedule.run.skipped")
            assert skipped["data"]["uid"] == busy and skipped["details"]["scheduled"]
            missed = next(r.payload for r in got if r.payload["type"] == "schedule.run.missed")
            assert missed["details"]["count"] >= 1 and missed["details"]["missed"]
            assert len({r.id for r in got}) == len(got)
            log = events_log(api, busy)
            assert {e["type"] for e in log["events"]} >= {"schedule.run.skipped", "schedule.run.missed"}
    finally:
        receiver.stop()
    assert all(r.verified_with for r in receiver.received)
