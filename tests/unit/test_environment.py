import pytest

from shared.platform import environment
from shared.platform.errors import ValidationFailed


def test_key_value_items_and_service_values_win(monkeypatch):
    monkeypatch.setenv("DM_JOB_URL", "http://api/jobs")
    env = environment.build("u1", ["A=1", "B=x=y", "JOB_UID=spoofed"])
    assert env["A"] == "1" and env["B"] == "x=y"
    assert env["JOB_UID"] == "u1" and env["DM_JOB_URL"] == "http://api/jobs"


def test_bare_names_only_from_the_allow_list(monkeypatch):
    monkeypatch.setenv("SAFE_ONE", "v1")
    monkeypatch.setenv("AzureWebJobsStorage", "secret-connection")
    monkeypatch.setenv("JOB_ENV_PASSTHROUGH", "SAFE_ONE, OTHER")
    assert environment.parse_items(["SAFE_ONE"]) == {"SAFE_ONE": "v1"}
    assert environment.parse_items(["OTHER"]) == {}
    with pytest.raises(ValidationFailed, match="JOB_ENV_PASSTHROUGH") as raised:
        environment.parse_items(["AzureWebJobsStorage"])
    assert "secret-connection" not in str(raised.value.body())


def test_bad_names_are_refused_without_echoing_values():
    with pytest.raises(ValidationFailed) as raised:
        environment.parse_items(["1BAD=canary-value-123"])
    assert "canary-value-123" not in str(raised.value.body())


def test_export_list(monkeypatch):
    monkeypatch.setenv("REGION", "norway")
    monkeypatch.setenv("JOB_ENV_EXPORT", "REGION,MISSING")
    assert environment.build("u", [])["REGION"] == "norway"


def test_redaction_and_scrubbing():
    assert environment.redacted(["A=secret", "B"]) == ["A=***", "B=***"]
    secrets = environment.secret_values(["A=canary-secret-1", "B=no"], ["token-xyz-9"])
    assert "no" not in secrets
    lines = environment.scrub(["value canary-secret-1 and token-xyz-9", "clean"], secrets)
    assert lines == ["value *** and ***", "clean"]

