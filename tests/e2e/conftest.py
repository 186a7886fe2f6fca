"""End-to-end fixtures: the real function app served by the local host, over HTTP, on Azurite."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from devhost import DevHost

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"completed", "failed", "removed"}
HOST_SETTINGS = {"SCHEDULE_TICK": "0 * * * * *"}


@pytest.fixture(autouse=True)
def schedule_tick_setting(monkeypatch):
    """The app's timer reads %SCHEDULE_TICK%; the real host and devhost both need it set."""
    monkeypatch.setenv("SCHEDULE_TICK", HOST_SETTINGS["SCHEDULE_TICK"])


@pytest.fixture
def host(storage_env):
    with DevHost(app_dir=ROOT, settings=HOST_SETTINGS) as running:
        yield running


class Api:
    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def start(self, job: dict, **headers) -> requests.Response:
        return self.http.post(f"{self.base}/api/jobs", json=job, headers=headers, timeout=30)

    def get(self, uid: str, **headers) -> dict:
        response = self.http.get(f"{self.base}/api/jobs/{uid}", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, uid: str, statuses=FINAL, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(uid)
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {uid} still {body['status']} after {timeout}s: {body}")
            time.sleep(0.05)


@pytest.fixture
def api(host) -> Api:
    return Api(host.url)


def shell_job(script: str, env=(), **extra) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "label": "e2e",
        "runner": {"type": "JOBCORE:Shell", "script": script, "environmentVariables": list(env)},
        **extra,
    }
