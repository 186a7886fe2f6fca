"""App settings as the Functions host provides them: `local.settings.json` `Values` + process environment.

Local/test host only. Precedence, as with `func start`: a variable already set in the process environment wins
over `local.settings.json`; a programmatic `settings` dict given to `DevHost` wins over both (it is the test's
explicit choice). Values are put into `os.environ` (process-wide: two hosts in one process share them) and the
host restores what it changed when it stops.

The settings the local host itself reads (not the app's: those are declared in shared/platform/settings.py) are
declared in `HOST_SETTINGS` below, with what each does.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


# Settings of the local host (and of the platform pieces it stands in for), read from the environment it set up.
HOST_SETTINGS: dict[str, str] = {
    "DEVHOST_REQUIRE_KEYS": "true: enforce function keys like the real host (default false, like `func start`)",
    "DEVHOST_KEYS_FILE": "JSON file of keys in `az functionapp keys list` shape (+ `functions`); see keys.py",
    "DEVHOST_MASTER_KEY": "the master key (Admin level), when keys are enforced",
    "DEVHOST_FUNCTION_KEY": "a host function key named `default` (Function level), when keys are enforced",
    "PYTHON_THREADPOOL_THREAD_COUNT": "threads of the worker's pool for sync functions (the Python worker's "
    "setting; default min(32, cpu + 4))",
}
_TRUE = {"1", "true", "yes", "on"}


def flag(name: str, env: dict[str, str] | None = None) -> bool:
    """A boolean host setting (`1`, `true`, `yes`, `on`, any case, are true)."""
    return (os.environ if env is None else env).get(name, "").strip().lower() in _TRUE


def read_local_settings(app_dir: Path) -> dict[str, str]:
    path = Path(app_dir) / "local.settings.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    return {str(k): "" if v is None else str(v) for k, v in (data.get("Values") or {}).items()}


def read_host_json(app_dir: Path) -> dict[str, Any]:
    path = Path(app_dir) / "host.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8-sig"))


class EnvironmentPatch:
    """Applies settings to os.environ and undoes exactly its own changes."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        if name not in self._saved:
            self._saved[name] = os.environ.get(name)
        os.environ[name] = value

    def apply(self, app_dir: Path, overrides: dict[str, Any] | None) -> None:
        for name, value in read_local_settings(app_dir).items():
            if name not in os.environ:
                self.set(name, value)
        for name, value in (overrides or {}).items():
            self.set(str(name), "" if value is None else str(value))

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


_SETTING = re.compile(r"%([^%]+)%")


def resolve(value: str | None) -> str | None:
    """`%NAME%` indirection in binding properties (schedules, hub names), as the host resolves app settings."""
    if value is None:
        return None

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise KeyError(f"app setting '{name}' referenced as %{name}% is not set")
        return os.environ[name]

    return _SETTING.sub(sub, value)
