"""Exactly once through crashes and outages: every accepted job reaches a final status, runs once (a marker line
per run), keeps its log and result, and leaves no process (nor working directory) behind.

- kill -9: each round POSTs a shell job (with an Idempotency-Key, so a POST whose answer was lost is asked
  again after the restart), kills the host 0-700 ms later, and starts it again with the same worker id (it
  resumes its instances at once, as a restarted Functions host takes its work items back). Rounds:
  FAULT_ROUNDS (default 20).
- storage stopped mid-activity: a host of its own over an Azurite of its own (tests/support/outage.py); each
  round POSTs OUTAGE_JOBS_PER_ROUND shell jobs (default 4), stops Azurite 0.2-1.2 s later while they start,
  run and finish, POSTs one more during the outage, and starts Azurite again 8 s later on the same ports and
  data. Activities whose result could not be recorded run again (the local host's redelivery: the host log's
  "could not be recorded" lines show each); the POST refused with 503 is asked again with its key. Rounds:
  STORAGE_FAULT_ROUNDS (default 2).
- DMSS unreachable mid-run: the same host; the stand-in DMSS drops every connection for 5 s while DMSS jobs
  run and finish (their status write-backs fail and are retried), a POST of a DMSS job in the outage is
  refused with 503 and asked again after it; every entity says `completed` in the end. Rounds:
  DMSS_FAULT_ROUNDS (default 2).

Clients read status, list, result and health the whole time: no answer may be a 5xx, but for a 503 to a request
that overlapped an outage. Each test prints its counts (rounds, jobs, duplicates, stuck, orphans, 5xx).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.standins.dmss import DmssStandIn
from tests.support.outage import RestartableAzurite
from tests.support.ports import free_port

from .conftest import FINAL, ROOT, shell_job

ROUNDS = int(os.environ.get("FAULT_ROUNDS", "20"))


class HostProcess:
    """`python -m devhost` in a process of its own, so it can be killed like a host that dies."""

    def __init__(self, port: int, worker_id: str, log: Path, env: dict[str, str] | None = None):
        self.port, self.worker_id, self.log = port, worker_id, log
        self.env = env  # the whole environment when given (a host of its own storage), else this process's
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**(self.env or os.environ), "PYTHONPATH": str(ROOT), "SCHEDULE_TICK": "0 * * * * *"}
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
                requests.get(f"{self.url}/api/health", timeout=5)
                return
            except requests.RequestException:  # not listening yet, or too busy starting to answer in time
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


def _final(host: HostProcess, uid: str, timeout: float = 120, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        try:
            body = requests.get(f"{host.url}/api/jobs/{uid}", headers=headers or {}, timeout=30).json()
        except (requests.RequestException, ValueError):
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


# ---- outages: storage stopped mid-activity, DMSS unreachable mid-run ----------------------------------------
STORAGE_ROUNDS = int(os.environ.get("STORAGE_FAULT_ROUNDS", "2"))
DMSS_ROUNDS = int(os.environ.get("DMSS_FAULT_ROUNDS", "2"))
OUTAGE_JOBS = int(os.environ.get("OUTAGE_JOBS_PER_ROUND", "4"))
STORAGE_OUTAGE_SECONDS = 8.0  # longer than one storage call takes to fail (the SDK retries ~5 s)
DMSS_OUTAGE_SECONDS = 5.0
GRACE_SECONDS = 2.0  # a request that began just before storage came back may still be refused


@dataclass
class Outages:
    """A host of its own over an Azurite of its own and a stand-in DMSS, both of which the tests take away."""

    host: HostProcess
    azurite: RestartableAzurite
    dmss: DmssStandIn
    token: str
    markers: Path
    work: Path
    windows: list[tuple[float, float]] = field(default_factory=list)  # (down, back) on time.monotonic()

    def script(self, rng: random.Random) -> str:
        return (
            f'echo "$JOB_UID" >> {self.markers}/"$JOB_UID"; sleep {rng.choice([0.5, 1.5, 3.0])}; '
            f'echo "result of $JOB_UID" > "$JOB_RESULT_FILE"; echo finished'
        )

    def down(self, what) -> float:
        """The outage begins when taking it down begins: Azurite stops answering before its process has exited."""
        self.windows.append((time.monotonic(), float("inf")))
        what()
        return self.windows[-1][0]

    def back(self, what) -> float:
        what()
        self.windows[-1] = (self.windows[-1][0], time.monotonic())
        return self.windows[-1][1]

    def in_outage(self, asked: float, answered: float) -> bool:
        return any(asked <= back + GRACE_SECONDS and answered >= down for down, back in self.windows)


@pytest.fixture(scope="module")
def outages(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outages")
    azurite = RestartableAzurite()
    dmss = DmssStandIn().start()
    dmss.add_data_source("DS")
    port = free_port()
    prefix = "o" + uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "JOB_STORE_PREFIX": prefix,
        "JOB_ORCHESTRATION_STORE_PREFIX": prefix + "h",
        "ENABLE_LOCAL_RUNNERS": "true",
        "JOB_WORK_DIR": str(tmp / "work"),
        "DMSS_URL": dmss.url,
        "PUBLIC_DMSS_URL": "",
        "DMSS_APP_ACCESS_KEY": "",
        "DMSS_TIMEOUT_SECONDS": "1",
        "CALLER_IDENTITY_SOURCE": "auto",
        "DM_JOB_URL": f"http://127.0.0.1:{port}/api/jobs",
    }
    host = HostProcess(port, "outages", tmp / "host.log", env)
    (tmp / "markers").mkdir()
    host.start()
    yield Outages(host, azurite, dmss, dmss.issue_token(subject="alice"), tmp / "markers", tmp / "work")
    host.kill()
    dmss.stop()
    azurite.close()


class Readers:
    """Clients that keep reading while the round runs: every answer's status, when it was asked and answered."""

    def __init__(self, base: str, headers: dict[str, str]):
        self.base, self.headers = base, headers
        self.uids: list[str] = []
        self.answers: list[tuple[float, float, str, int, dict]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(3)]

    def paths(self, which: int) -> list[str]:
        jobs = [f"/api/jobs/{uid}" for uid in list(self.uids)]
        return [["/api/health", "/api/jobs"], jobs, [p + "/result" for p in jobs]][which] or ["/api/health"]

    def _read(self, which: int) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            for path in self.paths(which):
                asked = time.monotonic()
                try:
                    response = session.get(self.base + path, headers=self.headers, timeout=30)
                except requests.RequestException:
                    continue
                self.answers.append((asked, time.monotonic(), path, response.status_code, dict(response.headers)))
            self._stop.wait(0.1)

    def __enter__(self) -> "Readers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)

    def server_errors(self, outages: Outages) -> list[tuple]:
        """5xx answers, less a 503 to a request that overlapped an outage (with Retry-After, but for health)."""
        out = []
        for asked, answered, path, status, headers in self.answers:
            told_when = path == "/api/health" or headers.get("Retry-After")
            excused = status == 503 and outages.in_outage(asked, answered) and told_when
            if status >= 500 and not excused:
                out.append((path, status, self._when(outages, asked, answered), headers.get("Retry-After")))
        return out

    @staticmethod
    def _when(outages: Outages, asked: float, answered: float) -> str:
        """Where an answer fell against the outages, for the failure message."""
        spans = [
            f"down {asked - down:+.2f}..{answered - down:+.2f} s, back {asked - back:+.2f} s"
            for down, back in outages.windows
        ]
        return "; ".join(spans)

    def refused(self) -> int:
        return sum(1 for answer in self.answers if answer[3] == 503)


