"""`dmjob` against the local host, in-process through typer's test runner (click's CliRunner): what it prints,
its exit codes, its errors (the API's own message and status), and that it never prints a key or a token."""

from __future__ import annotations

import json
import os
import re
import stat
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dmjob import __version__
from dmjob.cli import app
from dmjob.follow import new_lines
from devhost import DevHost
from tests.standins.dmss import make_jwt

from .conftest import HOST_SETTINGS, ROOT, shell_job

EXAMPLES = ROOT / "examples"
KEY = "fn-key-" + uuid.uuid4().hex
TOKEN = "tok-" + uuid.uuid4().hex


@pytest.fixture
def dmjob(host, monkeypatch):
    """Run `dmjob ARGS` against the local host; returns the click Result (exit_code, stdout, stderr)."""
    monkeypatch.setenv("DM_JOB_URL", f"{host.url}/api/jobs")  # the progress example reports there
    runner = CliRunner()

    def run(*args: str, env: dict | None = None, input: str | None = None):
        environment = {
            "DMJOB_URL": host.url,
            "DMJOB_KEY": None,
            "DMJOB_TOKEN": None,
            "DMJOB_AZ_RESOURCE": None,
            **(env or {}),
        }
        return runner.invoke(app, list(args), env=environment, input=input)

    return run


