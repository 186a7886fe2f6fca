"""A job's one-off `notify` targets and the `schedule.suspended` of a user's suspend, end to end through the local
host (real shell job, real Durable SDK, Azurite) with the verifying receiver of tests/webhooks/receiver.py."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from devhost import DevHost
from shared.platform.clock import ManualClock
from tests.e2e.conftest import ROOT, Api, shell_job
from tests.e2e.test_webhooks_e2e import CANARY, SETTINGS, bearer, env, events_log, recurring, run_job, subscribe
from tests.webhooks.receiver import Receiver

__all__ = ["env"]  # the fixture, shared with the webhooks' own e2e tests


def jobs_of(api: Api, who: str) -> list[str]:
    response = api.http.get(f"{api.base}/api/jobs", headers=bearer(who), timeout=30)
    assert response.status_code == 200, response.text
    return [j["uid"] for j in response.json()["jobs"]]


def test_notify_targets_and_a_requested_suspend(env):
    clock = ManualClock(datetime(2026, 3, 2, 12, 0, 30, tzinfo=timezone.utc))
    receiver = Receiver()
    try:
        with DevHost(app_dir=ROOT, clock=clock, worker_id="hooks-notify", settings=SETTINGS) as host:
            api = Api(host.url)
            sub = subscribe(api, receiver.url("/sub"), events=["schedule.suspended"])
            receiver.secrets = [sub["secret"]]

            # refused before anything is stored: an address inside, a signing subscription that is not yours
            before = jobs_of(api, "alice")
            inside = {"url": "http://169.254.169.254/latest", "events": ["job.completed"], "signWith": sub["id"]}
            response = api.start(shell_job("true", notify=[inside]), **bearer("alice"))
            assert response.status_code == 422 and "notify[0].url" in response.json()["message"], response.text
            theirs = {"url": receiver.url("/notify"), "events": ["job.completed"], "signWith": sub["id"]}
            response = api.start(shell_job("true", notify=[theirs]), **bearer("bob"))
            assert response.status_code == 422 and "notify[0].signWith" in response.json()["message"], response.text
            assert jobs_of(api, "alice") == before and jobs_of(api, "bob") == []

            target = {"url": receiver.url("/notify"), "events": ["job.started", "job.completed"], "signWith": sub["id"]}
            uid = run_job(host, api, 'echo "value: $CANARY"', env=[f"CANARY={CANARY}"], notify=[target])
            host.advance(0)
            got = receiver.wait_for(2, path="/notify")
            assert [r.payload["type"] for r in got] == ["job.started", "job.completed"]
            assert all(r.payload["data"]["uid"] == uid for r in got)
            log = events_log(api, uid)
            deliveries = [d for e in log["events"] for d in e["deliveries"]]
            assert {d["subscription"][:4] for d in deliveries} == {"ntf_"} and len(deliveries) == 2
            listed = api.http.get(f"{api.base}/api/subscriptions", headers=bearer("alice"), timeout=30).json()
            assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]]  # the target is not a subscription

            # a RecurringJob's template's targets are each run's
            entity = recurring("notified")
            each_run = {"url": receiver.url("/runs"), "events": ["job.completed"], "signWith": sub["id"]}
            entity["applicationInput"]["notify"] = [each_run]
            schedule = api.start(entity, **bearer("alice")).json()["uid"]
            host.advance(60)  # the next minute fires a run (Simulated: done at once)
            (run,) = receiver.wait_for(1, path="/runs")[:1]
            assert run.payload["type"] == "job.completed"
            assert run.payload["data"]["triggeredBy"] == f"Schedule ({schedule})"

            # a user's suspend: schedule.suspended once, however often it is asked
            for _ in range(2):
                answer = api.http.post(f"{api.base}/api/jobs/{schedule}/suspend", headers=bearer("alice"), timeout=30)
                assert answer.status_code == 200, answer.text
            suspended = receiver.wait_for(1, path="/sub")
            host.advance(30)
            time.sleep(0.5)
            types = [e["type"] for e in events_log(api, schedule)["events"]]
    finally:
        receiver.stop()
    assert [r.payload["type"] for r in receiver.delivered("/sub")] == ["schedule.suspended"]
    assert suspended[0].payload["data"]["uid"] == schedule and suspended[0].payload["details"]["requested"]
    assert types.count("schedule.suspended") == 1
    assert all(r.verified_with == [sub["secret"]] for r in receiver.received), "every request verifies"
    for r in receiver.received:
        assert CANARY not in r.body and sub["secret"] not in r.body
