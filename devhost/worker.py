"""The Python worker's one thread pool for sync functions, and the host.json limits the Durable extension applies.

Local/test host only. What is copied, and from where:

* every synchronous function the worker invokes (HTTP, timer, orchestrator, activity) runs in one
  `ThreadPoolExecutor`, `async def` ones on the worker's event loop (azure-functions-python-worker
  azure_functions_worker/dispatcher.py: `_sync_call_tp`, `_run_sync_func`, `run_in_executor`);
* its size is the app setting `PYTHON_THREADPOOL_THREAD_COUNT`, and without it (Python >= 3.9) the worker passes
  `max_workers=None`, so the pool has Python's default `min(32, os.cpu_count() + 4)` threads
  (dispatcher.py `_get_sync_tp_max_workers`, `_create_sync_call_tp`); a value that is not an integer >= 1 is
  ignored with a warning, as there;
* `asyncio.run_in_executor(None, ...)` inside an async function uses the loop's *default* executor, a separate
  pool of the same default size: the worker sets no default executor, and neither does this host;
* the Durable extension dispatches at most `extensions.durableTask.maxConcurrentActivityFunctions` activities and
  `maxConcurrentOrchestratorFunctions` orchestrator episodes at once per host (defaults 10 x processors, or
  10 activities / 5 orchestrators on a Consumption plan: azure-functions-durable-extension
  src/WebJobs.Extensions.DurableTask/AzureStorageDurabilityProviderFactory.cs); the engine holds that many
  dispatch slots, and each invocation still waits for a free worker thread.

An invocation that runs past host.json `functionTimeout` is failed by the host with the WebJobs SDK's
FunctionTimeoutException message; the worker's thread is not freed by that (Python cannot stop a thread). The
real host then restarts the worker process (azure-functions-host
src/WebJobs.Script.WebHost/WebScriptHostExceptionHandler.cs), which this host cannot do: see README.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from .functions import FunctionInfo, call_async, call_sync

log = logging.getLogger("devhost.worker")

THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0  # Flex Consumption's default functionTimeout (30 minutes)


def thread_count(env: dict[str, str] | None = None) -> int | None:
    """The worker's max_workers: the setting when it is an integer >= 1, else None (Python's default)."""
    value = (os.environ if env is None else env).get(THREAD_COUNT_SETTING)
    if value is None or value == "":
        return None
    try:
        count = int(value)
    except ValueError:
        log.warning("%s must be an integer", THREAD_COUNT_SETTING)
        return None
    if count < 1:
        log.warning(
            "%s must be set to a value between 1 and sys.maxint. Reverting to default value for max_workers",
            THREAD_COUNT_SETTING,
        )
        return None
    return count


def parse_timespan(text: str | None) -> float | None:
    """host.json TimeSpan (`hh:mm:ss`, `d.hh:mm:ss`) in seconds; `-1` (unbounded) and None give None."""
    if text is None or str(text).strip() in ("", "-1"):
        return None
    m = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", str(text).strip())
    if not m:
        raise ValueError(f"functionTimeout '{text}' is not a TimeSpan (hh:mm:ss)")
    days, hours, minutes, seconds = m.groups()
    return ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(seconds)


def format_timespan(seconds: float) -> str:
    """A TimeSpan as .NET prints it (`00:10:00`, `1.00:00:00`, `00:00:00.5000000`): the timeout message's."""
    ticks = round(seconds * 10_000_000)
    whole, fraction = divmod(ticks, 10_000_000)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}" + (f".{fraction:07d}" if fraction else "")
    return f"{days}.{text}" if days else text


class FunctionTimeout(Exception):
    """The host's FunctionTimeoutException (azure-webjobs-sdk FunctionExecutor: this exact message)."""

    def __init__(self, timeout: float, function_name: str):
        super().__init__(
            f"Timeout value of {format_timespan(timeout)} was exceeded by function: Functions.{function_name}"
        )


class WorkerPool:
    """The worker's sync pool: `invoke` from a host-side thread, `invoke_async` from the event loop."""

    def __init__(self, max_workers: int | None = None, function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT):
        self.executor = ThreadPoolExecutor(max_workers, thread_name_prefix="devhost-worker")
        self.function_timeout = function_timeout

    @property
    def size(self) -> int:
        return self.executor._max_workers

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        return self.executor.submit(fn, *args, **kwargs)

    def invoke(self, info: FunctionInfo, kwargs: dict[str, Any]) -> Any:
        """Run a function as the worker would and wait for it, at most functionTimeout (then FunctionTimeout;
        the thread stays busy until the function returns)."""
        if info.is_async:
            try:
                return call_sync(info, kwargs, self.function_timeout)
            except FutureTimeout:
                raise FunctionTimeout(self.function_timeout, info.name) from None
        return self.call(info.name, info.func, **kwargs)

    def call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` on a worker thread, waited for at most functionTimeout."""
        future = self.executor.submit(fn, *args, **kwargs)
        try:
            return future.result(self.function_timeout)
        except FutureTimeout:
            raise FunctionTimeout(self.function_timeout, name) from None

    async def invoke_async(self, info: FunctionInfo, kwargs: dict[str, Any]) -> Any:
        return await call_async(info, kwargs, self.executor)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
