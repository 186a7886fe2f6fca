"""Shell runner details: starts that crash half-way, processes that leave the group, reused pids, and what a
script can see of the app (its environment, its process)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runners import host_guard, shell
from runners.base import JobSpec
from runners.shell import ShellRunner, launch_processes
from shared.jobs.status import JobStatus

pytestmark = pytest.mark.timeout(120)

CANARY = "canary-host-value-3b9d"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    monkeypatch.setenv("JOB_WORK_DIR", str(tmp_path / "work"))
    return tmp_path


def spec(script: str, **environment: str) -> JobSpec:
    return JobSpec(
        uid=str(uuid.uuid4()),
        config={"type": ShellRunner.type_names[0], "script": script},
        environment={"JOB_UID": "x", **environment},
        time_limit_seconds=60,
    )


def wait_until(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def finish(runner: ShellRunner, handle: dict) -> object:
    return wait_until(lambda: (lambda s: s if s.finished else None)(runner.status(handle)))


def test_a_start_that_dies_before_its_launch_record_runs_nothing(work, monkeypatch):
    """The host dies right after spawning the wrapper (the launch record never written): that wrapper runs
    nothing, and the next start launches the one copy that runs."""
    marker = work / "runs"
    job = spec(f"echo run >> {marker}; echo done")
    crashed = ShellRunner()

    def die(*args, **kwargs):
        raise SystemExit("host killed")

    monkeypatch.setattr(shell, "_write_launch", die)
    with pytest.raises(SystemExit):
        crashed.start(job)
    monkeypatch.undo()
    monkeypatch.setenv("ENABLE_LOCAL_RUNNERS", "true")
    monkeypatch.setenv("JOB_WORK_DIR", str(work / "work"))
    [orphan] = list(crashed._children.values())
    restarted = ShellRunner()
    assert restarted.find(job) is None  # nothing was launched as far as anyone can know
    handle = restarted.start(job)
    assert finish(restarted, handle).state == JobStatus.COMPLETED
    assert orphan.wait(5) == 0  # the first wrapper saw another launch's record and left without running
    assert marker.read_text().split() == ["run"]
    restarted.cleanup(handle)


def test_a_wrapper_without_a_launch_record_gives_up(work, monkeypatch):
    monkeypatch.setattr(shell, "_write_launch", lambda *args: None)
    runner = ShellRunner()
    handle = runner.start(spec(f"touch {work}/ran"))
    [process] = list(runner._children.values())
    assert process.wait(shell.LAUNCH_WAIT_STEPS * 0.05 + 10) == 0
    assert not (work / "ran").exists() and not (Path(handle["workdir"]) / "exit_code").exists()


def test_adopting_a_finished_job_reads_its_outcome(work):
    job = spec('echo out; echo "the result" > "$JOB_RESULT_FILE"; exit 0')
    first = ShellRunner().start(job)
    runner = ShellRunner()  # restarted host
    wait_until(lambda: (Path(first["workdir"]) / "exit_code").exists())
    handle = runner.start(job)
    assert handle == first
    status = runner.status(handle)
    assert status.state == JobStatus.COMPLETED and status.log == ["out"]
    assert runner.result(handle).strip() == "the result"
    runner.cleanup(handle)


def test_stop_and_cleanup_reach_processes_that_left_the_group(work):
    runner = ShellRunner()
    pids = work / "pids"
    handle = runner.start(spec(f"setsid sleep 300 & echo $! > {pids}; sleep 300"))
    wait_until(pids.exists)
    escaped = int(wait_until(lambda: pids.read_text().strip()))
    wait_until(lambda: os.getpgid(escaped) != handle["pgid"])  # setsid has run: its own group now
    assert escaped in launch_processes(handle["launch"])
    runner.stop(handle)
    wait_until(lambda: escaped not in launch_processes(handle["launch"]))
    assert launch_processes(handle["launch"]) == []
    runner.cleanup(handle)


def test_a_finished_scripts_background_processes_end_at_cleanup(work):
    runner = ShellRunner()
    handle = runner.start(spec("setsid sleep 300 & echo started"))
    assert finish(runner, handle).state == JobStatus.COMPLETED
    assert launch_processes(handle["launch"])  # still running in the background
    runner.cleanup(handle)
    wait_until(lambda: not launch_processes(handle["launch"]))
    runner.cleanup(handle)  # again: harmless


def test_a_reused_pid_is_never_signalled(work):
    """A handle whose pid now belongs to another process (here: this test's own) is a job that has ended."""
    workdir = work / "old"
    workdir.mkdir()
    handle = {"pid": os.getpid(), "pgid": os.getpgid(0), "workdir": str(workdir), "started": 1, "launch": "gone"}
    runner = ShellRunner()
    assert runner.status(handle).state == JobStatus.FAILED
    assert runner.stop(handle) == "the script had already ended"
    runner.cleanup(handle)  # and we are still here


def test_handles_of_the_previous_version_still_work(work):
    runner = ShellRunner()
    handle = runner.start(spec("sleep 300"))
    old = {key: handle[key] for key in ("pid", "pgid", "workdir")}
    assert runner.status(old).state == JobStatus.RUNNING
    runner.stop(old)
    assert finish(runner, old).state == JobStatus.FAILED
    runner.cleanup(old)


# --- what a script can see of the app ---------------------------------------------------------------------


def test_the_script_gets_none_of_the_apps_environment(work, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", f"DefaultEndpointsProtocol=http;AccountKey={CANARY}")
    runner = ShellRunner()
    handle = runner.start(spec("env", OWN="mine"))
    finish(runner, handle)
    names = {line.partition("=")[0] for line in runner.logs(handle).splitlines()}
    assert CANARY not in runner.logs(handle)
    assert "OWN" in names and "AzureWebJobsStorage" not in names
    assert names <= {
        "OWN",
        "JOB_UID",
        "JOB_RESULT_FILE",
        shell.LAUNCH_MARKER,
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
        *shell._INHERITED,
    }, names
    runner.cleanup(handle)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_the_script_cannot_read_the_apps_process(work):
    """The app's process is non-dumpable and (as root) the script has no capability: /proc/<app>/environ and
    /proc/<app>/mem are refused, as is ptrace. This test's own process is the app here."""
    runner = ShellRunner()
    assert host_guard.guard_state() == {"host_non_dumpable": True, "scripts_without_capabilities": True}
    app = os.getpid()
    script = (
        f"cat /proc/{app}/environ > environ.txt 2>/dev/null && echo ENVIRON-READ; "
        f"head -c 16 /proc/{app}/mem > /dev/null 2>&1 && echo MEM-READ; "
        f"tr '\\0' '\\n' < /proc/{app}/environ 2>&1 | head -c 200; "
        "grep CapEff /proc/self/status; echo checked"
    )
    handle = runner.start(spec(script))
    finish(runner, handle)
    text = runner.logs(handle)
    assert "checked" in text and "ENVIRON-READ" not in text and "MEM-READ" not in text, text
    assert "Permission denied" in text, text
    assert "CapEff:\t0000000000000000" in text, text
    assert not (Path(handle["workdir"]) / "environ.txt").read_bytes()
    runner.cleanup(handle)


def test_guard_reports_a_platform_without_it(monkeypatch, caplog):
    monkeypatch.setattr(host_guard, "_protected", None)
    monkeypatch.setattr(host_guard.sys, "platform", "darwin")
    assert host_guard.protect_host() is False
    assert "can read this app's environment" in caplog.text
    monkeypatch.setattr(host_guard, "_protected", None)
    monkeypatch.setattr(host_guard.sys, "platform", "linux")
    assert host_guard.protect_host() is True


def test_guard_without_setpriv_as_root_says_what_is_left(monkeypatch, caplog):
    monkeypatch.setattr(host_guard, "_prefix", None)
    monkeypatch.setattr(host_guard.os, "geteuid", lambda: 0)
    monkeypatch.setattr(host_guard.shutil, "which", lambda name: None)
    assert host_guard.script_prefix() == []
    assert "setpriv (util-linux) is not installed" in caplog.text
    monkeypatch.setattr(host_guard, "_prefix", None)


def test_a_group_of_zombies_has_ended():
    """Processes that exited but are not reaped yet (their parent, e.g. an init, is slow) are no job running."""
    import subprocess

    process = subprocess.Popen(["true"], start_new_session=True)
    handle = {"pid": process.pid, "pgid": process.pid, "started": shell.start_ticks(process.pid)}
    wait_until(lambda: (shell._stat(process.pid) or ["?"])[0] == "Z")
    assert not shell._group_alive(handle)
    process.wait()


NOBODY_PROBE = """
import importlib.util, os, subprocess, sys
spec = importlib.util.spec_from_file_location("host_guard", sys.argv[1])
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)
def read():
    return subprocess.run(["bash", "-c", f"tr '\\\\0' '\\\\n' < /proc/{os.getpid()}/environ"], capture_output=True,
                          text=True).stdout
before = read()
print("protected" if guard.protect_host() else "unprotected", guard.script_prefix())
after = read()
print("before:", "CANARY_SEEN" if sys.argv[2] in before else "-")
print("after:", "CANARY_SEEN" if sys.argv[2] in after else "-")
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid")
    or os.geteuid() != 0
    or not Path("/usr/bin/python3").exists()
    or not Path("/usr/bin/setpriv").exists(),
    reason="needs root, /usr/bin/python3 and setpriv",
)
def test_an_app_that_is_not_root_is_out_of_reach_of_its_scripts_too():
    """What a developer who is not root gets: the app's process is non-dumpable, so a script of the same user
    cannot read its environment (before, it could). Run as `nobody` with the system Python."""
    import tempfile

    guard_file = Path(host_guard.__file__)
    for parent in guard_file.parents:  # nobody must reach the module
        if (parent.stat().st_mode & 0o001) == 0:
            pytest.skip(f"{parent} is not searchable by other users")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:
        Path(where).chmod(0o755)
        probe = Path(where) / "probe.py"
        probe.write_text(NOBODY_PROBE)
        probe.chmod(0o644)
        _probe_as_nobody(probe, guard_file)


def _probe_as_nobody(probe: Path, guard_file: Path) -> None:
    import subprocess

    done = subprocess.run(
        [
            "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            str(probe),
            str(guard_file),
            CANARY,
        ],
        env={"PATH": "/usr/bin:/bin", "NOBODY_CANARY": CANARY},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    if done.returncode != 0 and "Permission denied" in done.stderr:
        pytest.skip(f"nobody cannot run the probe here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["protected []", "before: CANARY_SEEN", "after: -"], done.stdout


class _Notices:
    """A local HTTP server standing in for the app's progress route: records each PUT, and which command lines
    of this host showed the token while the notice was being sent."""

    def __init__(self, token: str):
        self.token, self.received, self.leaked = token, [], []
        notices = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                notices.leaked += [pid for pid, line in _cmdlines().items() if notices.token in line]
                notices.received.append((self.path, self.headers.get("Authorization"), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/jobs"


def _cmdlines() -> dict[str, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[entry.name] = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
    return found


@pytest.mark.skipif(not shutil.which("curl"), reason="the exit notice is sent with curl")
def test_the_wrapper_tells_the_app_when_the_script_exits(work):
    """The app hears of the exit at once (a PUT `{"exited": true}` with the job's token, on no command line), and
    only after the exit code is stored, so the poll it causes sees the end."""
    token = "tok-" + uuid.uuid4().hex
    notices = _Notices(token)
    try:
        job = spec("sleep 0.5; exit 3", JOB_TOKEN=token, DM_JOB_URL=notices.url + "/", JOB_UID="job-7")
        runner = ShellRunner()
        handle = runner.start(job)
        wait_until(lambda: notices.received, timeout=30)
        assert runner.status(handle).exit_code == 3  # stored before the notice went out
        path, authorization, body = notices.received[0]
        assert path == "/api/jobs/job-7?overwrite_log=false"
        assert authorization == f"Bearer {token}" and json.loads(body) == {"exited": True}
        assert notices.leaked == [], "the token showed on a command line"
        time.sleep(0.5)
        assert len(notices.received) == 1
        runner.cleanup(handle)
    finally:
        notices.server.shutdown()


def test_without_a_token_or_address_the_wrapper_sends_nothing(work):
    """No JOB_TOKEN, or an address nobody answers: the job ends as always (the notice is best effort)."""
    runner = ShellRunner()
    handle = runner.start(spec("echo fine", DM_JOB_URL="http://127.0.0.1:9/api/jobs", JOB_TOKEN="t-1234"))
    assert finish(runner, handle).state == JobStatus.COMPLETED
    handle = runner.start(spec("echo fine"))
    assert finish(runner, handle).state == JobStatus.COMPLETED
