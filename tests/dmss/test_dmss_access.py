"""Who may read and stop a DMSS job: DMSS decides, asked with the caller's own credential, and the answer is
remembered a short while per caller and job. Real Azurite, stand-in DMSS (per-document ACLs after DMSS's
src/authentication/access_control.py)."""

from __future__ import annotations

import json
import logging

import pytest

from shared import service
from shared.dmss import access as dmss_access
from shared.dmss.access import DmssAccess, acl_document_of, has_access
from shared.platform.lazy import Plugins
from shared.dmss.start import start_from_address
from shared.jobs import access
from shared.platform import clock
from shared.platform.errors import ApiError
from shared.platform.identity import caller_from_headers
from tests.standins.dmss import TokenInfo, make_jwt

JOB = "dmss://WorkflowDS/Blueprints/Job"
GOOD = {"type": "JOBCORE:Job", "runner": {"type": "JOBCORE:Shell", "script": "true"}}


class Orchestrations:
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, uid, input):
        self.started.append(uid)

    def raise_stop(self, uid):
        self.stopped.append(uid)


# ---- DMSS's rule, pure ------------------------------------------------------------------------------------
ACL = {"owner": "alice", "roles": {"team": "WRITE", "viewers": "READ"}, "users": {"carol": "WRITE"}, "others": "NONE"}


@pytest.mark.parametrize(
    "user, read, write",
    [
        ({"user_id": "alice", "roles": [], "scope": "WRITE"}, True, True),  # the owner
        ({"user_id": "alice", "roles": [], "scope": "READ"}, True, False),  # a read-only token: scope comes first
        ({"user_id": "bob", "roles": [], "scope": "WRITE"}, False, False),
        ({"user_id": "bob", "roles": ["viewers"], "scope": "WRITE"}, True, False),
        ({"user_id": "bob", "roles": ["viewers", "team"], "scope": "WRITE"}, True, True),
        ({"user_id": "carol", "roles": [], "scope": "WRITE"}, True, True),
        ({"user_id": "carol", "roles": [], "scope": "NONE"}, False, False),
        ({"user_id": "nologin", "roles": [], "scope": "WRITE"}, True, True),  # DMSS with authentication off
    ],
)
def test_has_access_is_dmss_rule(user, read, write):
    assert has_access(ACL, user, "READ") is read and has_access(ACL, user, "WRITE") is write


def test_others_and_defaults():
    bob = {"user_id": "bob", "roles": []}  # no scope: DMSS's default, WRITE
    assert has_access({"owner": "alice", "others": "READ"}, bob, "READ")
    assert not has_access({"owner": "alice", "others": "READ"}, bob, "WRITE")
    assert has_access({"owner": "alice"}, bob, "READ")  # others defaults to READ, as in AccessControlList
    assert has_access({"owner": "alice", "others": "WRITE"}, bob, "WRITE")


def test_acl_document_of():
    assert acl_document_of("dmss://DS/$doc.study.jobs[0]", {}) == "dmss://DS/$doc"
    assert acl_document_of("dmss://DS/$doc.job", {"_id": "child"}) == "dmss://DS/$child"  # a stored document
    assert acl_document_of("dmss://DS/Root/Sub/Entity", {"_id": "e1"}) == "dmss://DS/$e1"
    assert acl_document_of("dmss://DS/Root/Sub/Entity.job", {}) is None  # looked up when needed


# ---- through the service ----------------------------------------------------------------------------------
@pytest.fixture
def delegated(monkeypatch):
    """The DMSS delegate registered as function_app registers it; the process's own list is put back after."""
    monkeypatch.setattr(access, "_delegates", Plugins())
    access.add_delegate(DmssAccess())
    dmss_access.forget()
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "auto")
    yield
    dmss_access.forget()


@pytest.fixture
def manual(monkeypatch):
    previous = clock.get_clock()
    fake = clock.ManualClock()
    clock.set_clock(fake)
    yield fake
    clock.set_clock(previous)


