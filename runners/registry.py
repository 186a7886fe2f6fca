"""From a runner `type` string to the runner that handles it.

Open to new runners without editing the core: besides the built-ins listed here, runners come from the
`dm_job.runners` entry-point group (a distribution's `pyproject.toml`) and from modules named in the app
setting JOB_RUNNER_MODULES. Each such module exposes `RUNNERS` (a list of Runner classes) or a
`register(registry)` function. Runners are created once and kept: the old service re-created handlers per call.
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import entry_points

from shared.platform import settings
from shared.jobs.models import normalise_type

from .base import Runner

log = logging.getLogger(__name__)

BUILTIN_MODULES = (
    "runners.shell",
    "runners.simulated",
    "runners.local_container",
    "runners.azure_container",
    "runners.radix",
)
ENTRY_POINT_GROUP = "dm_job.runners"


class UnknownRunner(LookupError):
    pass


class RunnerRegistry:
    def __init__(self) -> None:
        self._classes: dict[str, type[Runner]] = {}
        self._instances: dict[type[Runner], Runner] = {}
        self._lock = threading.Lock()

    def register(self, runner_class: type[Runner]) -> None:
        for name in runner_class.type_names:
            self._classes[normalise_type(name)] = runner_class

    def register_module(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        if hasattr(module, "register"):
            module.register(self)
        for runner_class in getattr(module, "RUNNERS", ()):
            self.register(runner_class)

    def types(self) -> list[str]:
        return sorted(self._classes)

    def runner_class(self, type_name: str) -> type[Runner]:
        try:
            return self._classes[normalise_type(type_name)]
        except KeyError:
            raise UnknownRunner(type_name) from None

    def get(self, type_name: str) -> Runner:
        runner_class = self.runner_class(type_name)
        with self._lock:
            runner = self._instances.get(runner_class)
            if runner is None:
                runner = self._instances[runner_class] = runner_class()
            return runner


def _load_default() -> RunnerRegistry:
    registry = RunnerRegistry()
    for module_name in BUILTIN_MODULES:
        try:
            registry.register_module(module_name)
        except ImportError as error:  # a runner whose SDK is not installed is simply absent
            log.warning("runner module %s not loaded: %s", module_name, error)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        registry.register_module(entry.module)
    for module_name in settings.get_list("JOB_RUNNER_MODULES"):
        registry.register_module(module_name)
    return registry


_default: RunnerRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> RunnerRegistry:
    global _default
    with _default_lock:
        if _default is None:
            _default = _load_default()
        return _default


def reset_default_registry() -> None:
    """Forget the loaded registry (tests that change JOB_RUNNER_MODULES)."""
    global _default
    with _default_lock:
        _default = None