def _post_until_accepted(host: HostProcess, path: str, key: str, headers: dict, job: dict | None = None) -> str | None:
    """POST until the service takes the job (a 503 while something it needs is down is asked again, same key)."""
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        uid, status = _try_post(host, path, key, headers, job)
        seen.append(status)
        if uid:
            return uid
        assert status is None or status >= 500, f"POST {path} answered {status}"
        time.sleep(0.5)
    raise AssertionError(f"POST {path} never accepted: {seen[-10:]}")


def _try_post(host: HostProcess, path: str, key: str, headers: dict, job: dict | None = None):
    try:
        response = requests.post(f"{host.url}{path}", json=job, headers={**headers, "Idempotency-Key": key}, timeout=60)
    except requests.RequestException:
        return None, None
    uid = response.json().get("uid") if response.status_code in (200, 202) else None
    return uid, response.status_code


def _settle(outages: Outages, uids: list[str], headers: dict, timeout: float) -> dict[str, dict | None]:
    """Each job's final status body, None for one that did not end in time (stuck)."""
    deadline = time.monotonic() + timeout
    bodies: dict[str, dict | None] = {}
    for uid in uids:
        try:
            bodies[uid] = _final(outages.host, uid, max(1.0, deadline - time.monotonic()), headers)
        except AssertionError:
            bodies[uid] = None
    return bodies