def who(dmss, name: str, **issue) -> dict:
    return {"Access-Key": dmss.issue_token(subject=name, **issue)}


def caller(headers: dict):
    return caller_from_headers(headers)


def started_job(dmss, alice_headers, orchestrations=None, **document) -> tuple[str, str]:
    doc = dmss.put(
        "DS",
        {
            "type": JOB,
            "name": "shared",
            "status": "not started",
            "runner": {"type": "JOBCORE:Shell", "script": "sleep 60"},
        },
        **document,
    )
    result = start_from_address(
        f"DS/${doc}", alice_headers, caller=caller(alice_headers), orchestrations=orchestrations or Orchestrations()
    )
    return result.uid, doc


def access_calls(dmss, headers: dict) -> list:
    key = headers.get("Access-Key")
    return [r for r in dmss.requests if r.access_key == key and r.endpoint in ("get", "whoami", "acl")]


def test_a_reader_may_read_a_writer_may_stop(storage_env, dmss, delegated):
    alice = who(dmss, "alice")
    uid, doc = started_job(dmss, alice)
    dmss.set_acl("DS", doc, owner="alice", users={"bob": "READ", "carol": "WRITE"}, others="NONE")
    bob, carol, mallory = who(dmss, "bob"), who(dmss, "carol"), who(dmss, "mallory")

    assert service.get_job(uid, caller(bob))["uid"] == uid
    with pytest.raises(ApiError) as refused:
        service.get_result(uid, caller(mallory))
    assert refused.value.status == 403 and refused.value.message == "The requested operation requires 'READ' privileges"
    with pytest.raises(ApiError) as refused:
        service.stop_job(uid, caller(bob), Orchestrations())
    assert refused.value.status == 403 and "'WRITE' privileges" in refused.value.message
    assert service.get_job(uid, caller(alice))["status"] == "starting"  # nothing of that landed

    stopped = service.stop_job(uid, caller(carol), Orchestrations())
    assert stopped["status"] == "removed"
    assert service.get_job(uid, caller(bob))["message"].startswith("stopped by")
    with pytest.raises(ApiError) as refused:  # progress stays the job's own (or its starter's)
        service.report_progress(
            uid, json.dumps({"percentage": 0.5, "logs": None, "status": None}).encode(), "false", caller(carol)
        )
    assert refused.value.status == 403


def test_a_caller_dmss_refuses_gets_dmss_status_and_message(storage_env, dmss, delegated):
    alice = who(dmss, "alice")
    uid, doc = started_job(dmss, alice)
    cases = {
        "expired": (who(dmss, "bob", ttl_seconds=-1), 401, "Access key has expired"),
        "unknown key": ({"Access-Key": "DMSS_never_issued"}, 401, "Invalid access key"),
        "expired jwt": ({"Authorization": f"Bearer {make_jwt('bob', expires_in=-60)}"}, 401, "Token has expired"),
    }
    dmss.limit("dora", ["OTHER"])
    cases["other data source"] = (who(dmss, "dora"), 403, "'dora' is missing the privilege to access data source 'DS'")
    for name, (headers, status, message) in cases.items():
        with pytest.raises(ApiError) as refused:
            service.get_job(uid, caller(headers))
        assert (refused.value.status, refused.value.message) == (status, message), name
    with pytest.raises(ApiError) as refused:
        service.get_job(uid, caller({}))
    assert refused.value.status == 401 and "DMSS credentials" in refused.value.message
    dmss.put("DS", {"type": "T"}, doc_id=doc)  # the entity replaced by something else: still readable
    assert service.get_job(uid, caller(who(dmss, "erin")))["uid"] == uid