def _job_file(tmp_path: Path, entity: dict, name: str = "job.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(entity))
    return str(path)


def _uid(result) -> str:
    return result.stdout.split()[0]


def test_start_follow_the_echo_example_prints_its_log_and_exits_0(dmjob):
    result = dmjob("start", str(EXAMPLES / "echo-job.json"), "--follow")
    assert result.exit_code == 0, result.output
    uid = _uid(result)
    assert f"hello from {uid}" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("completed")


def test_start_wait_shows_progress_as_percent_and_a_failure_exits_1(dmjob, tmp_path):
    progress = dmjob("start", str(EXAMPLES / "progress-job.json"), "--wait")
    assert progress.exit_code == 0, progress.output
    assert re.search(r"(?m)^running \d+%$", progress.stdout), progress.stdout
    assert "step 1 of 4" not in progress.stdout, "--wait shows progress, --follow the log"
    failed = dmjob("start", str(EXAMPLES / "failing-job.json"), "--wait", "--json")
    assert failed.exit_code == 1
    final = json.loads(failed.stdout)
    assert final["status"] == "failed" and "exit code 3" in final["message"]


def test_status_logs_result_and_list(dmjob, tmp_path):
    script = 'echo one; echo two; echo \'{"type": "dmss://system/SIMOS/Blob", "n": 2}\' > "$JOB_RESULT_FILE"'
    started = dmjob("start", _job_file(tmp_path, shell_job(script)), "--wait")
    assert started.exit_code == 0, started.output
    uid = _uid(started)

    status = dmjob("status", uid, "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["status"] == "completed"
    table = dmjob("status", uid)
    assert "completed" in table.stdout and "100%" in table.stdout and "JOBCORE" not in table.stdout

    logs = dmjob("logs", uid)
    assert logs.stdout.splitlines()[:2] == ["one", "two"]
    assert json.loads(dmjob("logs", uid, "--json").stdout)["log"][:2] == ["one", "two"]
    assert dmjob("logs", uid, "--full").stdout.splitlines() == ["one", "two"]  # the stored whole log
    whole = json.loads(dmjob("logs", uid, "--full", "--tail", "1", "--json").stdout)
    assert whole["source"] == "stored" and whole["log"] == ["two"] and whole["lines"] == 2 and whole["truncated"]

    out = tmp_path / "result.json"
    written = dmjob("result", uid, "-o", str(out))
    assert written.exit_code == 0 and json.loads(out.read_text()) == {"type": "dmss://system/SIMOS/Blob", "n": 2}
    assert json.loads(dmjob("result", uid).stdout)["n"] == 2
    assert json.loads(dmjob("result", uid, "--json").stdout)["status"] == "completed"

    listed = json.loads(dmjob("list", "--status", "completed", "--json").stdout)
    assert uid in [job["uid"] for job in listed["jobs"]]
    assert uid in dmjob("list", "--status", "completed").stdout
    assert uid not in dmjob("list", "--status", "running").stdout


def test_logs_follow_and_stop(dmjob, tmp_path):
    script = "for i in $(seq 1 100); do echo tick $i; sleep 0.2; done"
    started = dmjob("start", _job_file(tmp_path, shell_job(script)))
    assert started.exit_code == 0 and "starting" in started.stdout
    uid = _uid(started)
    deadline = time.monotonic() + 20
    while "tick 3" not in dmjob("logs", uid).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stopped = dmjob("stop", uid)
    assert stopped.exit_code == 0 and stopped.stdout.startswith("removed")
    followed = dmjob("logs", uid, "--follow")
    assert followed.exit_code == 1, "the job did not complete"
    assert "tick 1" in followed.stdout and "removed" in followed.stderr
    early = dmjob("result", uid)
    assert early.exit_code == 0, "a removed job has ended: its result is there"


def test_a_recurring_job_schedule_suspend_resume(dmjob):
    started = dmjob("start", str(EXAMPLES / "recurring-job.json"), "--wait")
    assert started.exit_code == 0, "a recurring job is registered, there is nothing to wait for"
    uid = _uid(started)
    assert "registered" in started.stdout

    table = dmjob("schedule", uid, "--next", "3")
    assert table.exit_code == 0, table.output
    assert "Europe/Oslo" in table.stdout and "UTC" in table.stdout
    preview = json.loads(dmjob("schedule", uid, "--next", "3", "--json").stdout)
    assert len(preview["fireTimes"]) == 3
    for fire in preview["fireTimes"]:
        assert fire["utc"] in table.stdout and fire["local"] in table.stdout

    assert dmjob("suspend", uid).stdout.startswith("suspended")
    assert json.loads(dmjob("resume", uid, "--json").stdout)["state"] == "active"
    assert dmjob("stop", uid).exit_code == 0


def test_errors_carry_the_apis_message_and_status(dmjob, tmp_path):
    malformed = dmjob("status", "not-a-uid")
    assert malformed.exit_code == 3
    assert "malformed job uid" in malformed.stderr and "HTTP 400 BadRequestException" in malformed.stderr
    unknown = dmjob("result", str(uuid.uuid4()))
    assert unknown.exit_code == 3 and "HTTP 404" in unknown.stderr
    invalid = dmjob("start", _job_file(tmp_path, {"type": "dmss://WorkflowDS/Blueprints/Job"}))
    assert invalid.exit_code == 3 and "runner" in invalid.stderr and "HTTP 422" in invalid.stderr
    not_json = tmp_path / "bad.json"
    not_json.write_text("{")
    assert dmjob("start", str(not_json)).exit_code == 2
    gone = dmjob("status", str(uuid.uuid4()), env={"DMJOB_URL": "http://127.0.0.1:9"})
    assert gone.exit_code == 4 and "cannot reach the API" in gone.stderr
    assert dmjob("--version").stdout.strip() == f"dmjob {__version__}"


def test_start_reads_stdin_and_the_url_may_be_the_jobs_url(dmjob, host):
    result = dmjob(
        "start",
        "-",
        "--wait",
        env={"DMJOB_URL": f"{host.url}/api/jobs"},
        input=json.dumps(shell_job("echo from stdin")),
    )
    assert result.exit_code == 0, result.output


@pytest.fixture
def keyed_host(storage_env):
    """A local host that checks function keys as Azure does (DEVHOST_REQUIRE_KEYS)."""
    settings = {**HOST_SETTINGS, "DEVHOST_REQUIRE_KEYS": "true", "DEVHOST_FUNCTION_KEY": KEY}
    with DevHost(app_dir=ROOT, settings=settings) as running:
        yield running


def test_key_and_token_are_sent_and_never_printed(keyed_host, tmp_path):
    runner = CliRunner()
    job = _job_file(tmp_path, shell_job("echo keyed"))
    base = {"DMJOB_URL": keyed_host.url, "DMJOB_AZ_RESOURCE": None}

    refused = runner.invoke(app, ["start", job], env={**base, "DMJOB_KEY": "wrong-" + KEY, "DMJOB_TOKEN": TOKEN})
    assert refused.exit_code == 3 and "HTTP 401" in refused.stderr and "function key" in refused.stderr

    jwt = make_jwt("carol")
    results = [refused]
    results.append(runner.invoke(app, ["--key", KEY, "--token", jwt, "start", job, "--wait", "--json"], env=base))
    assert results[-1].exit_code == 0, results[-1].output
    uid = json.loads(results[-1].stdout)["uid"]
    results.append(runner.invoke(app, ["status", uid, "--json"], env={**base, "DMJOB_KEY": KEY, "DMJOB_TOKEN": jwt}))
    assert json.loads(results[-1].stdout)["triggeredBy"] == "carol", "the token went as Authorization: Bearer"
    results.append(runner.invoke(app, ["status", uid], env={**base, "DMJOB_KEY": KEY, "DMJOB_TOKEN": TOKEN}))
    assert results[-1].exit_code == 3 and "HTTP 403" in results[-1].stderr, "only its starter"
    results.append(runner.invoke(app, ["status", "x"], env={**base, "DMJOB_KEY": KEY, "DMJOB_TOKEN": TOKEN}))
    for result in results:
        for secret in (KEY, TOKEN, jwt):
            assert secret not in result.stdout and secret not in result.stderr


def test_a_token_from_the_azure_cli(dmjob, tmp_path, monkeypatch):
    """`--az-resource` asks `az account get-access-token --resource ...` (a stand-in `az` on PATH here)."""
    jwt = make_jwt("dave")
    az = tmp_path / "bin" / "az"
    az.parent.mkdir()
    az.write_text(
        f"#!/bin/sh\n[ \"$1 $2 $3 $4\" = 'account get-access-token --resource api://dm-job' ] || exit 9\necho {jwt}\n"
    )
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{az.parent}{os.pathsep}{os.environ['PATH']}")
    started = dmjob("--az-resource", "api://dm-job", "start", _job_file(tmp_path, shell_job("true")), "--json")
    assert started.exit_code == 0, started.output
    uid = json.loads(started.stdout)["uid"]
    status = json.loads(dmjob("status", uid, "--json", env={"DMJOB_AZ_RESOURCE": "api://dm-job"}).stdout)
    assert status["triggeredBy"] == "dave"
    failing = dmjob("--az-resource", "api://other", "status", uid)
    assert failing.exit_code == 1 and "az account get-access-token failed" in failing.stderr
    assert jwt not in started.stdout + started.stderr + failing.stderr


def test_new_lines_of_a_log_tail():
    assert new_lines([], ["a", "b"]) == ["a", "b"]
    assert new_lines(["a", "b"], ["a", "b", "c"]) == ["c"]
    assert new_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"], "the tail moved on"
    assert new_lines(["a", "b"], ["x", "y"]) == ["x", "y"], "replaced (overwrite_log)"
    assert new_lines(["a"], ["a"]) == []
