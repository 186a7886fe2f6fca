"""Bad input through the local host: always a 4xx with the JSON error body, and nothing stored.

Regression tests for the cases found by fault and bad-input runs: deep nesting (RecursionError), huge numbers
(OverflowError), NaN/Infinity going in and out, invalid UTF-8 and lone surrogates, oversized labels (the table
refused the entity: 503), absurd or mistyped time limits (TypeError: 503), and reads during a storage outage (500).
"""

from __future__ import annotations

import json

import pytest
import requests

from devhost import DevHost
from tests.e2e.conftest import HOST_SETTINGS, ROOT, shell_job
from tests.support.azurite import start_azurite

ERROR_KEYS = {"status", "type", "message", "debug", "data"}


def assert_json_error(response: requests.Response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS and body["status"] == response.status_code
    return body


def stored_jobs(api) -> list[str]:
    response = api.http.get(f"{api.base}/api/jobs?limit=1000", timeout=30)
    assert response.status_code == 200
    return [job["uid"] for job in response.json()["jobs"]]


def post_raw(api, body: bytes, path: str = "/api/jobs", method: str = "POST") -> requests.Response:
    return api.http.request(
        method, f"{api.base}{path}", data=body, timeout=30, headers={"Content-Type": "application/json"}
    )


BAD_STARTS = {
    "nested 900 deep": b'{"type": ' + b"[" * 900 + b"]" * 900 + b"}",
    "nested 5000 deep": b"[" * 5000 + b"]" * 5000,
    "NaN": json.dumps(shell_job("true")).encode().replace(b'"label": "e2e"', b'"label": NaN'),
    "Infinity time limit": json.dumps(shell_job("true")).encode()[:-1] + b', "timeLimitSeconds": Infinity}',
    "1e400": json.dumps(shell_job("true")).encode()[:-1] + b', "timeLimitSeconds": 1e400}',
    "invalid UTF-8": json.dumps(shell_job("true")).encode().replace(b"e2e", b"\xff\xfe"),
    "lone surrogate": json.dumps(shell_job("echo \\ud800")).encode().replace(b"\\\\ud800", b"\\ud800"),
    "60 KB label": json.dumps(shell_job("true", label="x" * 60_000)).encode(),
    "900 KB label": json.dumps(shell_job("true", label="x" * 900_000)).encode(),
    "time limit 10^12": json.dumps(shell_job("true", timeLimitSeconds=10**12)).encode(),
    "time limit 2^63": json.dumps(shell_job("true", timeLimitSeconds=2**63)).encode(),
    "time limit true": json.dumps(shell_job("true", timeLimitSeconds=True)).encode(),
    "time limit '2'": json.dumps(shell_job("true", timeLimitSeconds="2")).encode(),
    "runner time limit true": json.dumps(
        {**shell_job("true"), "runner": {"type": "JOBCORE:Shell", "script": "true", "timeLimitSeconds": True}}
    ).encode(),
}


@pytest.mark.parametrize("name", list(BAD_STARTS))
def test_bad_start_is_a_4xx_and_stores_nothing(api, name):
    before = stored_jobs(api)
    body = assert_json_error(post_raw(api, BAD_STARTS[name]), 400, 413, 422)
    assert "Traceback" not in body["message"]
    assert stored_jobs(api) == before


def test_bad_progress_reports_are_4xx_and_change_nothing(api):
    uid = api.start(shell_job("sleep 30")).json()["uid"]
    path = f"/api/jobs/{uid}?overwrite_log=true"
    before = api.get(uid)
    cases = [
        b'{"percentage": NaN, "logs": null, "status": null}',
        b'{"percentage": Infinity, "logs": null, "status": null}',
        b'{"percentage": 1e400, "logs": null, "status": null}',
        b'{"percentage": ' + b"9" * 401 + b', "logs": null, "status": null}',
        b'{"percentage": null, "logs": ' + b"[" * 1000 + b"]" * 1000 + b', "status": null}',
        b'{"percentage": null, "logs": "\\udc00", "status": null}',
        b'{"percentage": null, "logs": "\xc3\x28", "status": null}',
    ]
    for body in cases:
        assert_json_error(post_raw(api, body, path, "PUT"), 400, 403, 422)
    after = api.get(uid)
    assert after["percentage"] == before["percentage"] and after["log"] == before["log"]
    assert "NaN" not in json.dumps(after)
    api.http.delete(f"{api.base}/api/jobs/{uid}", timeout=30)


@pytest.mark.parametrize("token", ["W1tbW1tbW1tbW1tbW1tbW1tb" * 100, "!!!", "e30=", "WzEsMl0=", "x" * 5000])
def test_malformed_continuation_tokens_are_400(api, token):
    assert_json_error(api.http.get(f"{api.base}/api/jobs", params={"continuationToken": token}, timeout=30), 400)


@pytest.mark.parametrize("limit", ["9" * 400, "-1", "abc", "1e3"])
def test_malformed_limits_are_400(api, limit):
    assert_json_error(api.http.get(f"{api.base}/api/jobs", params={"limit": limit}, timeout=30), 400)


@pytest.fixture
def private_storage(monkeypatch):
    """An Azurite of this test's own, so the test can stop it."""
    server = start_azurite()
    monkeypatch.setenv("AzureWebJobsStorage", server.connection_string)
    monkeypatch.setenv("JOB_STORE_PREFIX", "outage")
    monkeypatch.setenv("JOB_ORCHESTRATION_STORE_PREFIX", "outageh")
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    yield server
    server.stop()


def test_every_route_answers_503_with_retry_after_while_storage_is_down(private_storage):
    with DevHost(app_dir=ROOT, settings=HOST_SETTINGS) as host:
        base = f"{host.url}/api"
        uid = requests.post(f"{base}/jobs", json=shell_job("sleep 60"), timeout=30).json()["uid"]
        private_storage.process.terminate()
        private_storage.process.wait(timeout=10)
        requests_ = [
            ("GET", f"{base}/jobs/{uid}", None),
            ("GET", f"{base}/jobs", None),
            ("GET", f"{base}/jobs/{uid}/result", None),
            ("DELETE", f"{base}/jobs/{uid}", None),
            ("PUT", f"{base}/jobs/{uid}?overwrite_log=true", {"percentage": None, "logs": "x", "status": None}),
            ("POST", f"{base}/jobs", shell_job("true")),
            ("GET", f"{base}/health", None),
            ("GET", f"{base}/jobs/{uid}/schedule", None),
            ("POST", f"{base}/jobs/{uid}/suspend", None),
        ]
        for method, url, body in requests_:
            response = requests.request(method, url, json=body, timeout=60)
            assert response.status_code == 503, (method, url, response.status_code, response.text[:200])
            assert response.headers["Content-Type"].startswith("application/json")
            if "health" not in url:
                assert set(response.json()) == ERROR_KEYS and response.headers.get("Retry-After")


def test_the_list_shows_only_the_callers_own_jobs(api):
    """A stranger's jobs are not listed, not even their labels (callers identified by their Bearer claims)."""
    from tests.standins.dmss import make_jwt

    alice = {"Authorization": f"Bearer {make_jwt('alice')}"}
    bob = {"Authorization": f"Bearer {make_jwt('bob')}"}
    mine = api.start(shell_job("true", label="alice's secret label"), **alice).json()["uid"]
    theirs = api.start(shell_job("true", label="bob's"), **bob).json()["uid"]
    anonymous = api.start(shell_job("true")).json()["uid"]

    def listed(headers) -> set[str]:
        response = api.http.get(f"{api.base}/api/jobs", params={"limit": 1000}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        assert "alice's secret label" not in response.text or headers is alice
        return {job["uid"] for job in response.json()["jobs"]}

    assert mine in listed(alice) and theirs not in listed(alice) and anonymous not in listed(alice)
    assert theirs in listed(bob) and mine not in listed(bob)
    assert anonymous in listed({}) and mine not in listed({}) and theirs not in listed({})