def test_a_bearer_caller_is_asked_about_with_the_bearer_alone(storage_env, dmss, delegated):
    uid, doc = started_job(dmss, who(dmss, "alice"))
    dmss.set_acl("DS", doc, owner="alice", users={"bob": "WRITE"}, others="NONE")
    bob = {"Authorization": f"Bearer {make_jwt('bob')}"}
    assert service.get_job(uid, caller(bob))["uid"] == uid
    assert service.stop_job(uid, caller(bob), Orchestrations())["status"] == "removed"
    asked = [
        r for r in dmss.requests if r.endpoint in ("get", "whoami", "acl") and r.bearer and r.bearer.startswith("ey")
    ]
    assert {r.endpoint for r in asked} == {"get", "whoami", "acl"}
    assert all(r.access_key is None for r in asked)  # a JWT sent as Access-Key would be refused by DMSS


def test_roles_count(storage_env, dmss, delegated):
    uid, doc = started_job(dmss, who(dmss, "alice"))
    dmss.set_acl("DS", doc, owner="alice", roles={"operators": "WRITE"}, others="READ")
    dmss.set_roles("olga", ["operators"])
    with pytest.raises(ApiError):
        service.stop_job(uid, caller(who(dmss, "bob")), Orchestrations())
    assert service.stop_job(uid, caller(who(dmss, "olga")), Orchestrations())["status"] == "removed"


def test_polling_every_five_seconds_asks_dmss_once_a_minute(storage_env, dmss, delegated, manual):
    alice = who(dmss, "alice")
    uid, doc = started_job(dmss, alice)
    bob = who(dmss, "bob")
    for _ in range(24):  # two minutes of the web app's polling
        service.get_job(uid, caller(bob))
        manual.advance(5)
    assert len(access_calls(dmss, bob)) == 2
    assert access_calls(dmss, alice) == [r for r in access_calls(dmss, alice) if r.endpoint == "get"][:1]  # start
    for _ in range(12):  # the starter is never asked about
        service.get_job(uid, caller(alice))
    assert len([r for r in dmss.requests if r.access_key == alice["Access-Key"] and r.endpoint == "get"]) == 1


def test_refusals_are_remembered_failures_are_not(storage_env, dmss, delegated, manual):
    uid, doc = started_job(dmss, who(dmss, "alice"))
    dmss.set_acl("DS", doc, owner="alice", others="NONE")
    mallory = who(dmss, "mallory")
    for _ in range(5):
        with pytest.raises(ApiError):
            service.get_job(uid, caller(mallory))
    assert len(access_calls(dmss, mallory)) == 1
    bob = who(dmss, "bob")
    dmss.fail("get", 500, times=1)
    with pytest.raises(ApiError) as failed:
        service.get_job(uid, caller(bob))
    assert failed.value.status == 502
    dmss.set_acl("DS", doc, owner="alice", users={"bob": "READ"}, others="NONE")
    assert service.get_job(uid, caller(bob))["uid"] == uid  # asked again: a failure is not an answer


def test_the_ttl_is_a_setting(storage_env, dmss, delegated, manual, monkeypatch):
    monkeypatch.setenv("DMSS_ACCESS_CACHE_SECONDS", "0")
    uid, _ = started_job(dmss, who(dmss, "alice"))
    bob = who(dmss, "bob")
    for _ in range(3):
        service.get_job(uid, caller(bob))
    assert len(access_calls(dmss, bob)) == 3


def test_the_cache_holds_no_token_and_logs_none(storage_env, dmss, delegated, caplog):
    caplog.set_level(logging.DEBUG)
    canary = "DMSS_canary0123456789abcdefMALLORY"
    dmss.tokens[canary] = TokenInfo("mallory", "WRITE", dmss.now() + 3600)
    uid, doc = started_job(dmss, who(dmss, "alice"))
    dmss.set_acl("DS", doc, owner="alice", others="NONE")
    with pytest.raises(ApiError) as refused:
        service.stop_job(uid, caller({"Access-Key": canary}), Orchestrations())
    assert canary not in json.dumps(refused.value.body())
    remembered = repr(dmss_access._answers._entries)
    assert canary not in remembered and len(dmss_access._answers._entries) == 1
    assert canary not in caplog.text and canary not in repr(caller({"Access-Key": canary}))


