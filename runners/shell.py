"""Shell runner: a bash script on the app's own host (local development; off unless ENABLE_LOCAL_RUNNERS).

Each job gets its own working directory `<JOB_WORK_DIR>/<uid>` and its own process group (a new session), so
stop can kill the whole tree the script started. A small wrapper writes the script's exit code to a file:
status then works from the files alone, also after a host restart when this process is no longer the
script's parent.

Starting is idempotent. `start` runs under an exclusive lock on the working directory (`start.lock`, an
flock: a host that dies lets go of it) and first looks for the job's launch record (`launch`: a random launch
id, the wrapper's pid and its start time). When there is one, the job was launched already (an activity
retried, or one that crashed after `start` returned and before the handle was stored) and `start` answers the
same handle without launching again. Otherwise it spawns the wrapper and writes the record; the wrapper waits
(up to LAUNCH_WAIT_STEPS x 50 ms) until the record names its own launch id before it runs the script, and
exits without running it when the record names another launch or never comes. So a host that dies between
spawning and writing the record leaves no script running, and the next start launches the one copy that runs.

Every process of the launch carries its id in DM_JOB_LAUNCH_ID: stop and cleanup kill the process group and
then every process that still has the id in its environment (one that left the group with `setsid`). The
pid in a handle is checked against its start time before it is signalled (pids are reused).

The script's environment: the job's own (JobSpec.environment), JOB_RESULT_FILE, DM_JOB_LAUNCH_ID, and PATH,
HOME, LANG, LC_ALL, TMPDIR from the app's environment; nothing else of the app's environment (it holds the
storage connection string). The app's own process is kept out of the script's reach (`runners.host_guard`):
it is made non-dumpable, so that /proc/<pid>/environ, /proc/<pid>/mem and ptrace are refused to processes
without CAP_SYS_PTRACE, and when the app runs as root the script runs without any capability
(`setpriv --bounding-set=-all --inh-caps=-all --no-new-privs`), so that root's CAP_SYS_PTRACE does not undo
that. Where the platform cannot do this (no prctl, no setpriv), jobs still run and a warning says what a
script can read. The script is not sandboxed otherwise: it runs as the app's OS user and can read what that
user can (see README, "Jobs and their environment").
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.platform import settings
from shared.jobs.models import BLUEPRINTS
from shared.jobs.status import JobStatus

from . import host_guard
from .base import ConfigError, JobSpec, Runner, RunnerError, RunnerStatus, no_secrets_in_errors

log = logging.getLogger(__name__)

TAIL_BYTES = 64 * 1024
FULL_LOG_LIMIT = 10 * 1024 * 1024
RESULT_TAIL_LINES = 50
KILL_GRACE_SECONDS = 2.0
REAP_WAIT_SECONDS = 5.0  # an init may reap orphans only every few seconds (2 s seen)
LAUNCH_FILE = "launch"
LOCK_FILE = "start.lock"
LAUNCH_MARKER = "DM_JOB_LAUNCH_ID"
LAUNCH_WAIT_STEPS = 200  # x 50 ms: how long a wrapper waits for its launch record before giving up
# When the script has exited (its code stored), tell the app, so the job's end is seen now, not at the next poll of
# a backoff that may be a minute away: a PUT of `{"exited": true}` to the job's own progress route with the job's
# token, which the app answers by waking the orchestration (at most once per window; shared.jobs.freshness). The
# token goes to curl on its standard input (`-K -`, printf is a bash builtin): never on a command line, which any
# user could read in /proc/<pid>/cmdline. Best effort: no curl, no token or no answer within EXIT_NOTICE_SECONDS
# leaves the job to its polls; curl's output goes nowhere. Sent again by a second wrapper? Only one wrapper runs a
# script (the launch record), and a notice twice is one wake (a finished job is not woken).
EXIT_NOTICE_SECONDS = 10
EXIT_NOTICE = (
    '[ -n "$JOB_TOKEN" ] && [ -n "$DM_JOB_URL" ] && [ -n "$JOB_UID" ] && command -v curl >/dev/null && '
    '{ printf \'header = "Authorization: Bearer %s"\\n\' "$JOB_TOKEN" | '
    f"curl -s -o /dev/null -m {EXIT_NOTICE_SECONDS} -K - -X PUT -H 'Content-Type: application/json' "
    """--data '{"exited": true}' "${DM_JOB_URL%/}/$JOB_UID?overwrite_log=false"; }; exit 0"""
)
# Run the script only once the launch record names this launch; give up at once when it names another one
# (a later start took over), or after LAUNCH_WAIT_STEPS x 50 ms without a record (its host died).
_WRAPPER = (
    f"for ((i = 0; i < {LAUNCH_WAIT_STEPS}; i++)); do t=; read -r t rest 2>/dev/null <{LAUNCH_FILE}; "
    f'[ "$t" = "${LAUNCH_MARKER}" ] && break; [ -n "$t" ] && exit 0; sleep 0.05; done; '
    f'[ "$t" = "${LAUNCH_MARKER}" ] || exit 0; '
    "bash ./script.sh >output.log 2>&1; code=$?; echo $code > exit_code.tmp; mv exit_code.tmp exit_code; " + EXIT_NOTICE
)
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


class ShellConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    script: str


def work_root() -> Path:
    base = settings.get("JOB_WORK_DIR") or os.path.join(tempfile.gettempdir(), "dm-job-work")
    return Path(base)


def _tail_lines(path: Path, limit_bytes: int = TAIL_BYTES) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit_bytes))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > limit_bytes and lines:
        lines = lines[1:]  # first line is probably cut
    return lines


# --- processes ---------------------------------------------------------------------------------------------


def _stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on, or None (gone, or no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None without /proc."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _only_zombies(pgid: int) -> bool:
    """Every process left in group `pgid` has exited and waits to be reaped (by a parent that is not us, e.g. an
    init that is slow to reap): the group has ended. False when /proc cannot tell."""
    leader = _stat(pgid)
    if leader is not None and leader[0] != "Z":
        return False
    if not Path("/proc/self/stat").exists():
        return False
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return False
    return True


def _leader_replaced(handle: dict[str, Any]) -> bool:
    """The handle's pid now belongs to another process (the job's ended and the pid was reused)."""
    expected = handle.get("started")
    if not expected:
        return False
    now = start_ticks(handle["pid"])
    return now is not None and now != expected


def _group_alive(handle: dict[str, Any]) -> bool:
    if _leader_replaced(handle):
        return False  # a live group keeps its leader's pid from being reused: this group is gone
    try:
        os.killpg(handle["pgid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _only_zombies(handle["pgid"])


def launch_processes(launch_id: str) -> list[int]:
    """Pids of the processes that carry `launch_id` in DM_JOB_LAUNCH_ID (this process never)."""
    if not launch_id:
        return []
    needle = f"{LAUNCH_MARKER}={launch_id}\0".encode()
    found = []
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def _kill_strays(launch_id: str) -> int:
    """SIGKILL every process of the launch that is left (e.g. one that left the process group with setsid)."""
    killed = 0
    for pid in launch_processes(launch_id):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


# --- the launch record and its lock ------------------------------------------------------------------------


@contextmanager
def _start_lock(workdir: Path) -> Iterator[None]:
    """Exclusive while one start looks for the launch record and launches; released when its holder dies."""
    fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_launch(workdir: Path) -> dict[str, Any] | None:
    try:
        launch_id, pid, started = (workdir / LAUNCH_FILE).read_text().split()[:3]
        return {"launch": launch_id, "pid": int(pid), "started": int(started)}
    except (FileNotFoundError, ValueError):
        return None


def _write_launch(workdir: Path, launch_id: str, pid: int, started: int | None) -> None:
    temporary = workdir / f"{LAUNCH_FILE}.tmp"
    temporary.write_text(f"{launch_id} {pid} {started or 0}\n")
    os.replace(temporary, workdir / LAUNCH_FILE)


def _handle(workdir: Path, launched: dict[str, Any]) -> dict[str, Any]:
    handle = {"pid": launched["pid"], "pgid": launched["pid"], "workdir": str(workdir), "launch": launched["launch"]}
    if launched.get("started"):
        handle["started"] = launched["started"]
    return handle


class ShellRunner(Runner):
    type_names = (BLUEPRINTS + "Shell",)
    local = True

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}  # reaped here when we are the parent
        self._lock = threading.Lock()
        host_guard.protect_host()

    def validate(self, config: dict[str, Any]) -> None:
        try:
            ShellConfig.model_validate(config)
        except ValidationError as error:
            raise ConfigError("Shell runner needs a `script` string") from error

    def start(self, job: JobSpec) -> dict[str, Any]:
        config = ShellConfig.model_validate(job.config)
        workdir = work_root() / job.run_id  # an attempt of its own per retry (JobSpec.run_id)
        workdir.mkdir(parents=True, exist_ok=True)
        with _start_lock(workdir), no_secrets_in_errors(job):
            launched = _read_launch(workdir)
            if launched is not None:  # launched before (a retried or crashed start): the same job, not a new one
                return _handle(workdir, launched)
            return self._launch(job, config, workdir)

    def find(self, job: JobSpec) -> dict[str, Any] | None:
        workdir = work_root() / job.run_id  # an attempt of its own per retry (JobSpec.run_id)
        if not workdir.is_dir():
            return None
        with _start_lock(workdir):
            launched = _read_launch(workdir)
        return _handle(workdir, launched) if launched is not None else None

    def _launch(self, job: JobSpec, config: ShellConfig, workdir: Path) -> dict[str, Any]:
        (workdir / "script.sh").write_text(config.script, encoding="utf-8")
        launch_id = secrets.token_hex(12)
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(job.environment)
        env["JOB_RESULT_FILE"] = str(workdir / "result")
        env[LAUNCH_MARKER] = launch_id
        host_guard.protect_host()
        try:
            process = subprocess.Popen(
                [*host_guard.script_prefix(), "bash", "-c", _WRAPPER],
                cwd=workdir,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as error:
            raise RunnerError(f"could not start bash: {error.strerror}") from None
        with self._lock:
            self._children[process.pid] = process
        started = start_ticks(process.pid)
        _write_launch(workdir, launch_id, process.pid, started)  # from here on the wrapper runs the script
        return _handle(workdir, {"launch": launch_id, "pid": process.pid, "started": started})

    def _reap(self, handle: dict[str, Any]) -> None:
        pid = handle["pid"]
        with self._lock:
            process = self._children.get(pid)
        if process is None:
            if not _leader_replaced(handle):
                try:  # a child of this process that another runner instance launched: reap it too
                    os.waitpid(pid, os.WNOHANG)
                except (ChildProcessError, OSError):
                    pass
        elif process.poll() is not None:
            with self._lock:
                self._children.pop(pid, None)

    def _exit_code(self, workdir: Path) -> int | None:
        try:
            return int((workdir / "exit_code").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        workdir = Path(handle["workdir"])
        self._reap(handle)
        log_lines = _tail_lines(workdir / "output.log")
        code = self._exit_code(workdir)
        if code is None:
            if _group_alive(handle) or self._is_child_alive(handle["pid"]):
                return RunnerStatus(JobStatus.RUNNING, log=log_lines)
            code = self._exit_code(workdir)  # it may have finished between the two checks
            if code is None:
                return RunnerStatus(
                    JobStatus.FAILED,
                    log=log_lines,
                    message="the script's processes ended without an exit code (killed)",
                )
        if code == 0:
            return RunnerStatus(
                JobStatus.COMPLETED, log=log_lines, exit_code=0, message="exit code 0", percentage=100.0
            )
        return RunnerStatus(
            JobStatus.FAILED, log=log_lines, exit_code=code, message=f"the script failed with exit code {code}"
        )

    def _is_child_alive(self, pid: int) -> bool:
        with self._lock:
            process = self._children.get(pid)
        return process is not None and process.poll() is None

    def _kill_group(self, handle: dict[str, Any]) -> None:
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            if not _group_alive(handle):
                return
            try:
                os.killpg(handle["pgid"], sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self._reap(handle)
                if not _group_alive(handle):
                    self._await_reaping(handle)
                    return
                time.sleep(0.02)

    def _await_reaping(self, handle: dict[str, Any], seconds: float = REAP_WAIT_SECONDS) -> None:
        """The group's processes have exited; give their parents (or init) a moment to reap them, so that
        when stop returns, they are gone from the process table too."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._reap(handle)
            try:
                os.killpg(handle["pgid"], 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.02)

    def stop(self, handle: dict[str, Any]) -> str:
        alive = _group_alive(handle)
        if alive:
            self._kill_group(handle)
        strays = _kill_strays(handle.get("launch", ""))
        self._reap(handle)
        if alive:
            return "stopped: the script's process group was killed"
        if strays:
            return f"stopped: {strays} process(es) the script left behind were killed"
        return "the script had already ended"

    def logs(self, handle: dict[str, Any]) -> str:
        return "\n".join(_tail_lines(Path(handle["workdir"]) / "output.log", FULL_LOG_LIMIT))

    def result(self, handle: dict[str, Any]) -> str | None:
        workdir = Path(handle["workdir"])
        result_file = workdir / "result"
        if result_file.exists():
            return result_file.read_text(encoding="utf-8", errors="replace")
        tail = _tail_lines(workdir / "output.log")[-RESULT_TAIL_LINES:]
        return "\n".join(tail) if tail else None

    def cleanup(self, handle: dict[str, Any]) -> None:
        self.stop(handle)  # also what a finished script left running in the background
        shutil.rmtree(handle["workdir"], ignore_errors=True)


RUNNERS = [ShellRunner]
