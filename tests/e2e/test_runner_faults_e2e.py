"""The runner side of "exactly once through crashes" and "no secret in any output", against the local host in a
process of its own (`python -m devhost`, killed with SIGKILL like a host that dies) on Azurite, with shell jobs.

- A host killed 100-400 ms after a POST and restarted: every job's script runs once (a marker line per run),
  the job completes with its result, and nothing of it is left (no process carrying its JOB_UID, no working
  directory). One crash per job, around its start: what a crash during `finish` does is the app's side.
- A `sleep 60` job whose host was killed just after the POST, DELETEd after the restart: removed, and no process
  of it is left (the stop reached the copy the first host launched).
- Canaries: a job gets secrets every way there is (`K=V`, a multi-line `K=V`, a passthrough name, an exported
  setting, its JOB_TOKEN), prints them to stdout, stderr, its result and its `env`, and looks for the host's
  own environment in every /proc/<pid>/environ it can read. No canary may show in the job's status, log or
  result, nor in the host's log lines; the job did receive every value (it prints their SHA-256).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.ports import free_port

from .conftest import FINAL, ROOT, shell_job

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to look for processes"),
]

ROUNDS = int(os.environ.get("RUNNER_FAULT_ROUNDS", "8"))
HOST_CANARY = "host-only-canary-5e1f0c"


class Host:
    """`python -m devhost` in a process of its own, its output in a log file."""

    def __init__(self, tmp: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.log = tmp / "host.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEDULE_TICK": "0 * * * * *",
            "JOB_WORK_DIR": str(tmp / "work"),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devhost",
                    "--port",
                    str(self.port),
                    "--app-dir",
                    str(ROOT),
                    "--worker-id",
                    "runner-faults",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/api/health", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"the host did not come up; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def post(self, job: dict) -> str | None:
        try:
            response = requests.post(f"{self.url}/api/jobs", json=job, timeout=5)
        except requests.RequestException:
            return None
        return response.json()["uid"] if response.status_code in (200, 202) else None

    def get(self, uid: str, suffix: str = "") -> dict:
        return requests.get(f"{self.url}/api/jobs/{uid}{suffix}", timeout=5).json()

    def wait(self, uid: str, statuses=FINAL, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            try:
                body = self.get(uid)
            except requests.RequestException:
                body = {}
            if body.get("status") in statuses:
                return body
            time.sleep(0.2)
        raise AssertionError(f"job {uid} is not {statuses}: {body}")


def processes_of(uid: str) -> list[int]:
    """Live processes whose environment names the job (every script gets JOB_UID)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"JOB_UID={uid}\0".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_gone(uid: str, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_of(uid)


@pytest.fixture
def host(storage_env, tmp_path):
    running = Host(tmp_path)
    running.start()
    yield running
    running.kill()


def test_a_host_killed_just_after_a_start_runs_each_job_once(host, tmp_path):
    rng = random.Random(int(os.environ.get("FAULT_SEED", "4242")))
    markers = tmp_path / "markers"
    markers.mkdir()
    script = f'echo "$JOB_UID" >> {markers}/"$JOB_UID"; sleep 0.5; echo "result of $JOB_UID" > "$JOB_RESULT_FILE"'
    uids, bodies = [], {}
    for _ in range(ROUNDS):  # one crash per job, around its start (a crash in `finish` is the app's to survive)
        uid = host.post(shell_job(script))
        time.sleep(rng.uniform(0.1, 0.4))
        host.kill()
        host.start()
        if uid:
            uids.append(uid)
            bodies[uid] = host.wait(uid)
    runs = {uid: (markers / uid).read_text().split() if (markers / uid).exists() else [] for uid in uids}
    print(f"runner fault rounds: {ROUNDS}, jobs: {len(uids)}, runs per job: {sorted(len(r) for r in runs.values())}")
    assert len(uids) >= ROUNDS * 0.75
    assert {uid: len(r) for uid, r in runs.items() if len(r) != 1} == {}
    assert {uid: (b["message"], b["log"]) for uid, b in bodies.items() if b["status"] != "completed"} == {}
    for uid in uids:
        assert host.get(uid, "/result")["result"].strip() == f"result of {uid}"
        assert wait_gone(uid) == []
    deadline = time.monotonic() + 15
    while any((tmp_path / "work" / uid).exists() for uid in uids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [uid for uid in uids if (tmp_path / "work" / uid).exists()] == []


def test_a_job_whose_host_died_at_its_start_is_stopped_for_good(host, tmp_path):
    rng = random.Random(7)
    uids = []
    for _ in range(3):
        uid = host.post(shell_job("sleep 60"))
        time.sleep(rng.uniform(0.1, 0.4))
        host.kill()
        host.start()
        if uid:
            uids.append(uid)
    assert uids
    for uid in uids:
        host.wait(uid, {"running"}, timeout=60)
        assert processes_of(uid), "the job should be running"
        stopped = requests.delete(f"{host.url}/api/jobs/{uid}", timeout=30).json()
        assert stopped["status"] == "removed"
    for uid in uids:
        assert host.wait(uid)["status"] == "removed"
        assert wait_gone(uid) == [], f"job {uid} left processes behind"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_no_canary_in_status_log_result_or_the_hosts_log(storage_env, tmp_path):
    values = {
        "KV_SECRET": "kv-canary-91a7d3",
        "MULTI_SECRET": "multi-canary-line-one-4b2c\nmulti-canary-line-two-8d0e",
        "PASSED_SECRET": "passthrough-canary-26f1",
        "EXPORTED_SECRET": "exported-canary-c7e5",
    }
    host = Host(
        tmp_path,
        {
            "PASSED_SECRET": values["PASSED_SECRET"],
            "EXPORTED_SECRET": values["EXPORTED_SECRET"],
            "JOB_ENV_PASSTHROUGH": "PASSED_SECRET",
            "JOB_ENV_EXPORT": "EXPORTED_SECRET",
            "HOST_ONLY_SECRET": HOST_CANARY,
        },
    )
    names = ["KV_SECRET", "MULTI_SECRET", "PASSED_SECRET", "EXPORTED_SECRET", "JOB_TOKEN"]
    script = "\n".join(
        [
            'echo "kv=$KV_SECRET passed=$PASSED_SECRET exported=$EXPORTED_SECRET token=$JOB_TOKEN"',
            'echo "multi quoted:"; printf "%s\\n" "$MULTI_SECRET"; echo "multi unquoted:" $MULTI_SECRET',
            'echo "on stderr: $KV_SECRET $EXPORTED_SECRET" >&2',
            "env | sort",
            f'for v in {" ".join(names)}; do printf "%s" "${{!v}}" | sha256sum | sed "s/ .*//; s/^/sha:$v:/"; done',
            # the host's environment, wherever this script can read one
            f'for f in /proc/[0-9]*/environ; do tr "\\0" "\\n" < "$f" 2>/dev/null; done | grep -a "{HOST_CANARY}" '
            '| sed "s/^/found in proc: /"',
            'grep -a -c "" /proc/$PPID/environ 2>&1 | sed "s/^/parent environ: /"',
            '{ echo "result kv=$KV_SECRET"; printf "%s\\n" "$MULTI_SECRET"; echo "exported=$EXPORTED_SECRET"; '
            'echo "token=$JOB_TOKEN"; } > "$JOB_RESULT_FILE"',
            "echo finished",
        ]
    )
    job = shell_job(
        script, env=[f"KV_SECRET={values['KV_SECRET']}", f"MULTI_SECRET={values['MULTI_SECRET']}", "PASSED_SECRET"]
    )
    host.start()
    try:
        uid = host.post(job)
        assert uid
        body = host.wait(uid)
        result = host.get(uid, "/result")
        listed = requests.get(f"{host.url}/api/jobs", timeout=5).text
    finally:
        host.kill()
    assert body["status"] == "completed", body
    log = body["log"]
    assert "finished" in log
    sha = dict(line.split(":")[1:3] for line in log if line.startswith("sha:"))
    for name, value in values.items():
        assert sha[name] == _sha(value), f"the job did not get {name}"
    assert sha["JOB_TOKEN"] != _sha("")
    assert not [line for line in log if line.startswith("found in proc")], log
    assert not any(line.startswith(("AzureWebJobsStorage=", "HOST_ONLY_SECRET=")) for line in log), log
    shown = {"status": repr(body), "result": repr(result), "list": listed, "host log": host.log.read_text()}
    canaries = [*values.values(), *values["MULTI_SECRET"].split("\n"), HOST_CANARY]
    leaks = {(where, canary) for where, text in shown.items() for canary in canaries if canary in text}
    assert leaks == set(), leaks
    token_lines = [line for line in log if line.startswith("kv=")]
    assert token_lines == ["kv=*** passed=*** exported=*** token=***"], token_lines
