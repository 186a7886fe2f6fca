import json

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


CANARY = "canary-7f3e-never-shown"


def test_every_value_a_job_receives_is_a_secret(monkeypatch):
    """K=V, passthrough, exported (JOB_ENV_EXPORT) and tokens: each is scrubbed; JOB_UID and DM_JOB_URL are not."""
    monkeypatch.setenv("DM_JOB_URL", "http://api/jobs")
    monkeypatch.setenv("PASSED", CANARY + "-passthrough")
    monkeypatch.setenv("EXPORTED", CANARY + "-export")
    monkeypatch.setenv("JOB_ENV_PASSTHROUGH", "PASSED")
    monkeypatch.setenv("JOB_ENV_EXPORT", "EXPORTED")
    items = [f"KV={CANARY}-kv", "PASSED"]
    env = environment.build("uid-1", items, {"JOB_TOKEN": CANARY + "-token"})
    secrets = environment.secret_values(items, [CANARY + "-token"])
    printed = [f"{name}={value}" for name, value in env.items()]
    scrubbed = environment.scrub(printed, secrets)
    assert not [line for line in scrubbed if CANARY in line], scrubbed
    assert "JOB_UID=uid-1" in scrubbed and "DM_JOB_URL=http://api/jobs" in scrubbed
    assert {"KV=***", "PASSED=***", "EXPORTED=***", "JOB_TOKEN=***"} <= set(scrubbed)


def test_multi_line_values_are_scrubbed_however_they_are_printed():
    value = f"-----BEGIN KEY-----\n{CANARY}-line-2\r\nlast line of it\n"
    secrets = environment.secret_values([f"KEY={value}"])
    quoted = f"before\n{value}after".split("\n")  # echo "$KEY": its own lines
    unquoted = [f"x {' '.join(value.split())} y"]  # echo $KEY: words joined by spaces
    as_json = [json.dumps({"KEY": value})]  # a job dumping its environment as JSON
    cut = [f"{CANARY}-line-2", "last line of it"]  # a log tail starting inside the value
    for lines in (quoted, unquoted, as_json, cut):
        scrubbed = environment.scrub(lines, secrets)
        text = "\n".join(scrubbed)
        assert CANARY not in text and "BEGIN KEY" not in text and "last line of it" not in text, scrubbed
    scrubbed = environment.scrub(quoted, secrets)
    assert scrubbed[0] == "before" and scrubbed[-1].endswith("after")  # the value's own newline went with it


def test_values_with_quotes_are_scrubbed_inside_json_and_short_ones_are_left():
    secrets = environment.secret_values(['Q=pa"ss\\word-1', "S=abc"])
    assert environment.scrub([json.dumps({"q": 'pa"ss\\word-1'})], secrets) == ['{"q": "***"}']
    assert environment.scrub(["abc"], secrets) == ["abc"]  # shorter than MIN_SECRET_LENGTH
    assert environment.scrub_text(f"a {CANARY}\nb", environment.secret_values([f"C={CANARY}"])) == "a ***\nb"


def test_a_built_environment_keeps_its_public_values_readable(monkeypatch):
    monkeypatch.setenv("DM_JOB_URL", "http://api/jobs")
    env = environment.build("uid-1", [f"KV={CANARY}"], {"JOB_TOKEN": "tok-" + CANARY, "DMSS_URL": "http://dmss"})
    secrets = environment.environment_secrets(env)
    assert environment.scrub_text(" ".join(env.values()), secrets) == "*** uid-1 http://api/jobs *** http://dmss"
