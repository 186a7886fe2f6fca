"""Adapts the async Durable client to the service's synchronous `Orchestrations` protocol.

HTTP functions that need the client are `async` (the binding hands them the client), but the service does
blocking storage I/O: they run it in a worker thread (`run_sync`), and the service reaches back to the client
on the function's event loop through this bridge.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TypeVar

import azure.durable_functions as df

from shared.platform.names import ENDED, ORCHESTRATOR, STOP_EVENT, WAKE_EVENT

FINISHED = ("Completed", "Failed", "Terminated")
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)  # the SDK wants a lower bound; no job is older

T = TypeVar("T")
CLIENT_TIMEOUT_SECONDS = 30


_rpc: dict[str, str | None] = {"url": None}


def remember_endpoint(client: Any) -> None:
    """Keep the Durable client's local RPC endpoint (the extension's webhook on this instance; no key in it), so
    code without a client binding (a listener inside an activity starting a webhook delivery) can start
    orchestrations through it. Every function with a client binding tells it: on a scaled-out app an instance
    that has served any of them can start at once instead of leaving the start to the minute timer."""
    bindings = getattr(client, "_orchestration_bindings", None)  # where the SDK keeps the binding's JSON
    url = getattr(bindings, "rpc_base_url", None)
    if url:
        _rpc["url"] = url


def rpc_endpoint() -> str | None:
    return _rpc["url"]


def forget_endpoint() -> None:
    _rpc["url"] = None


class ClientOrchestrations:
    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop):
        self._client = client
        self._loop = loop
        remember_endpoint(client)

    def _call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=CLIENT_TIMEOUT_SECONDS)

    def start(self, uid: str, input: dict[str, Any]) -> None:
        self._call(self._client.start_new(ORCHESTRATOR, instance_id=uid, client_input=input))

    def raise_stop(self, uid: str) -> None:
        self._call(self._client.raise_event(uid, STOP_EVENT, None))

    def wake(self, uid: str) -> None:
        """Raise the wake event without waiting for it (the read that caused it answers at once); a wake that
        is lost only means the next poll comes at its usual time."""
        future = asyncio.run_coroutine_threadsafe(self._client.raise_event(uid, WAKE_EVENT, None), self._loop)
        future.add_done_callback(lambda done: done.exception())  # retrieve it: a lost wake is not an error

    def wake_ended(self, uid: str) -> None:
        """Like `wake`, saying the job ended (its own final report, its process exited): polled at once."""
        future = asyncio.run_coroutine_threadsafe(self._client.raise_event(uid, WAKE_EVENT, ENDED), self._loop)
        future.add_done_callback(lambda done: done.exception())

    def runtime_status(self, uid: str) -> str | None:
        """The instance's runtime status, or None when there is no such instance. The extension answers 404
        with no body, which the SDK turns into a status with no runtime_status (durable-python
        models/utils/http_utils.py get_async_request, DurableOrchestrationStatus.from_json)."""
        status = self._call(self._client.get_status(uid))
        runtime = getattr(status, "runtime_status", None)
        return None if runtime is None else getattr(runtime, "value", str(runtime))

    def terminate(self, uid: str, reason: str) -> None:
        self._call(self._client.terminate(uid, reason))


async def run_sync(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work off the event loop (the loop must stay free for the durable client's calls)."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args, **kwargs))


async def purge_finished_history(client: Any, days: int, now: datetime) -> int:
    """Delete the Durable history of job orchestrations that finished and started more than `days` ago.

    Large instance tables slow the Durable backend's queries; the job's own record, log and result are kept in
    the app's store and are not touched. Returns how many instances were purged.
    """
    statuses = [df.OrchestrationRuntimeStatus(name) for name in FINISHED]
    result = await client.purge_instance_history_by(
        created_time_from=EPOCH, created_time_to=now - timedelta(days=days), runtime_status=statuses
    )
    return int(getattr(result, "instances_deleted", 0) or 0)
