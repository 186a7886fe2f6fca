"""DMSS mode end to end: the real app on the local host (Azurite, the Durable SDK, bash) against the stand-in
DMSS, driven over HTTP the way DM-Job's old clients drive it (README "DMSS mode", shared/reference/dm-job.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from urllib.parse import quote

import pytest
import requests

from devhost import DevHost
from shared.dmss import client as dmss_client
from shared.dmss.writeback import DmssWriteBack
from shared.platform import settings
from shared.jobs.store import store
from tests.standins.dmss import DmssStandIn, TokenInfo, make_jwt

from .conftest import ROOT

JOB = "dmss://WorkflowDS/Blueprints/Job"
RECURRING_JOB = "dmss://WorkflowDS/Blueprints/RecurringJob"
SHELL = "dmss://WorkflowDS/Blueprints/Shell"
RESULT_TYPE = "dmss://DS/Blueprints/Result"
FINAL = {"completed", "failed", "removed"}
STATUSES = {"registered", "not started", "starting", "running", "failed", "completed", "removed", "unknown"}
ERROR_KEYS = {"status", "type", "message", "debug", "data"}
CANARY = "DMSS_canary0123456789abcdefE2ESECRET"
POLL = 0.05


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
    """The app on the local host, pointed at the stand-in; jobs PUT progress back to the host itself."""
    monkeypatch.setenv("DMSS_URL", dmss.url)
    monkeypatch.setenv("PUBLIC_DMSS_URL", "")
    monkeypatch.setenv("DMSS_APP_ACCESS_KEY", "")
    monkeypatch.setenv("DMSS_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "auto")
    monkeypatch.setenv("DM_JOB_URL", "http://127.0.0.1:9/api/jobs")  # replaced once the host has its port
    # the schedule timer's %SCHEDULE_TICK% must resolve (the local host reads the environment only)
    monkeypatch.setenv("SCHEDULE_TICK", settings.get("SCHEDULE_TICK"))
    monkeypatch.setattr(DmssWriteBack, "delivery_backoff", 0.05)
    with DevHost(app_dir=ROOT) as running:
        monkeypatch.setenv("DM_JOB_URL", f"{running.url}/api/jobs")
        yield running


@pytest.fixture
def alice(dmss) -> str:
    """A DMSS personal access token of alice."""
    return dmss.issue_token(subject="alice")


class Api:
    """The old DM-Job client's calls, against `<host>/api/jobs`."""

    def __init__(self, base: str):
        self.base = f"{base}/api/jobs"
        self.http = requests.Session()

    def start(self, address: str, headers: dict) -> requests.Response:
        return self.http.post(f"{self.base}/{address}", headers=headers, timeout=30)

    def get(self, uid: str, headers: dict) -> requests.Response:
        return self.http.get(f"{self.base}/{uid}", headers=headers, timeout=30)

    def status(self, uid: str, headers: dict) -> dict:
        response = self.get(uid, headers)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, uid: str, headers: dict, until=lambda body: body["status"] in FINAL, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(uid, headers)
            if until(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {uid} not there after {timeout} s: {body}")
            time.sleep(POLL)

    def stop(self, uid: str, headers: dict) -> requests.Response:
        return self.http.delete(f"{self.base}/{uid}", headers=headers, timeout=30)

    def result(self, uid: str, headers: dict) -> requests.Response:
        return self.http.get(f"{self.base}/{uid}/result", headers=headers, timeout=30)

    def progress(self, uid: str, body: dict, headers: dict, overwrite: str = "false") -> requests.Response:
        return self.http.put(
            f"{self.base}/{uid}", params={"overwrite_log": overwrite}, json=body, headers=headers, timeout=30
        )

    def listed(self) -> list:
        response = self.http.get(self.base, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["jobs"]


@pytest.fixture
def api(host) -> Api:
    return Api(host.url)


def job_entity(script: str, env=(), **extra) -> dict:
    return {
        "type": JOB,
        "name": "e2e-job",
        "label": "dmss e2e",
        "status": "not started",
        "runner": {"type": "JOBCORE:Shell", "script": script, "environmentVariables": list(env)},
        **extra,
    }


def key(token: str) -> dict:
    return {"Access-Key": token}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(POLL)


def assert_start_reply(response: requests.Response) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert {"uid", "message", "status"} <= set(body)
    assert isinstance(body["uid"], str) and isinstance(body["message"], str) and body["status"] == "starting"
    assert response.headers["Location"] == f"/api/jobs/{body['uid']}"
    return body["uid"]


def assert_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and body["status"] == status
    assert isinstance(body["type"], str) and isinstance(body["message"], str) and isinstance(body["debug"], str)
    return body


def assert_nothing_started(api: Api, host: DevHost, dmss: DmssStandIn) -> None:
    assert api.listed() == []
    assert host.engine.list_status() == []
    assert [w for w in dmss.writes if w.method == "PUT"] == []


# ---- start from every address form, with either credential -------------------------------------------------
def _address_forms(dmss: DmssStandIn) -> dict[str, tuple[str, str]]:
    """name -> (what the client sends after /api/jobs/, the canonical address the entity is at)."""
    job_id = dmss.put("DS", job_entity("echo hi", extra_attribute={"kept": [1, 2]}))
    study_id = dmss.put(
        "DS",
        {
            "type": "dmss://DS/Blueprints/Study",
            "name": "study",
            "job": job_entity("echo attr"),
            "jobs": [job_entity("echo first"), {**job_entity("echo q"), "name": "nightly"}],
        },
    )
    entity_id = dmss.put("DS", {**job_entity("echo package"), "name": "Entity"})
    sub_id = dmss.put(
        "DS", {"type": "dmss://system/SIMOS/Package", "name": "Sub", "content": [dmss.storage_ref(entity_id)]}
    )
    dmss.add_root_package("DS", "Root", [dmss.storage_ref(sub_id)])
    plain = f"dmss://DS/${job_id}"
    return {
        "dmss-scheme": (plain, plain),
        "no-scheme": (f"DS/${job_id}", plain),
        "attribute": (f"DS/${study_id}.job", f"dmss://DS/${study_id}.job"),
        "list-element": (f"DS/${study_id}.jobs[0]", f"dmss://DS/${study_id}.jobs[0]"),
        "query": (quote(f"DS/${study_id}.jobs(name=nightly)", safe=""), f"dmss://DS/${study_id}.jobs(name=nightly)"),
        "merged-slashes": (f"dmss:/DS/${job_id}", plain),
        "package-path": ("DS/Root/Sub/Entity", "dmss://DS/Root/Sub/Entity"),
        "url-encoded": (quote(plain, safe=""), plain),
        "double-encoded": (quote(quote(plain, safe=""), safe=""), plain),
    }


@pytest.mark.parametrize("auth", ["access-key", "bearer"])
@pytest.mark.parametrize(
    "form",
    [
        "dmss-scheme",
        "no-scheme",
        "attribute",
        "list-element",
        "query",
        "package-path",
        "merged-slashes",
        "url-encoded",
        "double-encoded",
    ],
)
def test_start_from_every_address_form(api, dmss, alice, form, auth):
    sent, canonical = _address_forms(dmss)[form]
    before = dmss.lookup(canonical)
    if form == "url-encoded":
        assert sent.startswith("dmss%3A%2F%2FDS%2F%24")
    headers = key(alice) if auth == "access-key" else bearer(make_jwt("alice"))
    uid = assert_start_reply(api.start(sent, headers))

    writes = dmss.writes_to(canonical)  # the first write-back happened before the reply
    assert writes, f"nothing written to {canonical}"
    started = writes[0].data
    assert started["uid"] == uid and started["status"] == "starting" and started["type"] == before["type"]
    assert started["started"].endswith("Z") and len(started["started"]) == len("2024-01-10T08:00:00Z")

    final = api.wait(uid, headers)
    assert final["status"] == "completed"
    entity = wait_for(lambda: (e := dmss.lookup(canonical)).get("ended") and e, what="ended in DMSS")
    assert entity["status"] == "completed" and entity["uid"] == uid and entity["started"] == started["started"]
    assert entity["ended"].endswith("Z") and entity["ended"] >= entity["started"]
    for name, value in before.items():  # nothing but the write-back attributes changed
        if name not in ("uid", "status", "started", "ended"):
            assert entity[name] == value, name

    job_calls = [r for r in dmss.requests if r.endpoint in ("get", "put")]
    assert job_calls and all(r.address and "DS/" in r.address for r in job_calls)
    if auth == "access-key":
        assert all(r.access_key == alice and r.bearer == alice for r in job_calls)
        assert dmss.token_requests == []
    else:  # the JWT was exchanged once for a 30-day personal access token, which every later call used
        assert dmss.token_requests == [{"subject": "alice", "via": "jwt", "scope": "WRITE", "time_to_live": 2592000}]
        exchanged = {r.access_key for r in job_calls}
        assert len(exchanged) == 1 and exchanged.pop().startswith("DMSS_")
        assert all(r.bearer == r.access_key for r in job_calls)
    assert all(w.partial_update and set(w.data) <= {"type", "uid", "status", "started", "ended"} for w in dmss.writes)


# ---- write-back: status changes only, unknown attributes kept ----------------------------------------------
def test_polls_do_not_write_the_entity(api, dmss, alice):
    job_id = dmss.put(
        "DS",
        job_entity(
            "sleep 2.5; echo done", description="keep me", custom={"unknown": ["attributes", {"survive": True}]}
        ),
    )
    address = f"dmss://DS/${job_id}"
    uid = assert_start_reply(api.start(address, key(alice)))
    polls, seen = 0, []
    while True:
        body = api.status(uid, key(alice))
        polls += 1
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in FINAL:
            break
        time.sleep(POLL)
    assert polls >= 20 and seen[-1] == "completed" and "running" in seen
    wait_for(lambda: dmss.lookup(address).get("ended"), what="ended in DMSS")
    time.sleep(0.3)  # nothing more may come

    writes = dmss.writes_to(address)
    statuses = [w.data.get("status") for w in writes]
    assert statuses == ["starting", "running", "completed"], statuses
    assert all(w.method == "PUT" and w.partial_update for w in writes)
    assert [sorted(k for k in w.data if k != "type") for w in writes] == [
        ["ended", "started", "status", "uid"],
        ["status"],
        ["ended", "status"],
    ]
    gets = [r for r in dmss.requests if r.endpoint == "get"]
    assert len(gets) == 1  # the start's fetch: status polls never reach DMSS

    entity = dmss.lookup(address)
    assert entity["description"] == "keep me"
    assert entity["custom"] == {"unknown": ["attributes", {"survive": True}]}
    assert entity["runner"]["script"] == "sleep 2.5; echo done" and entity["name"] == "e2e-job"
    assert entity["status"] == "completed" and entity["uid"] == uid


# ---- results at outputTarget ------------------------------------------------------------------------------
def _result_job(dmss: DmssStandIn, **extra) -> tuple[str, str]:
    doc_id = dmss.put("DS", {"type": "dmss://DS/Blueprints/Study", "name": "study", "results": []})
    script = (
        'echo computing; printf \'{"type": "%s", "name": "result-%s", "value": 42}\' '
        f'"{RESULT_TYPE}" "$JOB_UID" > "$JOB_RESULT_FILE"'
    )
    job_id = dmss.put("DS", job_entity(script, outputTarget=f"dmss://DS/${doc_id}.results", **extra))
    return job_id, doc_id


def _delivery_noted(api: Api, uid: str, headers: dict) -> dict:
    return api.wait(uid, headers, until=lambda b: b["status"] in FINAL and "result deliver" in b["message"])


def test_result_is_delivered_to_output_target_after_retries(api, dmss, alice):
    job_id, doc_id = _result_job(dmss)
    dmss.fail("post", 500, times=2)
    uid = assert_start_reply(api.start(f"DS/${job_id}", key(alice)))
    final = _delivery_noted(api, uid, key(alice))
    assert final["status"] == "completed"
    assert f"result delivered to dmss://DS/${doc_id}.results" in final["message"]
    assert final["outputTarget"] == f"dmss://DS/${doc_id}.results"
    posts = [r for r in dmss.requests if r.endpoint == "post"]
    assert [r.status for r in posts] == [500, 500, 200]
    assert all(r.access_key == alice and r.bearer == alice for r in posts)
    results = dmss.lookup(f"dmss://DS/${doc_id}.results")
    assert len(results) == 1
    assert {k: results[0][k] for k in ("type", "name", "value")} == {
        "type": RESULT_TYPE,
        "name": f"result-{uid}",
        "value": 42,
    }
    result = api.result(uid, key(alice))
    assert result.status_code == 200 and json.loads(result.json()["result"])["value"] == 42
    # the entity is told `completed` only once the result is at its target
    entity = wait_for(lambda: (e := dmss.lookup(f"dmss://DS/${job_id}")).get("ended") and e, what="ended")
    assert entity["status"] == "completed"
    order = [
        (r.endpoint, r.form.get("data", "")) for r in dmss.requests if r.status == 200 and r.endpoint in ("post", "put")
    ]
    delivered = order.index(("post", ""))
    assert all('"completed"' not in data for _, data in order[:delivered])
    assert any('"completed"' in data for _, data in order[delivered:])


def test_result_of_a_big_entity_is_delivered(api, dmss, alice):
    job_id, doc_id = _result_job(dmss, bigAttribute="x" * 40_000)  # the record keeps such an entity in a blob
    uid = assert_start_reply(api.start(f"DS/${job_id}", key(alice)))
    final = _delivery_noted(api, uid, key(alice))
    assert final["status"] == "completed" and "result delivered" in final["message"]
    assert len(dmss.lookup(f"dmss://DS/${doc_id}.results")) == 1
    assert dmss.lookup(f"dmss://DS/${job_id}")["bigAttribute"] == "x" * 40_000


def test_final_status_reaches_dmss_when_a_write_fails(api, dmss, alice, tmp_path):
    marker = tmp_path / "go"
    job_id = dmss.put("DS", job_entity(f"while [ ! -f {marker} ]; do sleep 0.05; done"))
    address = f"dmss://DS/${job_id}"
    uid = assert_start_reply(api.start(address, key(alice)))
    api.wait(uid, key(alice), until=lambda b: b["status"] == "running")
    wait_for(lambda: dmss.lookup(address)["status"] == "running", what="running in DMSS")
    dmss.fail("put", 500, times=1)
    marker.write_text("go")
    assert api.wait(uid, key(alice))["status"] == "completed"
    entity = wait_for(lambda: (e := dmss.lookup(address)).get("ended") and e, what="ended in DMSS")
    assert entity["status"] == "completed"
    assert [r.status for r in dmss.requests if r.endpoint == "put"][-2:] == [500, 200]


def test_result_delivery_that_keeps_failing_is_reported_and_the_job_stays_completed(api, dmss, alice):
    job_id, doc_id = _result_job(dmss)
    dmss.fail("post", 503)
    uid = assert_start_reply(api.start(f"DS/${job_id}", key(alice)))
    final = _delivery_noted(api, uid, key(alice))
    assert final["status"] == "completed"
    assert "result delivery failed" in final["message"] and f"dmss://DS/${doc_id}.results" in final["message"]
    assert "after 5 attempts" in final["message"]
    assert any("result delivery failed" in line for line in final["log"])
    assert alice not in json.dumps(final)
    assert [r.status for r in dmss.requests if r.endpoint == "post"] == [503] * 5
    assert dmss.lookup(f"dmss://DS/${doc_id}.results") == []
    # the final status reaches the entity just after the job's own record notes the failed delivery
    wait_for(lambda: dmss.lookup(f"dmss://DS/${job_id}")["status"] == "completed", what="completed in DMSS")


def test_result_delivery_refused_by_dmss_is_not_retried(api, dmss, alice):
    missing = "dmss://DS/$0b7e3d52-5e0e-4b6b-9c7e-2a1d8f0c1e11.results"
    job_id = dmss.put(
        "DS", job_entity(f'printf \'{{"type": "{RESULT_TYPE}"}}\' > "$JOB_RESULT_FILE"', outputTarget=missing)
    )
    uid = assert_start_reply(api.start(f"DS/${job_id}", key(alice)))
    final = _delivery_noted(api, uid, key(alice))
    assert final["status"] == "completed" and "result delivery failed" in final["message"]
    assert [r.status for r in dmss.requests if r.endpoint == "post"] == [404]


# ---- DMSS refusing or failing: nothing is stored ---------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        "unknown-key",
        "expired-jwt",
        "no-rights",
        "missing",
        "not-a-job",
        "no-credentials",
        "dmss-5xx",
        "dmss-drops",
        "dmss-slow",
        "write-back-fails",
        "token-exchange-fails",
        "orchestration-fails",
        "bad-address",
    ],
)
def test_dmss_errors_pass_through_and_nothing_is_stored(host, api, dmss, alice, case, monkeypatch):
    job_id = dmss.put("DS", job_entity("echo never"))
    address, headers = f"DS/${job_id}", key(alice)
    expected_status, expected_message = None, None
    if case == "unknown-key":
        headers, expected_status, expected_message = key("DMSS_not_issued"), 401, "Invalid access key"
    elif case == "expired-jwt":
        headers = bearer(make_jwt("alice", expires_in=-60))
        expected_status, expected_message = 401, "Token has expired"
    elif case == "no-rights":
        dmss.limit("bob", ["OTHER"])
        headers, expected_status = key(dmss.issue_token(subject="bob")), 403
        expected_message = "'bob' is missing the privilege to access data source 'DS'"
    elif case == "missing":
        address, expected_status = "DS/$0b7e3d52-5e0e-4b6b-9c7e-2a1d8f0c1e11", 404
        expected_message = "Document with id '0b7e3d52-5e0e-4b6b-9c7e-2a1d8f0c1e11' was not found"
    elif case == "not-a-job":
        address = "DS/$" + dmss.put("DS", {"type": "dmss://DS/Blueprints/Study", "name": "s"})
        expected_status, expected_message = 400, "a job must be of type"
    elif case == "no-credentials":
        headers, expected_status, expected_message = {}, 401, "DMSS credentials"
    elif case == "dmss-5xx":
        dmss.fail("get", 500)
        expected_status, expected_message = 502, "Stand-in DMSS answers 500"
    elif case == "dmss-drops":
        dmss.drop("get")
        expected_status, expected_message = 503, "DMSS did not answer within 1 s"
    elif case == "dmss-slow":
        dmss.slow("get", seconds=2.5)
        expected_status, expected_message = 503, "DMSS did not answer within 1 s"
    elif case == "write-back-fails":
        dmss.fail("put", 500)
        expected_status, expected_message = 502, "DMSS failed (500)"
    elif case == "token-exchange-fails":
        dmss.fail("token", 500)
        headers, expected_status, expected_message = bearer(make_jwt("alice")), 502, "DMSS failed (500)"
    elif case == "orchestration-fails":  # after the first write-back went through: it must be undone

        def refuse(self, uid, input):
            raise RuntimeError("the task hub is not reachable")

        monkeypatch.setattr("shared.platform.durable.ClientOrchestrations.start", refuse)
        expected_status, expected_message = 503, "nothing was kept"
    elif case == "bad-address":
        address, expected_status, expected_message = "DS/..%2Fetc", 400, "Invalid DMSS address"
    body = assert_error(api.start(address, headers), expected_status)
    assert expected_message in body["message"], body
    if alice in headers.values():
        assert alice not in json.dumps(body)
    assert api.listed() == []
    assert host.engine.list_status() == []
    # the entity says what it said before (a write-back that was undone leaves unset attributes as null)
    entity = {k: v for k, v in dmss.lookup(f"dmss://DS/${job_id}").items() if v is not None}
    assert entity == {**job_entity("echo never"), "_id": job_id}
    if case == "orchestration-fails":
        assert [w.data.get("status") for w in dmss.writes] == ["starting", "not started"]


