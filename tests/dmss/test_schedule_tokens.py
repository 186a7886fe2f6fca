"""A DMSS-backed schedule whose job token has expired: renewed with the app's own key, or that run fails with a
message that names the cause (the old service's schedules broke silently). Real Azurite, stand-in DMSS."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.dmss.start import start_from_address
from shared.schedules import runs as scheduling
from shared.dmss.jobs import TokenRenewalImpossible
from shared.jobs.store import store

WHEN = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)


class Orchestrations:
    def __init__(self):
        self.started = []

    def start(self, uid, input):
        self.started.append(uid)

    def raise_stop(self, uid):
        pass


def _register(dmss, token) -> tuple[str, dict]:
    template = {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "run",
        "runner": {"type": "JOBCORE:Shell", "script": "true"},
    }
    doc = dmss.put(
        "DS",
        {
            "type": "dmss://WorkflowDS/Blueprints/RecurringJob",
            "name": "nightly",
            "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
            "applicationInput": template,
            "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": "0 8 * * *", "runs": []},
        },
    )
    started = start_from_address(f"DS/${doc}", {"Access-Key": token}, caller=None, orchestrations=Orchestrations())
    assert started.status.value == "registered"
    return started.uid, template


def test_expired_token_without_app_credentials_fails_the_run_with_the_cause(storage_env, dmss, token):
    uid, template = _register(dmss, token)
    dmss.expire(token)
    orchestrations = Orchestrations()
    with pytest.raises(TokenRenewalImpossible) as raised:
        scheduling.start_run(orchestrations, uid, WHEN, template, f"Schedule ({uid})")
    assert "DMSS_APP_ACCESS_KEY" in raised.value.message and token not in raised.value.message
    assert orchestrations.started == []


def test_expired_token_is_renewed_with_the_apps_key(storage_env, dmss, token, monkeypatch):
    uid, template = _register(dmss, token)
    dmss.expire(token)
    monkeypatch.setenv("DMSS_APP_ACCESS_KEY", dmss.issue_token(subject="dm-job-app", ttl_seconds=86400))
    orchestrations = Orchestrations()
    run_uid = scheduling.start_run(orchestrations, uid, WHEN, template, f"Schedule ({uid})")
    assert orchestrations.started == [run_uid]
    run = store().get(run_uid)
    assert run.secret_token and run.secret_token != token
    assert run.triggered_by == f"Schedule ({uid})"
    assert run.extra["environment"]["JOB_DMSS_ID"].endswith(".applicationInput")
    # idempotent on (schedule, scheduled time)
    assert scheduling.start_run(orchestrations, uid, WHEN, template, f"Schedule ({uid})") == run_uid
    assert orchestrations.started == [run_uid]
