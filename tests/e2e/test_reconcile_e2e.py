"""No job stuck: the reconciliation timer, through the local host on a replaced clock.

A job stored without an orchestration (the host died between the two writes of a start) is started by the
next reconciliation; a job whose orchestration was terminated under it is stopped and closed as failed with
the reason; a repeated Idempotency-Key never answers with a job that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from devhost import DevHost
from shared.jobs import operations
from shared.jobs.store import store
from shared.jobs.validation import validate_job
from shared.platform.clock import ManualClock

from .conftest import HOST_SETTINGS, ROOT

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=timezone.utc)


def simulated(duration: float) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "reconcile",
        "runner": {"type": "JOBCORE:Simulated", "durationSeconds": duration},
    }


@pytest.fixture
def host(storage_env):
    with DevHost(app_dir=ROOT, clock=ManualClock(START), settings=HOST_SETTINGS) as running:
        yield running


def status(host, uid) -> dict:
    response = requests.get(f"{host.url}/api/jobs/{uid}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_job_stored_without_its_orchestration_is_started_by_reconciliation(host):
    lost = operations.start_job(validate_job(simulated(30)), caller=None, launch=lambda record: None)  # "crash"
    host.advance(60)
    assert status(host, lost.uid)["status"] == "starting"  # within the grace period nothing is done
    host.advance(5 * 60)  # the next reconciliation after the grace period
    host.advance(120)
    assert status(host, lost.uid)["status"] == "completed"


def test_a_job_whose_orchestration_was_terminated_is_closed_as_failed(host):
    uid = requests.post(f"{host.url}/api/jobs", json=simulated(3600), timeout=30).json()["uid"]
    host.advance(30)
    assert status(host, uid)["status"] == "running"
    terminated = requests.post(
        f"{host.url}/runtime/webhooks/durabletask/instances/{uid}/terminate", params={"reason": "operator"}, timeout=30
    )
    assert terminated.status_code == 202, terminated.text
    host.advance(10 * 60)
    body = status(host, uid)
    assert body["status"] == "failed" and "orchestration ended before the job did" in body["message"]
    assert body["ended"]


def test_an_idempotency_key_never_points_at_a_job_that_does_not_exist(host):
    key = {"Idempotency-Key": "abandoned-start"}
    # a start that claimed the key and died before storing its job
    store().claim_idempotency(
        "anonymous", key["Idempotency-Key"], "0b7e3d52-5e0e-4b6b-9c7e-2a1d8f0c1e11", operations.IDEMPOTENCY_TTL
    )
    soon = requests.post(f"{host.url}/api/jobs", json=simulated(1), headers=key, timeout=30)
    assert soon.status_code == 409 and soon.headers.get("Retry-After")
    host.advance(60)  # past ABANDONED_AFTER: the key is taken over by a real start
    later = requests.post(f"{host.url}/api/jobs", json=simulated(1), headers=key, timeout=30)
    assert later.status_code == 202, later.text
    uid = later.json()["uid"]
    again = requests.post(f"{host.url}/api/jobs", json=simulated(1), headers=key, timeout=30)
    assert again.status_code == 200 and again.json()["uid"] == uid
    assert status(host, uid)["uid"] == uid