def test_a_package_path_job_is_checked_against_its_documents_acl(storage_env, dmss, delegated):
    entity = dmss.put(
        "DS",
        {
            "type": "dmss://DS/Blueprints/Holder",
            "name": "Entity",
            "job": {"type": JOB, "status": "not started", "runner": {"type": "JOBCORE:Shell", "script": "sleep 60"}},
        },
    )
    dmss.add_root_package("DS", "Root", [dmss.storage_ref(entity)])
    alice = who(dmss, "alice")
    uid = start_from_address("DS/Root/Entity.job", alice, caller=caller(alice), orchestrations=Orchestrations()).uid
    dmss.set_acl("DS", entity, owner="alice", users={"carol": "WRITE"}, others="READ")
    with pytest.raises(ApiError) as refused:
        service.stop_job(uid, caller(who(dmss, "bob")), Orchestrations())
    assert refused.value.status == 403
    assert service.stop_job(uid, caller(who(dmss, "carol")), Orchestrations())["status"] == "removed"
    acl_reads = [r.address for r in dmss.requests if r.endpoint == "acl"]
    assert acl_reads and set(acl_reads) == {f"dmss://DS/${entity}"}


def test_inline_jobs_stay_owner_only_and_never_ask_dmss(storage_env, dmss, delegated):
    alice = who(dmss, "alice")
    uid = service.start_job(GOOD, caller=caller(alice), orchestrations=Orchestrations()).uid
    with pytest.raises(ApiError) as refused:
        service.get_job(uid, caller(who(dmss, "bob")))
    assert refused.value.status == 403 and "only its starter" in refused.value.message
    assert [r for r in dmss.requests if r.endpoint != "token"] == []


def test_without_the_delegate_a_dmss_job_is_owner_only(storage_env, dmss, monkeypatch):
    monkeypatch.setattr(access, "_delegates", Plugins())
    uid, _ = started_job(dmss, who(dmss, "alice"))
    with pytest.raises(ApiError) as refused:
        service.get_job(uid, caller(who(dmss, "bob")))
    assert refused.value.status == 403


def test_runs_of_a_dmss_recurring_job_have_the_recurring_jobs_rights(storage_env, dmss, delegated):
    from datetime import datetime, timezone

    from shared.schedules import runs as scheduling

    template = {"type": JOB, "label": "run", "runner": {"type": "JOBCORE:Shell", "script": "true"}}
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
    alice = who(dmss, "alice")
    schedule = start_from_address(f"DS/${doc}", alice, caller=caller(alice), orchestrations=Orchestrations()).uid
    run = scheduling.start_run(
        Orchestrations(), schedule, datetime(2026, 5, 4, 8, tzinfo=timezone.utc), template, f"Schedule ({schedule})"
    )
    dmss.set_acl("DS", doc, owner="alice", users={"bob": "READ", "carol": "WRITE"}, others="NONE")
    assert service.get_job(run, caller(who(dmss, "bob")))["uid"] == run
    assert service.get_job(schedule, caller(who(dmss, "bob")))["kind"] == "recurring"
    with pytest.raises(ApiError) as refused:
        service.get_job(run, caller(who(dmss, "mallory")))
    assert refused.value.status == 403
    with pytest.raises(ApiError) as refused:
        service.stop_job(run, caller(who(dmss, "bob")), Orchestrations())
    assert refused.value.status == 403 and "'WRITE' privileges" in refused.value.message
    assert service.stop_job(run, caller(who(dmss, "carol")), Orchestrations())["status"] == "removed"
    assert [r.address for r in dmss.requests if r.endpoint == "acl"] == [f"dmss://DS/${doc}"] * 2
