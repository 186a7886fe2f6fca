"""scripts/smoke.sh: syntax, and a run against a local stand-in of the jobs API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.infra.bicep_support import ROOT

SCRIPT = ROOT / "scripts" / "smoke.sh"
KEY = "CANARY-function-key-5b1c"

needs_tools = pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="bash and curl needed")


def test_bash_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_uses_only_bash_curl_and_python():
    text = SCRIPT.read_text()
    for tool in ("jq", "wget", "az ", "node "):
        assert tool not in text.replace("azd", ""), tool


class StandIn:
    """POST /api/jobs -> uid; GET /api/jobs/{uid} walks through `statuses`; records requests."""

    def __init__(self, statuses, start_status=202):
        self.statuses = list(statuses)
        self.start_status = start_status
        self.requests: list[tuple[str, str, dict, bytes]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stand_in.requests.append((self.command, self.path, dict(self.headers), body))

            def do_POST(self):
                self._record()
                if self.path != "/api/jobs":
                    return self._reply(404, {"message": "no route"})
                if stand_in.start_status >= 400:
                    return self._reply(stand_in.start_status, {"status": stand_in.start_status, "message": "no"})
                self._reply(stand_in.start_status, {"uid": "u-1", "message": "started", "status": "starting"})

            def do_GET(self):
                self._record()
                if self.path == "/api/jobs/u-1/result":
                    return self._reply(200, {"message": "ok", "result": "hello"})
                status = stand_in.statuses.pop(0) if len(stand_in.statuses) > 1 else stand_in.statuses[0]
                self._reply(
                    200,
                    {
                        "status": status,
                        "log": ["line one", "line two"],
                        "percentage": None,
                        "message": "exit 1" if status == "failed" else "",
                    },
                )

            def do_DELETE(self):
                self._record()
                self._reply(200, {"status": "removed", "response": "stopped"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def run(url, *args, **env):
    full_env = {**os.environ, "SMOKE_POLL_SECONDS": "0", "SMOKE_TIMEOUT": "20", **env}
    full_env.pop("TOKEN", None) if "TOKEN" not in env else None
    return subprocess.run(["bash", str(SCRIPT), url, *args], capture_output=True, text=True, env=full_env, timeout=60)


@needs_tools
def test_completed_job_exits_zero_and_sends_the_key():
    with StandIn(["starting", "running", "running", "completed"]) as api:
        result = run(api.url + "/api/", KEY, SMOKE_IMAGE="example/hello:1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "final status: completed" in result.stdout
    assert "line two" in result.stdout and "smoke: OK" in result.stdout
    method, path, headers, body = api.requests[0]
    assert (method, path) == ("POST", "/api/jobs")
    assert {k.lower(): v for k, v in headers.items()}["x-functions-key"] == KEY
    job = json.loads(body)
    assert job["type"] == "dmss://WorkflowDS/Blueprints/Job"
    assert job["runner"]["type"] == "dmss://WorkflowDS/Blueprints/AzureContainer"
    assert job["runner"]["containerImage"] == "example/hello:1"
    assert all(r[1].startswith("/api/jobs") for r in api.requests)
    assert KEY not in result.stdout + result.stderr


@needs_tools
def test_failed_job_exits_non_zero():
    with StandIn(["running", "failed"]) as api:
        result = run(api.url, KEY)
    assert result.returncode == 1
    assert "final status: failed" in result.stdout and "line one" in result.stdout


@needs_tools
def test_token_is_sent_as_bearer(tmp_path):
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"type": "dmss://WorkflowDS/Blueprints/Job", "runner": {"type": "x"}}))
    with StandIn(["completed"]) as api:
        result = run(api.url, TOKEN="tok-" + KEY, SMOKE_JOB_FILE=str(job_file))
    assert result.returncode == 0, result.stderr
    headers = {k.lower(): v for k, v in api.requests[0][2].items()}
    assert headers["authorization"] == "Bearer tok-" + KEY
    assert "x-functions-key" not in headers
    assert json.loads(api.requests[0][3]) == json.loads(job_file.read_text())


@needs_tools
def test_timeout_stops_the_job():
    with StandIn(["running"]) as api:
        result = run(api.url, KEY, SMOKE_TIMEOUT="0")
    assert result.returncode == 3
    assert ("DELETE", "/api/jobs/u-1") in [(r[0], r[1]) for r in api.requests]


@needs_tools
def test_refused_start_exits_two():
    with StandIn(["completed"], start_status=401) as api:
        result = run(api.url, KEY)
    assert result.returncode == 2
    assert "HTTP 401" in result.stderr


def test_usage_without_arguments():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2 and "BASE_URL" in result.stdout
