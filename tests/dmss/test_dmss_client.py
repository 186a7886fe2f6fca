"""shared.dmss.client: the five endpoints against the stand-in, error mapping, and no token ever leaking."""

from __future__ import annotations

import logging
import traceback

import pytest

from shared.dmss import client
from shared.platform.errors import (
    ApiError,
    BadGateway,
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from tests.standins.dmss import make_jwt
from tests.support.ports import free_port

JOB = {"type": "dmss://WorkflowDS/Blueprints/Job", "status": "not started", "label": "x"}


def test_get_document_sends_both_headers_and_an_encoded_address(dmss, token):
    doc_id = dmss.put("DS", JOB)
    assert client.get_document(f"dmss://DS/${doc_id}", 1, token=token)["label"] == "x"
    record = dmss.requests[-1]
    assert record.bearer == token and record.access_key == token
    assert record.address == f"dmss://DS/${doc_id}"
    assert record.params == {"depth": "1"}


def test_update_document_full_and_partial(dmss, token):
    doc_id = dmss.put("DS", {**JOB, "keep": 1})
    data = client.update_document(f"dmss://DS/${doc_id}", {"status": "running"}, True, token=token)
    assert data["status"] == "running" and data["keep"] == 1
    assert dmss.requests[-1].params == {"partial_update": "true"}
    assert dmss.requests[-1].form == {"data": '{"status": "running"}'}
    data = client.update_document(f"dmss://DS/${doc_id}", {"type": "T", "only": 2}, token=token)
    assert data == {"type": "T", "only": 2, "_id": doc_id}
    assert dmss.requests[-1].params == {"partial_update": "false"}


def test_add_document_returns_the_uid(dmss, token):
    doc_id = dmss.put("DS", {**JOB, "results": []})
    uid = client.add_document(f"dmss://DS/${doc_id}.results", {"type": "R"}, token=token)
    assert uid.startswith("dmss://DS/$")
    assert dmss.document("DS", doc_id)["results"][0]["type"] == "R"
    assert "document" in dmss.requests[-1].form


def test_exchange_token_sends_only_the_bearer(dmss):
    jwt_value = make_jwt("bob")
    token = client.exchange_token(jwt_value, 600)
    assert token.startswith("DMSS_")
    record = dmss.requests[-1]
    assert record.bearer == jwt_value and record.access_key is None
    assert record.params == {"scope": "WRITE", "time_to_live": "600"}
    assert dmss.tokens[token].subject == "bob"


def test_renew_with_access_key(dmss, token):
    fresh = client.renew_with_access_key(token, 60)
    assert fresh != token and dmss.tokens[fresh].subject == "alice"
    assert dmss.requests[-1].access_key == token and dmss.requests[-1].bearer is None


def test_healthcheck(dmss):
    assert client.healthcheck() is True
    dmss.fail("health", 503)
    with pytest.raises(BadGateway):
        client.healthcheck()


def test_one_session_per_process(dmss, token):
    assert client.get_session() is client.get_session()
    client.reset_session()
    session = client.get_session()
    client.healthcheck()
    assert client.get_session() is session


# --- error mapping ----------------------------------------------------------------------------------------


def test_401_without_a_valid_token(dmss):
    doc_id = dmss.put("DS", JOB)
    with pytest.raises(Unauthorized) as info:
        client.get_document(f"DS/${doc_id}", token="DMSS_unknown")
    assert info.value.status == 401 and info.value.message == "Invalid access key"


def test_401_with_an_expired_token(dmss, token):
    doc_id = dmss.put("DS", JOB)
    dmss.expire(token)
    with pytest.raises(Unauthorized, match="expired"):
        client.get_document(f"DS/${doc_id}", token=token)


def test_403_passes_dmss_message(dmss, token):
    dmss.add_data_source("SECRET")
    doc_id = dmss.put("SECRET", JOB)
    dmss.limit("alice", ["DS"])
    with pytest.raises(Forbidden) as info:
        client.get_document(f"SECRET/${doc_id}", token=token)
    assert info.value.status == 403 and "SECRET" in info.value.message
    assert info.value.body()["type"] == "MissingPrivilegeException"


def test_404_passes_dmss_message(dmss, token):
    with pytest.raises(NotFound) as info:
        client.get_document("DS/$missing", token=token)
    assert info.value.status == 404 and "missing" in info.value.message


@pytest.mark.parametrize("status, cls", [(400, BadRequest), (422, ValidationFailed), (418, ApiError)])
def test_other_4xx_keep_their_status(dmss, token, status, cls):
    dmss.fail("get", status, message="nope")
    with pytest.raises(cls) as info:
        client.get_document("DS/$x", token=token)
    assert info.value.status == status and info.value.message == "nope"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_bad_gateway(dmss, token, status):
    dmss.fail("get", status, message="database down")
    with pytest.raises(BadGateway) as info:
        client.get_document("DS/$x", token=token)
    assert info.value.status == 502
    assert "database down" in info.value.message and str(status) in info.value.message


def test_timeout_is_503_naming_the_timeout(dmss, token, monkeypatch):
    monkeypatch.setenv("DMSS_TIMEOUT_SECONDS", "0.2")
    dmss.slow("get", 1.0)
    with pytest.raises(ServiceUnavailable) as info:
        client.get_document("DS/$x", token=token)
    assert info.value.status == 503
    assert info.value.message == "DMSS did not answer within 0.2 s"


def test_dropped_connection_is_503(dmss, token):
    dmss.drop("put")
    with pytest.raises(ServiceUnavailable) as info:
        client.update_document("DS/$x", {"a": 1}, True, token=token)
    assert info.value.message.startswith("DMSS did not answer within 2 s")


def test_refused_connection_is_503(monkeypatch, token):
    monkeypatch.setenv("DMSS_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable, match="DMSS did not answer within"):
        client.get_document("DS/$x", token=token)


def test_non_json_answer_is_bad_gateway(dmss, token, monkeypatch):
    # the healthcheck route answers text: point the document path at a server that answers text
    monkeypatch.setattr(client.DmssClient, "_documents_path", staticmethod(lambda address: "/api/healthcheck"))
    with pytest.raises(BadGateway, match="not JSON"):
        client.get_document("DS/$x", token=token)


def test_missing_token_is_refused_before_calling(dmss):
    with pytest.raises(Unauthorized):
        client.get_document("DS/$x", token="")
    assert dmss.requests == []


# --- the token never leaks ------------------------------------------------------------------------------


def _all_text(error: BaseException) -> str:
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, ApiError):
        parts += [str(error.body()), error.debug, repr(error.data)]
    seen = error.__cause__ or error.__context__
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("fault", ["404", "401", "403", "500-echo", "422-echo", "timeout", "drop", "refused"])
def test_canary_token_never_in_errors_or_logs(dmss, canary, fault, monkeypatch, caplog):
    CANARY = canary
    caplog.set_level(logging.DEBUG)
    dmss.add_data_source("PRIVATE")
    address = "DS/$missing"
    if fault == "401":
        dmss.expire(CANARY)
    elif fault == "403":
        dmss.limit("alice", ["DS"])
        address = "PRIVATE/$x"
    elif fault == "500-echo":
        dmss.fail("*", 500, message=f"crash while checking key {CANARY}")
    elif fault == "422-echo":
        dmss.fail("*", 422, message=f"bad key {CANARY} in Access-Key")
    elif fault == "timeout":
        monkeypatch.setenv("DMSS_TIMEOUT_SECONDS", "0.2")
        dmss.slow("*", 1.0)
    elif fault == "drop":
        dmss.drop("*")
    elif fault == "refused":
        monkeypatch.setenv("DMSS_URL", f"http://127.0.0.1:{free_port()}")
    calls = [
        lambda: client.get_document(address, token=CANARY),
        lambda: client.update_document(address, {"a": 1}, True, token=CANARY),
        lambda: client.add_document(address, {"type": "T"}, token=CANARY),
        lambda: client.renew_with_access_key(CANARY, 60),
        lambda: client.exchange_token(CANARY, 60),
    ]
    raised = 0
    for call in calls:
        try:
            result = call()
        except ApiError as error:
            raised += 1
            assert CANARY not in _all_text(error)
        else:
            assert CANARY not in repr(result)
    assert raised >= 3
    assert CANARY not in caplog.text
    assert "SECRET" not in caplog.text  # the canary's tail: not even a piece of it
    assert CANARY not in repr(client.client())


def test_scrubbed_message_keeps_the_rest(dmss, canary):
    CANARY = canary
    dmss.fail("get", 500, message=f"key {CANARY} broke")
    with pytest.raises(BadGateway) as info:
        client.get_document("DS/$x", token=CANARY)
    assert "key *** broke" in info.value.message