def _check(outages: Outages, what: str, rounds: int, bodies: dict, headers: dict, readers: Readers) -> dict:
    """The counts of a set of rounds; asserts every job ended once with its log and result and left nothing."""
    uids = list(bodies)
    runs = {uid: _marker_lines(outages.markers, uid) for uid in uids}
    stuck = [uid for uid, body in bodies.items() if body is None]
    failed = {uid: body["message"] for uid, body in bodies.items() if body and body["status"] != "completed"}
    duplicates = {uid: lines for uid, lines in runs.items() if len(lines) > 1}
    not_run = [uid for uid, lines in runs.items() if not lines]
    orphans = {uid: pids for uid in uids if (pids := _wait_gone(uid))}
    results = {uid: _result(outages.host, uid, headers) for uid in uids if bodies[uid]}
    wrong_results = {uid: text for uid, text in results.items() if (text or "").strip() != f"result of {uid}"}
    no_log = [uid for uid, body in bodies.items() if body and "finished" not in body["log"]]
    dirs = [uid for uid in uids if _dir_left(outages.work / uid)]
    errors = readers.server_errors(outages)
    counts = {
        "rounds": rounds,
        "jobs": len(uids),
        "duplicates": len(duplicates),
        "stuck": len(stuck),
        "orphans": len(orphans),
        "5xx": len(errors),
        "503 during outages": readers.refused(),
        "reads": len(readers.answers),
    }
    print(f"{what}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    assert not stuck, stuck
    assert not failed, failed
    assert not duplicates and not not_run, (duplicates, not_run)
    assert not orphans and not dirs, (orphans, dirs)
    assert not wrong_results and not no_log, (wrong_results, no_log)
    assert not errors, errors[:10]
    return counts


def _marker_lines(markers: Path, uid: str) -> list[str]:
    return (markers / uid).read_text().split() if (markers / uid).exists() else []


def _result(host: HostProcess, uid: str, headers: dict) -> str | None:
    response = requests.get(f"{host.url}/api/jobs/{uid}/result", headers=headers, timeout=30)
    return response.json().get("result") if response.status_code == 200 else None


def _wait_gone(uid: str, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _processes_of(uid)


def _dir_left(path: Path, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


def _abandoned(log: Path) -> list[str]:
    """The host's log lines of work items abandoned because their result could not be recorded."""
    return [line for line in log.read_text().splitlines() if "could not be recorded" in line]


@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to look for orphans")
def test_storage_stopped_mid_activity_delays_jobs_and_loses_none(outages):
    """Azurite is stopped while jobs start, run and finish, and started again 8 s later on the same ports and
    data: activities whose result could not be recorded run again (the host redelivers them), and every job,
    also one POSTed during the outage (503, asked again with its key), ends once with its log and result."""
    rng = random.Random(int(os.environ.get("FAULT_SEED", "20261201")) + 1)
    host, azurite = outages.host, outages.azurite
    uids: list[str] = []
    back_at: list[float] = []
    with Readers(host.url, {}) as readers:
        for round_ in range(STORAGE_ROUNDS):
            for i in range(OUTAGE_JOBS):
                uid, status = _try_post(host, "/api/jobs", f"storage-{round_}-{i}", {}, shell_job(outages.script(rng)))
                assert uid, status
                uids.append(uid)
                readers.uids.append(uid)
            time.sleep(rng.uniform(0.2, 1.2))
            down = outages.down(azurite.stop)
            key = f"storage-{round_}-during"
            job = shell_job(outages.script(rng))
            uid, status = _try_post(host, "/api/jobs", key, {}, job)
            assert status in (202, 503, None), status  # taken, refused for now, or no answer: never another 5xx
            time.sleep(max(0.0, down + STORAGE_OUTAGE_SECONDS - time.monotonic()))
            back_at.append(outages.back(azurite.start))
            uid = uid or _post_until_accepted(host, "/api/jobs", key, {}, job)
            assert uid, "the job POSTed during the outage was never accepted"
            uids.append(uid)
            readers.uids.append(uid)
            bodies = _settle(outages, uids[-OUTAGE_JOBS - 1 :], {}, timeout=120)
            ended = time.monotonic() - back_at[-1]
            print(f"storage round {round_}: every job ended {ended:.1f} s after storage came back")
        bodies = _settle(outages, uids, {}, timeout=30)
    abandoned = _abandoned(host.log)
    print(f"work items abandoned because their result could not be recorded: {len(abandoned)}")
    for line in abandoned[:6]:
        print("  " + line)
    _check(outages, "storage outage rounds", STORAGE_ROUNDS, bodies, {}, readers)
    assert abandoned, "no activity lost its result: the rounds did not test redelivery"


def _dmss_job(name: str, script: str) -> dict:
    return {
        "type": "dmss://WorkflowDS/Blueprints/Job",
        "name": name,
        "label": "dmss outage",
        "status": "not started",
        "runner": {"type": "JOBCORE:Shell", "script": script, "environmentVariables": []},
    }


@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to look for orphans")
def test_dmss_unreachable_mid_run_delays_its_writes_and_loses_no_job(outages):
    """DMSS drops every connection (as a DMSS that is down: the app answers 503) for 5 s while DMSS jobs run
    and finish: each job ends once with its log and result, and its entity in DMSS says `completed` once DMSS
    is back (the write-back retries)."""
    rng = random.Random(int(os.environ.get("FAULT_SEED", "20261201")) + 2)
    host, dmss = outages.host, outages.dmss
    headers = {"Access-Key": outages.token}
    addresses: dict[str, str] = {}
    uids: list[str] = []
    with Readers(host.url, headers) as readers:
        for round_ in range(DMSS_ROUNDS):
            for i in range(OUTAGE_JOBS):
                doc_id = dmss.put("DS", _dmss_job(f"outage-{round_}-{i}", outages.script(rng)))
                uid = _post_until_accepted(host, f"/api/jobs/DS/${doc_id}", f"dmss-{round_}-{i}", headers)
                assert uid
                addresses[uid] = f"dmss://DS/${doc_id}"
                uids.append(uid)
                readers.uids.append(uid)
            time.sleep(rng.uniform(0.3, 1.0))
            down = outages.down(lambda: dmss.drop("*"))
            doc_id = dmss.put("DS", _dmss_job(f"outage-{round_}-during", outages.script(rng)))
            path, key = f"/api/jobs/DS/${doc_id}", f"dmss-{round_}-during"
            uid, status = _try_post(host, path, key, headers)
            assert status == 503, status  # DMSS is needed to read the job: refused for now
            time.sleep(max(0.0, down + DMSS_OUTAGE_SECONDS - time.monotonic()))
            outages.back(dmss.clear_faults)
            uid = _post_until_accepted(host, path, key, headers)
            assert uid
            addresses[uid] = f"dmss://DS/${doc_id}"
            uids.append(uid)
            readers.uids.append(uid)
            _settle(outages, uids[-OUTAGE_JOBS - 1 :], headers, timeout=120)
            ended = time.monotonic() - outages.windows[-1][1]
            print(f"DMSS round {round_}: every job ended {ended:.1f} s after DMSS came back")
        bodies = _settle(outages, uids, headers, timeout=30)
    counts = _check(outages, "DMSS outage rounds", DMSS_ROUNDS, bodies, headers, readers)
    dropped = [r.endpoint for r in dmss.requests if r.status == 0]
    print(f"DMSS requests dropped during the outages: {len(dropped)} ({', '.join(sorted(set(dropped)))})")
    assert "put" in dropped, "no write-back met the outage: the rounds did not test it"
    assert counts["jobs"] == DMSS_ROUNDS * (OUTAGE_JOBS + 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        behind = {uid: dmss.lookup(a).get("status") for uid, a in addresses.items()}
        behind = {uid: status for uid, status in behind.items() if status != "completed"}
        if not behind:
            break
        time.sleep(0.5)
    assert behind == {}, f"entities DMSS was not told of the end: {behind}"
