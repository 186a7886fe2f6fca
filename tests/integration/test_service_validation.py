"""Every bad input gets its 4xx and leaves nothing behind (no row, no index entry, no orchestration)."""

import json
from dataclasses import dataclass

import pytest

from shared import service
from shared.platform.errors import ApiError
from shared.jobs.store import store


class Recorder:
    def __init__(self):
        self.started = []

    def start(self, uid, input):
        self.started.append(uid)

    def raise_stop(self, uid):
        pass


@dataclass(frozen=True)
class Who:
    id: str

    @property
    def display(self):
        return self.id


GOOD = {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Shell", "script": "true"}}


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2]", 400),
        (json.dumps({"type": "dmss://WorkflowDS/Blueprints/Other", "runner": {"type": "x"}}).encode(), 400),
        (json.dumps({"runner": {"type": "JOBCORE:Shell"}}).encode(), 422),
        (json.dumps({"type": "JOBCORE:Job"}).encode(), 422),
        (json.dumps({"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Shell"}}).encode(), 422),
        (json.dumps({"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Nope"}}).encode(), 422),
        (
            json.dumps(
                {"type": "JOBCORE:Job", "status": "bogus", "runner": {"type": "JOBCORE:Shell", "script": "x"}}
            ).encode(),
            422,
        ),
        (json.dumps({**GOOD, "runner": {**GOOD["runner"], "environmentVariables": ["NOT_ALLOWED"]}}).encode(), 422),
        (json.dumps({**GOOD, "timeLimitSeconds": -1}).encode(), 422),
        (json.dumps({**GOOD, "outputTarget": "é" * 5000}).encode(), 422),  # kept in the row: was a 503
        (b"{" + b" " * (1024 * 1024) + b"}", 413),
    ],
)
def test_bad_start_is_refused_and_nothing_is_stored(storage_env, body, status):
    orch = Recorder()
    with pytest.raises(ApiError) as raised:
        service.start_job(service.parse_json(body), caller=None, orchestrations=orch)
    assert raised.value.status == status
    assert set(raised.value.body()) == {"status", "type", "message", "debug", "data"}
    assert orch.started == []
    assert store().list(None, 10, None)[0] == []


def test_local_runners_off_by_default(storage_env, monkeypatch):
    monkeypatch.delenv("ENABLE_LOCAL_RUNNERS")
    with pytest.raises(ApiError) as raised:
        service.start_job(GOOD, caller=None, orchestrations=Recorder())
    assert raised.value.status == 403 and "ENABLE_LOCAL_RUNNERS" in raised.value.message


def test_failed_orchestration_start_leaves_nothing(storage_env):
    class Broken(Recorder):
        def start(self, uid, input):
            raise ConnectionError("host down")

    with pytest.raises(ApiError) as raised:
        service.start_job(GOOD, caller=None, orchestrations=Broken(), idempotency_key="k")
    assert raised.value.status == 503
    assert store().list(None, 10, None)[0] == []
    # the idempotency key was released: a retry starts the job
    result = service.start_job(GOOD, caller=None, orchestrations=Recorder(), idempotency_key="k")
    assert not result.existed


@pytest.mark.parametrize(
    "uid, status", [("not-a-uuid", 400), ("../etc", 400), ("3f2b8c1e-0000-4000-8000-000000000000", 404)]
)
def test_bad_and_unknown_uids(storage_env, uid, status):
    for call in (
        lambda: service.get_job(uid),
        lambda: service.get_result(uid),
        lambda: service.stop_job(uid, None, Recorder()),
        lambda: service.report_progress(uid, b'{"percentage": 1, "logs": null, "status": null}', "true"),
    ):
        with pytest.raises(ApiError) as raised:
            call()
        assert raised.value.status == status


def test_idempotent_start(storage_env):
    orch = Recorder()
    first = service.start_job(GOOD, caller=None, orchestrations=orch, idempotency_key="abc")
    again = service.start_job(GOOD, caller=None, orchestrations=orch, idempotency_key="abc")
    assert again.existed and again.uid == first.uid and orch.started == [first.uid]


def test_result_before_end_is_409(storage_env):
    started = service.start_job(GOOD, caller=None, orchestrations=Recorder())
    with pytest.raises(ApiError) as raised:
        service.get_result(started.uid)
    assert raised.value.status == 409 and "not finished" in raised.value.message


def test_progress_semantics(storage_env):
    uid = service.start_job(GOOD, caller=None, orchestrations=Recorder()).uid
    token = store().get(uid).job_token
    put = lambda body, overwrite: service.report_progress(
        uid,
        json.dumps(body).encode(),
        overwrite,  # noqa: E731
        job_token=token,
    )
    assert put({"percentage": 0.1, "logs": "a\n\nb", "status": "running"}, "false") == {"response": "OK"}
    body = service.get_job(uid)
    assert body["log"] == ["a", "b"] and body["percentage"] == 0.1 and body["status"] == "running"
    put({"percentage": None, "logs": ["c"], "status": None}, "false")
    assert service.get_job(uid)["log"] == ["a", "b", "c"]
    put({"percentage": None, "logs": "only line", "status": None}, "true")
    assert service.get_job(uid)["log"] == ["only line"]
    for bad, overwrite in (
        ({"percentage": "x", "logs": None, "status": None}, "true"),
        ({"percentage": None, "logs": None, "status": "nope"}, "true"),
        ({"percentage": None, "logs": 5, "status": None}, "true"),
        ({"percentage": None, "logs": None, "status": None}, None),
        ({"percentage": None, "logs": None, "status": None}, "maybe"),
    ):
        with pytest.raises(ApiError) as raised:
            put(bad, overwrite)
        assert raised.value.status == 422


def test_authorization_only_starter_may_stop(storage_env):
    uid = service.start_job(GOOD, caller=Who("alice"), orchestrations=Recorder()).uid
    assert service.get_job(uid, Who("alice"))["triggeredBy"] == "alice"
    for call in (
        lambda: service.stop_job(uid, Who("mallory"), Recorder()),
        lambda: service.get_result(uid, Who("mallory")),
        lambda: service.get_job(uid, None),
    ):
        with pytest.raises(ApiError) as raised:
            call()
        assert raised.value.status == 403


def test_progress_needs_the_job_token_or_the_identified_starter(storage_env):
    body = b'{"percentage": 0.05, "logs": null, "status": null}'
    anonymous_job = service.start_job(GOOD, caller=None, orchestrations=Recorder()).uid
    for token in (None, "wrong-token"):
        with pytest.raises(ApiError) as raised:
            service.report_progress(anonymous_job, body, "true", None, token)
        assert raised.value.status == 403 and "token" in raised.value.message
    owned = service.start_job(GOOD, caller=Who("alice"), orchestrations=Recorder()).uid
    assert service.report_progress(owned, body, "true", Who("alice")) == {"response": "OK"}
    with pytest.raises(ApiError):
        service.report_progress(owned, body, "true", Who("mallory"))
    token = store().get(owned).job_token
    assert service.report_progress(owned, body, "true", Who("mallory"), token) == {"response": "OK"}
    assert token not in json.dumps(service.get_job(owned, Who("alice")))
