"""The one source of "now" for the app.

Production reads the system clock. The local host (`devhost`) replaces it with a virtual clock so that a
24-hour job or a simulated day of schedules runs in seconds; every timestamp the app writes, every time
limit and every due schedule is computed from `now()`, never from `datetime.now()` directly.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        _time.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to; thread-safe. `sleep` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            if when > self._now:
                self._now = when

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


_clock: Clock = SystemClock()


def now() -> datetime:
    """Current UTC time (aware)."""
    return _clock.now()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> None:
    global _clock
    _clock = clock


def iso(dt: datetime | None) -> str | None:
    """Serialise as the old service did: UTC, no microseconds, `Z` suffix."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt
