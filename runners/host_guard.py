"""Keeping the app's own process out of reach of the scripts the shell runner starts on its host.

The app's environment holds its secrets (the storage connection string, keys). The shell runner never passes
it on, but a script of the same OS user could still read it from the app's process: /proc/<pid>/environ,
/proc/<pid>/mem, or ptrace. Two measures close that, where the platform has them:

- `protect_host()` makes this process non-dumpable (Linux `prctl(PR_SET_DUMPABLE, 0)`). The kernel then
  refuses /proc/<pid>/environ, /proc/<pid>/mem and ptrace of this process to every process that lacks
  CAP_SYS_PTRACE, also to processes of the same user. (It also means no core dumps of the app and no debugger
  attaching as the same user; root's debuggers still can.) Done once per process: when `runners` is imported
  with ENABLE_LOCAL_RUNNERS on (so a script that outlived a previous host finds the new one protected from its
  start), and again when the shell runner is created.
- `script_prefix()`: when the app runs as root, root's CAP_SYS_PTRACE would undo that, so scripts are started
  through `setpriv --bounding-set=-all --inh-caps=-all --no-new-privs`: still uid 0, but without any
  capability, now or after an exec (setuid and file capabilities included).

Where a measure is not available (not Linux; no setpriv), jobs still run and a warning is logged once saying
what a script can then read. `guard_state()` tells which measures are in force.

Chosen over a separate user (needs root, and a job could no longer write where its caller can, e.g. a
private temporary directory) and over a PID namespace (`unshare --pid`: needs root or unprivileged user
namespaces, which some distributions turn off, and a script's pids, `$$` and `$!`, would no longer be the
host's, which scripts and this service's tests use to report their processes).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
import threading

log = logging.getLogger(__name__)

PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
SETPRIV_OPTIONS = ("--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--")

_lock = threading.Lock()
_protected: bool | None = None
_prefix: list[str] | None = None


def _set_non_dumpable() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            return False
        return libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def protect_host() -> bool:
    """Make this process non-dumpable (once). True when it is."""
    global _protected
    with _lock:
        if _protected is None:
            _protected = _set_non_dumpable()
            if not _protected:
                log.warning(
                    "shell jobs can read this app's environment (its secrets included) through "
                    "/proc/<pid>/environ or ptrace: this platform (%s) cannot make the app's process "
                    "non-dumpable",
                    sys.platform,
                )
        return _protected


def _probe_setpriv() -> list[str]:
    path = shutil.which("setpriv")
    works = False
    if path:
        try:
            works = (
                subprocess.run(
                    [path, *SETPRIV_OPTIONS, "true"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                ).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            works = False
    if works:
        return [path, *SETPRIV_OPTIONS]
    log.warning(
        "the app runs as root and setpriv (util-linux) %s: shell scripts run as root with every "
        "capability and can read the app's environment through /proc/<pid>/environ",
        "does not work here" if path else "is not installed",
    )
    return []


def script_prefix() -> list[str]:
    """The command a script is started through: drops every capability when the app runs as root."""
    global _prefix
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return []
    with _lock:
        if _prefix is None:
            _prefix = _probe_setpriv()
        return list(_prefix)


def guard_state() -> dict[str, bool]:
    """Which measures are in force: the app's process non-dumpable; scripts without capabilities (always true
    when the app is not root: a script then has none to begin with)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return {"host_non_dumpable": protect_host(), "scripts_without_capabilities": not root or bool(script_prefix())}
