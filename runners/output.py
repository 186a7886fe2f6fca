"""What runners keep of a job's output: how many log lines a status shows, and a bounded memo of ended jobs.

`log_tail_lines()` is the LOG_TAIL_LINES setting (200 when unreadable), read at call time. `Memo` is a small
bounded, thread-safe map from a job's container (or group) name to what was captured before the platform lost
it (the full log, the result, the final status): ACI keeps 16 KB of log after a group stops and nothing once it
is deleted; a removed local container keeps nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from shared.platform import settings

DEFAULT_LOG_TAIL_LINES = 200


def log_tail_lines() -> int:
    try:
        return settings.get_int("LOG_TAIL_LINES")
    except ValueError:
        return DEFAULT_LOG_TAIL_LINES


class Memo:
    """A small bounded, thread-safe map (last logs/results/statuses of ended jobs); the oldest entry goes first."""

    def __init__(self, size: int = 512):
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def pop(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
