"""Modules and objects loaded when first used instead of when `function_app` is imported.

The Functions host imports `function_app.py` on every cold start (each scale-out from zero) only to learn the
functions and their bindings; loading the code behind all of them then (pydantic models, the storage SDKs, cron,
webhooks) tripled that import. With these, the import costs the two SDKs plus the declarations, and each request
loads what it uses the first time it is used (bench/bench_cold_start.py measures both).

`importlib.import_module` takes the module's import lock, so two first requests at once load a module once and
neither sees it half-run. (`importlib.util.LazyLoader` would swap the module's class in place during its first
attribute access, which other threads can observe on Python 3.11; a proxy that only calls `import_module` cannot.)
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module `name`; the first attribute read imports it (once; later reads go straight to it)."""

    def __init__(self, name: str):
        self.__dict__["_name"] = name

    def _module(self) -> ModuleType:
        module = self.__dict__.get("_loaded")
        if module is None:
            module = self.__dict__["_loaded"] = importlib.import_module(self._name)
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:  # a test's monkeypatch reaches the real module
        setattr(self._module(), attribute, value)

    def __delattr__(self, attribute: str) -> None:
        delattr(self._module(), attribute)

    def __repr__(self) -> str:
        state = "loaded" if "_loaded" in self.__dict__ else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def module(name: str) -> LazyModule:
    return LazyModule(name)


def resolve(spec: str) -> Any:
    """The object a `"package.module:attribute"` spec names (the entry-point notation), importing its module."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"not a 'module:attribute' spec: {spec!r}")
    return getattr(importlib.import_module(module_name), attribute)


class Plugins:
    """Registered objects (lifecycle listeners, access delegates), some named by spec until first used.

    One per class: importing the app twice (a reloading host) does not double one. A spec naming a class is
    instantiated without arguments when loaded; loading happens once, under a lock, in whichever thread first
    asks for the list.
    """

    def __init__(self) -> None:
        self._objects: list[Any] = []
        self._specs: list[str] = []
        self._lock = threading.Lock()

    def add(self, plugin: Any) -> None:
        if isinstance(plugin, str):
            if plugin not in self._specs:
                self._specs.append(plugin)
            return
        self._objects[:] = [existing for existing in self._objects if type(existing) is not type(plugin)]
        self._objects.append(plugin)

    def remove(self, plugin: Any) -> None:
        if plugin in self._objects:
            self._objects.remove(plugin)

    def all(self) -> list[Any]:
        if self._specs:
            with self._lock:
                while self._specs:
                    found = resolve(self._specs[0])
                    self.add(found() if isinstance(found, type) else found)
                    self._specs.pop(0)
        return list(self._objects)

    def clear(self) -> None:
        self._objects.clear()
        self._specs.clear()
