"""Loading a function app module and calling its functions the way the Python worker does.

Local/test host only. The worker finds `app` (a `FunctionApp`/`DFApp`) in the module, reads each function's
bindings from `get_dict_repr()` and calls `get_user_function()` with one keyword argument per input binding
(plus `context` if the function declares it). `async def` functions run on the shared event loop; plain `def`
functions run in a thread pool, so a slow sync function never blocks the server.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import importlib.util
import inspect
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import loop as shared_loop
from .indexing import app_functions, find_app


@dataclass
class FunctionInfo:
    name: str
    func: Callable[..., Any]
    bindings: list[dict]
    trigger: dict

    @property
    def trigger_type(self) -> str:
        return self.trigger.get("type", "")

    def binding(self, kind: str) -> dict | None:
        return next((b for b in self.bindings if b.get("type") == kind), None)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def parameters(self) -> list[str]:
        try:
            return list(inspect.signature(self.func).parameters)
        except (TypeError, ValueError):
            return []


@dataclass
class FunctionIndex:
    """The app's functions by trigger kind."""

    app: Any
    all: list[FunctionInfo] = field(default_factory=list)

    @classmethod
    def from_app(cls, app: Any) -> "FunctionIndex":
        # Indexed once per app object (indexing.app_functions makes a repeated get_functions() safe as well).
        cached = getattr(app, "_devhost_index", None)
        if cached is not None:
            return cached
        index = cls(app)
        for fn in app_functions(app):
            # get_function_json() stringifies enums (methods, auth level) exactly as the worker reports them
            bindings = list(json.loads(fn.get_function_json()).get("bindings", []))
            trigger = next((b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")), {})
            index.all.append(FunctionInfo(fn.get_function_name(), fn.get_user_function(), bindings, trigger))
        try:
            app._devhost_index = index
        except AttributeError:
            pass
        return index

    def of_type(self, kind: str) -> list[FunctionInfo]:
        return [f for f in self.all if f.trigger_type == kind]

    def orchestrators(self) -> dict[str, FunctionInfo]:
        out = {}
        for f in self.of_type("orchestrationTrigger"):
            out[f.trigger.get("orchestration") or f.name] = f
        return out

    def activities(self) -> dict[str, FunctionInfo]:
        out = {}
        for f in self.of_type("activityTrigger"):
            out[f.trigger.get("activity") or f.name] = f
        return out


_private_modules: dict[Path, Any] = {}


def load_module(app_dir: str | Path, module: str = "function_app") -> Any:
    """Import `module` from `app_dir` (the worker imports the app's script file from the app's folder).

    The module keeps its own name when that name is free or already this folder's module; when another folder's
    module holds the name (the real app and a sample app, both `function_app`, in one test session) it is loaded
    from its file under a private name, once per file: a module with side effects at import is not run twice.
    """
    app_dir = Path(app_dir).resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    path = (app_dir / (module.replace(".", "/") + ".py")).resolve()
    existing = sys.modules.get(module)
    if existing is not None and _origin(existing) == path:
        return existing
    if existing is None:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin and Path(spec.origin).resolve() == path:
            return importlib.import_module(module)
    if path not in _private_modules:
        spec = importlib.util.spec_from_file_location(f"_devhost_app_{uuid.uuid4().hex[:8]}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        _private_modules[path] = mod
    return _private_modules[path]


def _origin(mod: Any) -> Path | None:
    file = getattr(mod, "__file__", None)
    return Path(file).resolve() if file else None


def load_app(app_dir: str | Path, module: str = "function_app") -> Any:
    """The `app` (a `FunctionApp`/`DFApp`) of the module `load_module` gives."""
    return _app_of(load_module(app_dir, module))


def _app_of(mod: Any) -> Any:
    """The module's one top-level function app, whatever its name (the worker's rule: indexing.find_app)."""
    try:
        return find_app(mod)
    except ValueError as exc:
        raise RuntimeError(f"module {mod.__name__}: {exc}") from None


class InvocationContext:
    """What the worker passes as `context` (azure.functions.Context): enough for logging and the DF client."""

    def __init__(self, function_name: str, function_directory: str = ""):
        self.invocation_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_directory = function_directory
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = None


def build_kwargs(info: FunctionInfo, values: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the user function: binding values by name, `context` if declared."""
    params = info.parameters()
    kwargs = {name: value for name, value in values.items() if name in params}
    if "context" in params and "context" not in kwargs:
        kwargs["context"] = InvocationContext(info.name)
    for b in info.bindings:  # unsupported input bindings: pass None rather than failing the call
        name = b.get("name")
        if b.get("direction", "").upper() == "IN" and name in params and name not in kwargs:
            kwargs[name] = None
    return kwargs


def call_sync(info: FunctionInfo, kwargs: dict[str, Any], timeout: float | None = None) -> Any:
    """Call from a worker thread: sync functions directly, async ones on the shared loop."""
    if info.is_async:
        return shared_loop.run(info.func(**kwargs), timeout)
    return info.func(**kwargs)


async def call_async(info: FunctionInfo, kwargs: dict[str, Any], executor) -> Any:
    """Call from the loop: async functions awaited, sync ones in `executor`."""
    if info.is_async:
        return await info.func(**kwargs)
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(ctx.run, info.func, **kwargs))
