"""shared.dmss.jobs: credentials, fetching the job, its environment, write-back, result delivery, renewal."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from shared.dmss import jobs as dmss_jobs
from shared.platform.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from shared.jobs.status import JobStatus
from tests.standins.dmss import PACKAGE, REFERENCE, make_jwt

JOB_TYPE = "dmss://WorkflowDS/Blueprints/Job"


def job_entity(**extra):
    return {
        "type": JOB_TYPE,
        "label": "Fetch",
        "status": "not started",
        "outputTarget": "dmss://DS/$out.results",
        "applicationInput": {"type": REFERENCE, "referenceType": "link", "address": "~.~.~.sce"},
        "runner": {"type": "JOBCORE:Shell", "script": "echo hi", "customThing": {"x": [1, 2]}},
        "unknownAttribute": {"deep": [1, {"a": "b"}]},
        **extra,
    }


@pytest.fixture
def study(dmss):
    """$doc with a job at $doc.study.jobs[0] (the dm-job.md layout)."""
    return dmss.put(
        "DS",
        {"type": "Study", "sce": {"type": "Scenario", "v": 1}, "study": {"type": "S", "jobs": [job_entity()]}},
        doc_id="doc",
    )


# --- credentials --------------------------------------------------------------------------------------


def test_access_key_is_used_as_is_without_calling_dmss(dmss):
    assert dmss_jobs.credentials_from_request({"Access-Key": "DMSS_abc"}) == "DMSS_abc"
    assert dmss_jobs.credentials_from_request({"access-key": "DMSS_abc", "Authorization": "Bearer x"}) == "DMSS_abc"
    assert dmss.requests == []


def test_bearer_is_exchanged_for_a_write_token_with_the_configured_ttl(dmss, monkeypatch):
    monkeypatch.setenv("DMSS_TOKEN_TTL_SECONDS", "1234")
    token = dmss_jobs.credentials_from_request({"authorization": "bearer " + make_jwt("carol")})
    assert token.startswith("DMSS_") and dmss.tokens[token].subject == "carol"
    assert dmss.token_requests == [{"subject": "carol", "via": "jwt", "scope": "WRITE", "time_to_live": 1234}]


def test_default_ttl_is_30_days(dmss):
    dmss_jobs.credentials_from_request({"Authorization": "Bearer " + make_jwt()})
    assert dmss.token_requests[-1]["time_to_live"] == 30 * 24 * 3600


@pytest.mark.parametrize(
    "headers", [{}, None, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"Access-Key": "  "}]
)
def test_no_credentials(dmss, headers):
    assert dmss_jobs.credentials_from_request(headers) is None
    assert dmss.requests == []


def test_expired_jwt_is_401(dmss):
    with pytest.raises(Unauthorized, match="expired"):
        dmss_jobs.credentials_from_request({"Authorization": "Bearer " + make_jwt(expires_in=-10)})


# --- fetch -------------------------------------------------------------------------------------------


def test_fetch_job_entity_from_an_encoded_address(dmss, token, study):
    entity, address = dmss_jobs.fetch_job_entity(quote("dmss://DS/$doc.study.jobs[0]", safe=""), token)
    assert address == "dmss://DS/$doc.study.jobs[0]"
    assert entity["label"] == "Fetch" and entity["unknownAttribute"] == {"deep": [1, {"a": "b"}]}
    assert dmss.requests[-1].params == {"depth": "1"}


@pytest.mark.parametrize(
    "entity_type",
    [
        JOB_TYPE,
        "dmss://WorkflowDS/Blueprints/RecurringJob",
        "JOBCORE:Job",
        "jobcore:RecurringJob",
        "WorkflowDS/Blueprints/Job",
    ],
)
def test_job_types_and_aliases(dmss, token, entity_type):
    doc = dmss.put("DS", job_entity(type=entity_type))
    entity, _ = dmss_jobs.fetch_job_entity(f"DS/${doc}", token)
    assert entity["type"] == entity_type  # returned as DMSS has it


@pytest.mark.parametrize("entity_type", ["dmss://WorkflowDS/Blueprints/JobHandler", "Study", None, 3])
def test_other_types_are_400(dmss, token, entity_type):
    doc = dmss.put("DS", {"type": entity_type, "x": 1})
    with pytest.raises(BadRequest) as info:
        dmss_jobs.fetch_job_entity(f"DS/${doc}", token)
    assert info.value.status == 400 and "a job must be of type" in info.value.message


def test_fetch_errors_pass_through(dmss, token):
    with pytest.raises(NotFound):
        dmss_jobs.fetch_job_entity("DS/$nope", token)
    with pytest.raises(BadRequest, match="Invalid DMSS address"):
        dmss_jobs.fetch_job_entity("DS/$nope..x", token)
    dmss.add_data_source("OTHER")
    dmss.limit("alice", ["DS"])
    with pytest.raises(Forbidden):
        dmss_jobs.fetch_job_entity("OTHER/$x", token)


# --- environment ----------------------------------------------------------------------------------------


def test_job_environment(dmss, token, study, monkeypatch):
    monkeypatch.setenv("DM_JOB_URL", "https://jobs.example.com/api/jobs/")
    entity, address = dmss_jobs.fetch_job_entity("DS/$doc.study.jobs[0]", token)
    env = dmss_jobs.job_environment(address, entity, token, "uid-1")
    assert env == {
        "DMSS_TOKEN": token,
        "DMSS_URL": dmss.url,
        "DM_JOB_URL": "https://jobs.example.com/api/jobs",
        "JOB_DMSS_ID": "dmss://DS/$doc.study.jobs[0]",
        "JOB_UID": "uid-1",
        "JOB_INPUT_ADDRESS": "dmss://DS/$doc.sce",
    }
    # the input address works against DMSS as it is
    assert dmss.lookup(env["JOB_INPUT_ADDRESS"]) == {"type": "Scenario", "v": 1}


def test_public_dmss_url_wins(dmss, token, monkeypatch):
    monkeypatch.setenv("PUBLIC_DMSS_URL", "https://dmss.example.com/")
    env = dmss_jobs.job_environment("DS/$a", {"type": JOB_TYPE}, token, "u")
    assert env["DMSS_URL"] == "https://dmss.example.com"
    assert "JOB_INPUT_ADDRESS" not in env


@pytest.mark.parametrize(
    "application_input, expected",
    [
        ({"type": REFERENCE, "referenceType": "link", "address": "^.sce"}, "dmss://DS/$doc.sce"),
        ({"type": REFERENCE, "referenceType": "link", "address": "$other"}, "dmss://DS/$other"),
        ({"type": REFERENCE, "referenceType": "storage", "address": "dmss://X/$y.z"}, "dmss://X/$y.z"),
        ({"type": "dmss://system/SIMOS/Reference", "address": "~.in"}, "dmss://DS/$doc.jobs[1].in"),
        ({"referenceType": "link", "address": "~.~"}, "dmss://DS/$doc"),
        ({"type": "Scenario", "v": 2}, "dmss://DS/$doc.jobs[1].applicationInput"),  # inline input
    ],
)
def test_input_address_forms(application_input, expected):
    entity = {"type": JOB_TYPE, "applicationInput": application_input}
    assert dmss_jobs.input_address("dmss://DS/$doc.jobs[1]", entity) == expected


def test_bad_input_reference_is_400():
    entity = {"type": JOB_TYPE, "applicationInput": {"type": REFERENCE, "address": "~.~.~.~"}}
    with pytest.raises(BadRequest, match="above the document root"):
        dmss_jobs.job_environment("DS/$doc.jobs[1]", entity, "t", "u")
    entity = {"type": JOB_TYPE, "applicationInput": {"type": REFERENCE, "address": ""}}
    with pytest.raises(BadRequest, match="no address"):
        dmss_jobs.input_address("DS/$doc", entity)


# --- write-back ---------------------------------------------------------------------------------------


def test_write_back_keeps_unknown_attributes(dmss, token, study):
    address = "dmss://DS/$doc.study.jobs[0]"
    before = dmss.lookup(address)
    started = datetime(2024, 1, 10, 8, 0, 0, 123456, tzinfo=timezone.utc)
    dmss_jobs.write_back(address, token, {"uid": "u1", "status": JobStatus.STARTING, "started": started})
    after = dmss.lookup(address)
    assert after == {**before, "uid": "u1", "status": "starting", "started": "2024-01-10T08:00:00Z"}
    # the rest of the document is untouched too
    assert dmss.lookup("DS/$doc.sce") == {"type": "Scenario", "v": 1}
    write = dmss.writes[-1]
    assert write.partial_update is True
    assert write.data == {"uid": "u1", "status": "starting", "started": "2024-01-10T08:00:00Z"}


def test_write_back_does_not_clobber_what_the_job_wrote_meanwhile(dmss, token, study):
    address = "dmss://DS/$doc.study.jobs[0]"
    dmss.lookup(address)
    # the job writes its own attribute between our read and our write-back
    dmss.data_sources["DS"]["doc"]["study"]["jobs"][0]["progressNote"] = "half way"
    dmss_jobs.write_back(address, token, {"status": "completed", "ended": "2024-01-10T09:00:00Z"}, entity_type=JOB_TYPE)
    after = dmss.lookup(address)
    assert after["progressNote"] == "half way" and after["status"] == "completed"
    assert after["type"] == JOB_TYPE
    assert dmss.writes[-1].data["type"] == JOB_TYPE


def test_write_back_nothing_to_write_makes_no_call(dmss, token, study):
    assert dmss_jobs.write_back("DS/$doc.study.jobs[0]", token, {}) is None
    assert dmss.requests == [] and dmss.writes == []


def test_write_back_refuses_other_attributes(dmss, token):
    with pytest.raises(ValueError, match="runner"):
        dmss_jobs.write_back("DS/$doc", token, {"status": "running", "runner": {}})
    assert dmss.requests == []


def test_changed_attributes_only_reports_changes():
    last = {"uid": "u", "status": "running", "started": "2024-01-10T08:00:00Z"}
    assert dmss_jobs.changed_attributes(last, {"uid": "u", "status": JobStatus.RUNNING}) == {}
    assert dmss_jobs.changed_attributes(last, {"status": JobStatus.COMPLETED, "percentage": 3}) == {
        "status": "completed"
    }
    assert dmss_jobs.changed_attributes(None, {"ended": datetime(2024, 1, 1, tzinfo=timezone.utc)}) == {
        "ended": "2024-01-01T00:00:00Z"
    }


def test_polls_alone_do_not_write(dmss, token, study):
    """The pattern the service follows: write what changed, then poll with nothing changed: no writes."""
    address = "DS/$doc.study.jobs[0]"
    written: dict = {}
    for status in ["starting", "running", "running", "running", "completed", "completed"]:
        changes = dmss_jobs.changed_attributes(written, {"status": status})
        dmss_jobs.write_back(address, token, changes)
        written.update(changes)
    assert [w.data for w in dmss.writes] == [{"status": "starting"}, {"status": "running"}, {"status": "completed"}]


# --- result delivery ------------------------------------------------------------------------------------


@pytest.fixture
def out(dmss):
    return dmss.put("DS", {"type": "Results", "results": [], "single": None}, doc_id="out")


def test_deliver_to_a_list_appends(dmss, token, out, manual_clock):
    uid = dmss_jobs.deliver_result("dmss://DS/$out.results", token, {"type": "R", "v": 1})
    uid2 = dmss_jobs.deliver_result(quote("dmss://DS/$out.results", safe=""), token, {"type": "R", "v": 2})
    assert uid != uid2 and uid.startswith("dmss://DS/$")
    assert [r["v"] for r in dmss.lookup("DS/$out.results")] == [1, 2]


def test_deliver_to_an_attribute_sets_it(dmss, token, out, manual_clock):
    dmss_jobs.deliver_result("DS/$out.single", token, {"type": "R", "v": 3})
    assert dmss.lookup("DS/$out.single")["v"] == 3


def test_deliver_to_a_package(dmss, token, manual_clock):
    dmss.add_root_package("DS", "Results")
    dmss_jobs.deliver_result("DS/Results", token, {"type": "R", "name": "run1"})
    assert dmss.lookup("DS/Results/run1")["type"] == "R"
    with pytest.raises(dmss_jobs.ResultDeliveryFailed) as info:  # a 4xx: not retried
        dmss_jobs.deliver_result("DS/Results", token, {"type": "R", "name": "run1"}, attempts=3)
    assert info.value.status == 400 and "already has a child" in info.value.message
    assert manual_clock.now() == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_bare_data_source_only_takes_root_packages(dmss, token, manual_clock):
    with pytest.raises(dmss_jobs.ResultDeliveryFailed) as info:
        dmss_jobs.deliver_result("dmss://DS", token, {"type": "R"})
    assert info.value.status == 400 and "bare data source" in info.value.message
    assert dmss.requests == []
    uid = dmss_jobs.deliver_result("dmss://DS", token, {"type": PACKAGE, "name": "Out", "isRoot": True})
    assert uid


def test_retry_with_backoff_then_success(dmss, token, out, manual_clock):
    dmss.fail("post", 503, times=2)
    dmss.drop("post", times=1)
    start = manual_clock.now()
    uid = dmss_jobs.deliver_result("DS/$out.results", token, {"type": "R"}, attempts=5, backoff=1.5)
    assert uid
    assert (manual_clock.now() - start).total_seconds() == 1.5 + 3 + 6
    assert len(dmss.lookup("DS/$out.results")) == 1
    assert [r.endpoint for r in dmss.requests] == ["post"] * 4


def test_retry_then_failure_names_the_target_and_no_token(dmss, canary, out, manual_clock, caplog):
    caplog.set_level(logging.DEBUG)
    dmss.fail("post", 500, message=f"storage exploded for {canary}")
    start = manual_clock.now()
    with pytest.raises(dmss_jobs.ResultDeliveryFailed) as info:
        dmss_jobs.deliver_result("DS/$out.results", canary, {"type": "R"}, attempts=4, backoff=10, max_backoff=25)
    error = info.value
    assert error.status == 502
    assert "dmss://DS/$out.results" in error.message and "after 4 attempts" in error.message
    assert "storage exploded" in error.message
    assert canary not in str(error) and canary not in repr(error) and canary not in str(error.body())
    assert canary not in caplog.text
    assert (manual_clock.now() - start).total_seconds() == 10 + 20 + 25
    assert len(dmss.requests) == 4
    assert dmss.lookup("DS/$out.results") == []


def test_timeouts_are_retried(dmss, token, out, manual_clock, monkeypatch):
    monkeypatch.setenv("DMSS_TIMEOUT_SECONDS", "0.2")
    dmss.slow("post", 0.5, times=1)
    uid = dmss_jobs.deliver_result("DS/$out.results", token, {"type": "R"}, attempts=2, backoff=1)
    assert uid
    # at-least-once: the slow first POST landed after the client gave up, the retry added it again
    import time

    time.sleep(0.5)
    assert len(dmss.lookup("DS/$out.results")) == 2


def test_expired_token_is_not_retried(dmss, token, out, manual_clock):
    dmss.expire(token)
    with pytest.raises(dmss_jobs.ResultDeliveryFailed) as info:
        dmss_jobs.deliver_result("DS/$out.results", token, {"type": "R"}, attempts=5)
    assert info.value.status == 401 and len(dmss.requests) == 1


@pytest.mark.parametrize("result", [{}, {"type": ""}, {"v": 1}, [1], "x", None])
def test_result_must_be_an_object_with_a_type(dmss, token, result):
    with pytest.raises(BadRequest, match="'type'"):
        dmss_jobs.deliver_result("DS/$out.results", token, result)  # type: ignore[arg-type]


# --- token renewal for schedules --------------------------------------------------------------------------


def test_renewal_without_app_credentials_says_why(dmss):
    with pytest.raises(dmss_jobs.TokenRenewalImpossible) as info:
        dmss_jobs.renew_token_for_schedule("dmss://DS/$rec")
    assert "the job token expired and the app has no DMSS credentials (DMSS_APP_ACCESS_KEY)" in info.value.message
    assert info.value.status == 401
    assert dmss.requests == []


def test_renewal_with_the_app_key(dmss, monkeypatch):
    app_key = dmss.issue_token(subject="dm-job-app", ttl_seconds=10**8)
    monkeypatch.setenv("DMSS_APP_ACCESS_KEY", app_key)
    monkeypatch.setenv("DMSS_TOKEN_TTL_SECONDS", "86400")
    fresh = dmss_jobs.renew_token_for_schedule("dmss://DS/$rec")
    assert fresh != app_key and dmss.tokens[fresh].subject == "dm-job-app"
    assert dmss.token_requests[-1] == {"subject": "dm-job-app", "via": "token", "scope": "WRITE", "time_to_live": 86400}


def test_renewal_refused_app_key(dmss, monkeypatch, caplog):
    app_key = dmss.issue_token(subject="dm-job-app")
    dmss.revoke(app_key)
    monkeypatch.setenv("DMSS_APP_ACCESS_KEY", app_key)
    with pytest.raises(Unauthorized) as info:
        dmss_jobs.renew_token_for_schedule()
    assert "DMSS_APP_ACCESS_KEY" in info.value.message and app_key not in info.value.message
    assert app_key not in caplog.text


def test_call_with_token_renewal(dmss, monkeypatch, study):
    old = dmss.issue_token()
    dmss.expire(old)
    app_key = dmss.issue_token(subject="dm-job-app", ttl_seconds=10**8)
    monkeypatch.setenv("DMSS_APP_ACCESS_KEY", app_key)
    entity_and_address, used = dmss_jobs.call_with_token_renewal(
        lambda t: dmss_jobs.fetch_job_entity("DS/$doc.study.jobs[0]", t), old, schedule_address="DS/$doc"
    )
    assert used not in (old, app_key) and entity_and_address[1] == "dmss://DS/$doc.study.jobs[0]"
    # still valid: no renewal
    _, again = dmss_jobs.call_with_token_renewal(lambda t: dmss_jobs.fetch_job_entity("DS/$doc.study.jobs[0]", t), used)
    assert again == used


def test_call_with_token_renewal_without_key(dmss, study):
    old = dmss.issue_token()
    dmss.expire(old)
    with pytest.raises(dmss_jobs.TokenRenewalImpossible, match=r"\(DMSS_APP_ACCESS_KEY\)"):
        dmss_jobs.call_with_token_renewal(lambda t: dmss_jobs.fetch_job_entity("DS/$doc", t), old)


def test_error_classes_are_api_errors():
    assert issubclass(dmss_jobs.ResultDeliveryFailed, ApiError)
    assert dmss_jobs.TokenRenewalImpossible("x").body()["status"] == 401


def test_token_fingerprint():
    fingerprint = dmss_jobs.token_fingerprint("DMSS_abc")
    assert fingerprint.startswith("sha256:") and "DMSS_abc" not in fingerprint
    assert dmss_jobs.matches_fingerprint("DMSS_abc", fingerprint)
    assert not dmss_jobs.matches_fingerprint("DMSS_abd", fingerprint)
    assert not dmss_jobs.matches_fingerprint(None, fingerprint)
    assert not dmss_jobs.matches_fingerprint("DMSS_abc", None)
