"""One process-wide asyncio event loop in a daemon thread, shared by every DevHost in the process.

Local/test host only. Why one loop for the whole process: the Durable Functions SDK client keeps a module-level
aiohttp `ClientSession` (and an `asyncio.Lock`) bound to the loop it was first used on; a second loop in the same
process would get "Event loop is closed" / "attached to a different loop". So the aiohttp servers of all hosts,
every `async def` function and every SDK client call run on this loop, which lives as long as the process.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from typing import Any, Awaitable

from azure.durable_functions.models.utils import http_utils

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="devhost-loop", daemon=True)
            thread.start()
            started.wait()
            _loop, _thread = loop, thread
        return _loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def run(coro: Awaitable[Any], timeout: float | None = None) -> Any:
    """Run a coroutine on the shared loop from any other thread and wait for its result."""
    if in_loop_thread():
        raise RuntimeError("devhost.loop.run() called from the loop thread; await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, get_loop()).result(timeout)


def _close_at_exit() -> None:
    """Close the SDK's shared aiohttp session on its own loop, then stop the loop (no 'Unclosed' warnings)."""
    if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
        return
    try:
        asyncio.run_coroutine_threadsafe(http_utils._close_session(), _loop).result(5)
    except Exception:  # noqa: BLE001 - best effort at interpreter exit
        pass
    _loop.call_soon_threadsafe(_loop.stop)


atexit.register(_close_at_exit)
