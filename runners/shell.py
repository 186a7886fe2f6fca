"""Shell runner: a bash script on the app's own host (local development; off unless ENABLE_LOCAL_RUNNERS).

Each job gets its own working directory and its own process group (a new session), so stop can kill the whole
tree the script started. A small wrapper writes the script's exit code to a file: status then works from the
files alone, also after a host restart when this process is no longer the script's parent. The job does not
inherit the app's environment (it holds the storage connection string): only PATH, HOME, LANG and TMPDIR, plus
the job's own environment.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.platform import settings
from shared.jobs.models import BLUEPRINTS
from shared.jobs.status import JobStatus

from .base import ConfigError, JobSpec, Runner, RunnerError, RunnerStatus

TAIL_BYTES = 64 * 1024
FULL_LOG_LIMIT = 10 * 1024 * 1024
RESULT_TAIL_LINES = 50
KILL_GRACE_SECONDS = 2.0
_WRAPPER = 'bash ./script.sh >output.log 2>&1; code=$?; echo $code > exit_code.tmp; mv exit_code.tmp exit_code'
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


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class ShellRunner(Runner):
    type_names = (BLUEPRINTS + "Shell",)
    local = True

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}  # reaped here when we are the parent
        self._lock = threading.Lock()

    def validate(self, config: dict[str, Any]) -> None:
        try:
            ShellConfig.model_validate(config)
        except ValidationError as error:
            raise ConfigError("Shell runner needs a `script` string") from error

    def start(self, job: JobSpec) -> dict[str, Any]:
        config = ShellConfig.model_validate(job.config)
        workdir = work_root() / job.uid
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "script.sh").write_text(config.script, encoding="utf-8")
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(job.environment)
        env["JOB_RESULT_FILE"] = str(workdir / "result")
        try:
            process = subprocess.Popen(["bash", "-c", _WRAPPER], cwd=workdir, env=env, start_new_session=True,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        except OSError as error:
            raise RunnerError(f"could not start bash: {error.strerror}") from None
        with self._lock:
            self._children[process.pid] = process
        return {"pid": process.pid, "pgid": process.pid, "workdir": str(workdir)}

    def _reap(self, pid: int) -> None:
        with self._lock:
            process = self._children.get(pid)
        if process is not None and process.poll() is not None:
            with self._lock:
                self._children.pop(pid, None)

    def _exit_code(self, workdir: Path) -> int | None:
        try:
            return int((workdir / "exit_code").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def status(self, handle: dict[str, Any]) -> RunnerStatus:
        workdir = Path(handle["workdir"])
        self._reap(handle["pid"])
        log = _tail_lines(workdir / "output.log")
        code = self._exit_code(workdir)
        if code is None:
            if _group_alive(handle["pgid"]) or self._is_child_alive(handle["pid"]):
                return RunnerStatus(JobStatus.RUNNING, log=log)
            code = self._exit_code(workdir)  # it may have finished between the two checks
            if code is None:
                return RunnerStatus(JobStatus.FAILED, log=log, message="the script's processes ended without an "
                                                                       "exit code (killed)")
        if code == 0:
            return RunnerStatus(JobStatus.COMPLETED, log=log, exit_code=0, message="exit code 0",
                                percentage=100.0)
        return RunnerStatus(JobStatus.FAILED, log=log, exit_code=code, message=f"the script failed with exit code "
                                                                               f"{code}")

    def _is_child_alive(self, pid: int) -> bool:
        with self._lock:
            process = self._children.get(pid)
        return process is not None and process.poll() is None

    def stop(self, handle: dict[str, Any]) -> str:
        pgid = handle["pgid"]
        if not _group_alive(pgid):
            self._reap(handle["pid"])
            return "the script had already ended"
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self._reap(handle["pid"])
                if not _group_alive(pgid):
                    return "stopped: the script's process group was killed"
                time.sleep(0.02)
        self._reap(handle["pid"])
        return "stopped: the script's process group was killed"

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
        if _group_alive(handle["pgid"]):
            self.stop(handle)
        self._reap(handle["pid"])
        shutil.rmtree(handle["workdir"], ignore_errors=True)


RUNNERS = [ShellRunner]
