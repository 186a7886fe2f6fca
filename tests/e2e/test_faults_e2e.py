"""Exactly once through crashes: the local host killed with SIGKILL at random moments around start, poll and
finish, then restarted; every accepted job reaches a final status, runs once, keeps its log and result, and
leaves no process behind.

Each round POSTs a shell job (with an Idempotency-Key, so a POST whose answer was lost is asked again after
the restart), kills the host 0-700 ms later, and starts it again with the same worker id (it resumes its
instances at once, as a restarted Functions host takes its work items back). Rounds: FAULT_ROUNDS (default 20).
"""

from __future__ import annotations

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

ROUNDS = int(os.environ.get("FAULT_ROUNDS", "20"))


class HostProcess:
    """`python -m devhost` in a process of its own, so it can be killed like a host that dies."""

    def __init__(self, port: int, worker_id: str, log: Path):
        self.port, self.worker_id, self.log = port, worker_id, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEDULE_TICK": "0 * * * * *"}
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
                    self.worker_id,
                ],
                cwd=ROOT,
                env=env,
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


def _post(host: HostProcess, job: dict, key: str) -> str | None:
    try:
        response = requests.post(f"{host.url}/api/jobs", json=job, headers={"Idempotency-Key": key}, timeout=5)
    except requests.RequestException:
        return None
    return response.json()["uid"] if response.status_code in (200, 202) else None


def _processes_of(uid: str) -> list[int]:
    """Processes whose environment names the job (the shell runner gives every script JOB_UID)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"JOB_UID={uid}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _final(host: HostProcess, uid: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = requests.get(f"{host.url}/api/jobs/{uid}", timeout=5).json()
        except requests.RequestException:
            body = {}
        if body.get("status") in FINAL:
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {uid} did not end: {body}")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to look for orphans")
def test_kill_9_at_random_moments_every_job_runs_once_and_ends(storage_env, tmp_path):
    rng = random.Random(int(os.environ.get("FAULT_SEED", "20261201")))
    markers = tmp_path / "markers"
    markers.mkdir()
    host = HostProcess(free_port(), "faults", tmp_path / "host.log")
    accepted: dict[str, str] = {}  # Idempotency-Key -> uid
    host.start()
    try:
        for round_ in range(ROUNDS):
            key = f"round-{round_}"
            script = (
                f'echo "$JOB_UID" >> {markers}/"$JOB_UID"; sleep {rng.choice([0.2, 0.6, 1.5])}; '
                f'echo "result of $JOB_UID" > "$JOB_RESULT_FILE"; echo finished'
            )
            job = shell_job(script)
            uid = _post(host, job, key)
            time.sleep(rng.uniform(0.0, 0.7))
            host.kill()
            host.start()
            uid = uid or _post(host, job, key)  # the answer was lost with the host: ask again, same key
            if uid:
                accepted[key] = uid
        bodies = {uid: _final(host, uid) for uid in accepted.values()}
        results = {
            uid: requests.get(f"{host.url}/api/jobs/{uid}/result", timeout=5).json()["result"]
            for uid in accepted.values()
        }
    finally:
        host.kill()
    runs = {uid: (markers / uid).read_text().split() if (markers / uid).exists() else [] for uid in accepted.values()}
    duplicates = [uid for uid, lines in runs.items() if len(lines) > 1]
    not_run = [uid for uid, body in bodies.items() if body["status"] == "completed" and not runs[uid]]
    failed = {uid: body["message"] for uid, body in bodies.items() if body["status"] != "completed"}
    orphans = {uid: _processes_of(uid) for uid in accepted.values() if _processes_of(uid)}
    print(
        f"fault rounds: {ROUNDS}, jobs accepted: {len(accepted)}, duplicates: {len(duplicates)}, "
        f"not completed: {len(failed)}, orphans: {len(orphans)}"
    )
    assert len(accepted) >= ROUNDS * 0.8, f"only {len(accepted)} of {ROUNDS} starts were accepted"
    assert not failed and not not_run, failed
    assert not duplicates, {uid: runs[uid] for uid in duplicates}
    assert not orphans, orphans
    for uid, body in bodies.items():
        assert "finished" in body["log"], body
        assert results[uid].strip() == f"result of {uid}"