# ---- the job's token: in the job's environment, nowhere else ---------------------------------------------
def test_canary_token_reaches_the_job_and_nothing_else(api, dmss, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    dmss.tokens[CANARY] = TokenInfo("alice", "WRITE", dmss.now() + 3600)
    script = (
        'echo "token=$DMSS_TOKEN"; echo "$DMSS_TOKEN" >&2; '
        'h=$(printf %s "$DMSS_TOKEN" | sha256sum | cut -d" " -f1); '
        f'printf \'{{"type": "{RESULT_TYPE}", "tokenHash": "%s", "token": "%s"}}\' "$h" "$DMSS_TOKEN" '
        '> "$JOB_RESULT_FILE"; '
        'curl -s -X PUT "$DM_JOB_URL/$JOB_UID?overwrite_log=false" -H "Access-Key: $DMSS_TOKEN" '
        '-H "Content-Type: application/json" '
        '-d "{\\"percentage\\": 0.9, \\"logs\\": \\"reported $DMSS_TOKEN\\", \\"status\\": null}"'
    )
    doc_id = dmss.put("DS", {"type": "dmss://DS/Blueprints/Study", "name": "study", "results": []})
    job_id = dmss.put("DS", job_entity(script, outputTarget=f"dmss://DS/${doc_id}.results"))
    start = api.start(f"dmss://DS/${job_id}", key(CANARY))
    uid = assert_start_reply(start)
    texts = [start.text, json.dumps(dict(start.headers))]
    final = _delivery_noted(api, uid, key(CANARY))
    assert final["status"] == "completed"
    texts.append(json.dumps(final))
    result = api.result(uid, key(CANARY))
    texts.append(result.text)
    delivered = json.loads(result.json()["result"])
    assert delivered["tokenHash"] == hashlib.sha256(CANARY.encode()).hexdigest()
    assert delivered["token"] == "***"
    assert final["log"] == ["reported ***", "result delivered to " + f"dmss://DS/${doc_id}.results"]
    texts.append(api.stop(uid, key(CANARY)).text)
    texts.append(api.progress(uid, {"percentage": None, "logs": None, "status": None}, {}).text)
    texts.append(api.http.get(api.base).text)
    record = store().get(uid)
    stored_log = store().get_text(record.log_ref)
    assert "token=***" in stored_log
    texts += [
        stored_log,
        store().get_text(record.result_ref),
        json.dumps(record.log),
        json.dumps(record.reported_log),
        record.message,
        json.dumps(record.entity),
        json.dumps(record.extra),
    ]
    texts.append(json.dumps(dmss.lookup(f"dmss://DS/${doc_id}")))
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    for text in texts:
        assert CANARY not in text


# ---- a job that behaves like DM-Job's job containers -------------------------------------------------------
OLD_JOB_SCRIPT = r"""
set -e
ENC=${JOB_DMSS_ID//:/%3A}; ENC=${ENC//\//%2F}; ENC=${ENC//\$/%24}
ENTITY=$(curl -sf -H "Access-Key: $DMSS_TOKEN" "$DMSS_URL/api/documents/$ENC?depth=1")
NAME=$(printf %s "$ENTITY" | grep -o '"name": "[^"]*"' | head -1 | cut -d'"' -f4)
put() {
  curl -sf -X PUT "$DM_JOB_URL/$JOB_UID?overwrite_log=false" -H 'Content-Type: application/json' \
       -H "Access-Key: $DMSS_TOKEN" -d "$1" >> "$RESPONSES"
  echo >> "$RESPONSES"
}
put "{\"percentage\": 0.1, \"logs\": [\"fetched $NAME\", \"id $JOB_DMSS_ID\"], \"status\": \"running\"}"
put '{"percentage": 0.505, "logs": "line a\n\nline b", "status": null}'
put '{"percentage": null, "logs": null, "status": null}'
curl -sf -X PUT -H "Access-Key: $DMSS_TOKEN" -F 'data={"jobNote": "written by the job"}' \
     "$DMSS_URL/api/documents/$ENC?partial_update=true" > /dev/null
echo "plain output"
while [ ! -f "$MARKER" ]; do sleep 0.05; done
"""


def test_job_like_the_old_job_containers(api, dmss, alice, tmp_path):
    responses, marker = tmp_path / "responses", tmp_path / "go"
    job_id = dmss.put(
        "DS",
        job_entity(
            OLD_JOB_SCRIPT, [f"RESPONSES={responses}", f"MARKER={marker}"], name="legacy-job", keep={"this": "too"}
        ),
    )
    address = f"dmss://DS/${job_id}"
    uid = assert_start_reply(api.start(quote(address, safe=""), key(alice)))
    running = api.wait(uid, key(alice), until=lambda b: b["status"] in FINAL or len(b["log"] or []) >= 4)
    assert running["status"] == "running", running
    assert running["log"] == ["fetched legacy-job", f"id {address}", "line a", "line b"]
    assert running["percentage"] == 0.505
    assert {"status", "log", "percentage"} <= set(running)
    wait_for(lambda: responses.exists() and responses.read_text().count("\n") >= 3, what="3 PUT responses")
    assert [json.loads(line) for line in responses.read_text().splitlines()] == [{"response": "OK"}] * 3
    entity = wait_for(lambda: (e := dmss.lookup(address)).get("jobNote") and e, what="the job's own write")
    assert entity["status"] == "running"  # the reported status change reached DMSS

    marker.write_text("go")
    final = api.wait(uid, key(alice))
    assert final["status"] == "completed" and final["percentage"] == 0.505
    assert final["log"] == ["fetched legacy-job", f"id {address}", "line a", "line b"]
    entity = wait_for(lambda: (e := dmss.lookup(address)).get("ended") and e, what="ended in DMSS")
    assert entity["status"] == "completed" and entity["jobNote"] == "written by the job"
    assert entity["keep"] == {"this": "too"} and entity["name"] == "legacy-job"
    job_gets = [r for r in dmss.requests if r.endpoint == "get"]
    assert len(job_gets) == 2 and job_gets[1].access_key == alice and job_gets[1].address == address


# ---- old response shapes and who may do what ---------------------------------------------------------------
@pytest.mark.parametrize("starter", ["access-key", "bearer"])
def test_old_response_shapes_and_callers_without_rights(api, dmss, alice, tmp_path, starter):
    marker = tmp_path / "go"
    job_id = dmss.put("DS", job_entity(f"echo working; while [ ! -f {marker} ]; do sleep 0.05; done"))
    owner = key(alice) if starter == "access-key" else bearer(make_jwt("alice"))
    uid = assert_start_reply(api.start(f"DS/${job_id}", owner))
    body = api.wait(uid, owner, until=lambda b: b["status"] == "running")
    assert {"status", "log", "percentage"} <= set(body) and body["status"] in STATUSES
    assert body["log"] is None or all(isinstance(line, str) for line in body["log"])
    assert body["percentage"] is None or isinstance(body["percentage"], float)

    # callers without rights: DMSS refuses them the entity (its ACL: alice's, nobody else's), so they are
    # refused here with DMSS's own status and message
    dmss.set_acl("DS", job_id, owner="alice", others="NONE")
    strangers = {
        "another access key": key(dmss.issue_token(subject="bob")),
        "another identity": bearer(make_jwt("mallory")),
    }
    for headers in strangers.values():
        assert "requires 'READ' privileges" in assert_error(api.stop(uid, headers), 403)["message"]  # not even the ACL
        assert "'READ' privileges" in assert_error(api.result(uid, headers), 403)["message"]
        assert (
            assert_error(api.get(uid, headers), 403)["message"] == "The requested operation requires 'READ' privileges"
        )
        assert_error(api.progress(uid, {"percentage": 1, "logs": "x", "status": "failed"}, headers), 403)
    if starter == "bearer":  # the owner's DMSS key is the owner to DMSS: it may read, but not report progress
        assert api.status(uid, key(alice))["status"] == "running"
        assert_error(api.progress(uid, {"percentage": 1, "logs": "x", "status": "failed"}, key(alice)), 403)
    assert_error(api.progress(uid, {"percentage": 1, "logs": "x", "status": "failed"}, {}), 403)
    assert_error(api.progress(uid, {"percentage": 1, "logs": "x", "status": None}, key("DMSS_some_other_token")), 403)
    assert api.status(uid, owner)["status"] == "running"  # nothing of that landed

    put = api.progress(uid, {"percentage": 0.3, "logs": ["owner says"], "status": None}, owner)
    assert put.status_code == 200 and put.json() == {"response": "OK"}
    assert_error(api.result(uid, owner), 409)
    assert_error(
        api.http.put(f"{api.base}/{uid}", json={"percentage": 1, "logs": None, "status": None}, headers=owner), 422
    )  # overwrite_log is required
    assert_error(api.get("not-a-uid", owner), 400)
    assert_error(api.get("0b7e3d52-5e0e-4b6b-9c7e-2a1d8f0c1e11", owner), 404)

    stopped = api.stop(uid, owner)
    assert stopped.status_code == 200 and set(stopped.json()) == {"status", "response"}
    assert stopped.json()["status"] == "removed" and isinstance(stopped.json()["response"], str)
    result = api.result(uid, owner)
    assert result.status_code == 200 and {"message", "result"} <= set(result.json())
    assert all(isinstance(result.json()[k], str) for k in ("message", "result"))
    final = api.status(uid, owner)
    assert final["status"] == "removed" and final["log"] == ["owner says"] and final["percentage"] == 0.3
    entity = wait_for(lambda: (e := dmss.lookup(f"dmss://DS/${job_id}")).get("ended") and e, what="ended")
    assert entity["status"] == "removed" and entity["uid"] == uid
    marker.write_text("go")


# ---- recurring jobs ------------------------------------------------------------------------------------
def _schedules_ready() -> str | None:
    try:
        from shared.schedules import history, operations, runs
    except Exception as error:  # noqa: BLE001
        return f"shared/schedules/ does not import ({type(error).__name__}: {error})"
    wanted = {operations: ("register", "unregister", "view"), runs: ("tick",), history: ("RUN_LISTENER",)}
    missing = [
        f"{module.__name__}.{name}"
        for module, names in wanted.items()
        for name in names
        if getattr(module, name, None) is None
    ]
    return f"shared/schedules/ lacks {missing}" if missing else None


def test_recurring_job_from_dmss_is_registered(api, dmss, alice):
    reason = _schedules_ready()
    if reason:
        pytest.skip(reason)
    template = job_entity("echo scheduled run")
    job_id = dmss.put(
        "DS",
        {
            "type": RECURRING_JOB,
            "name": "nightly",
            "label": "nightly run",
            "status": "not started",
            "applicationInput": template,
            "runner": {"type": "dmss://WorkflowDS/Blueprints/RecurringJobHandler"},
            "schedule": {"type": "dmss://WorkflowDS/Blueprints/CronJob", "cron": "0 3 * * *", "runs": []},
            "customAttribute": "kept",
        },
    )
    address = f"dmss://DS/${job_id}"
    response = api.start(quote(address, safe=""), key(alice))
    assert response.status_code == 202, response.text
    body = response.json()
    assert {"uid", "message", "status"} <= set(body) and body["status"] == "registered"
    uid = body["uid"]
    status = api.status(uid, key(alice))
    assert status["status"] == "registered" and status["kind"] == "recurring"
    assert status["schedule"].get("nextFire")
    entity = dmss.lookup(address)
    assert entity["uid"] == uid and entity["status"] == "registered" and entity["started"].endswith("Z")
    assert entity["customAttribute"] == "kept" and entity["schedule"]["cron"] == "0 3 * * *"
    # no weekdayDialect named: it runs as the old service ran it, and the entity is told so
    assert entity["schedule"]["weekdayDialect"] == "dmjob" and status["schedule"]["weekdayDialect"] == "dmjob"
    stopped = api.stop(uid, key(alice))
    assert stopped.status_code == 200 and set(stopped.json()) == {"status", "response"}
    assert stopped.json()["status"] == "removed"
    wait_for(lambda: dmss.lookup(address)["status"] == "removed", what="removed in DMSS")
