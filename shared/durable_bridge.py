"""Adapts the async Durable client to the service's synchronous `Orchestrations` protocol.

HTTP functions that need the client are `async` (the binding hands them the client), but the service does
blocking storage I/O: they run it in a worker thread (`run_sync`), and the service reaches back to the client
on the function's event loop through this bridge.
"""
from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, TypeVar

from .orchestrator import ORCHESTRATOR, STOP_EVENT

T = TypeVar("T")
CLIENT_TIMEOUT_SECONDS = 30


class ClientOrchestrations:
    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop):
        self._client = client
        self._loop = loop

    def _call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=CLIENT_TIMEOUT_SECONDS)

    def start(self, uid: str, input: dict[str, Any]) -> None:
        self._call(self._client.start_new(ORCHESTRATOR, instance_id=uid, client_input=input))

    def raise_stop(self, uid: str) -> None:
        self._call(self._client.raise_event(uid, STOP_EVENT, None))

    def terminate(self, uid: str, reason: str) -> None:
        self._call(self._client.terminate(uid, reason))


async def run_sync(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work off the event loop (the loop must stay free for the durable client's calls)."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args, **kwargs))
