"""Poll interval policy: pure, so the orchestrator (which is replayed) can use it deterministically.

Polls start short, double while nothing changes up to a cap, and drop back to the minimum after a change:
a job that is busy reporting is followed closely, a quiet 24-hour job costs about 1,440 polls a day at the
default 60 s cap instead of the old UI's 43,200.

Someone watching changes the cadence, not the backoff (shared.jobs.freshness): a read raises a `wake` event, and
a job woken within the last WATCHED_WINDOWS freshness windows is *watched*: it polls at least once per window
(`watched`, JOB_FRESHNESS_SECONDS), so its end is noticed between its reader's reads, not only at them, and at
most once per window, however many wakes arrive (a wake that comes less than a window after the last poll only
keeps the job watched). A wake that says the job ended (its own final report, its process's exit) is polled at
once. Everything here is decided from the orchestration's own state and `context.current_utc_datetime`: pure,
so replays decide the same. A job nobody wakes never leaves the backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.platform import settings

WATCHED_WINDOWS = 3  # a job woken within this many freshness windows keeps a cadence of one window


@dataclass(frozen=True)
class PollPolicy:
    minimum: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    watched: float = 0.0  # the freshness window: at most this long between polls while watched (0: no cadence)

    def __post_init__(self) -> None:
        if not (0 < self.minimum <= self.maximum) or self.factor < 1 or self.watched < 0:
            raise ValueError("poll policy needs 0 < minimum <= maximum, factor >= 1 and watched >= 0")

    def next(self, current: float, changed: bool) -> float:
        if changed:
            return self.minimum
        return min(self.maximum, max(self.minimum, current * self.factor))

    def as_dict(self) -> dict[str, float]:
        return {"minimum": self.minimum, "maximum": self.maximum, "factor": self.factor, "watched": self.watched}

    @classmethod
    def from_dict(cls, data: dict) -> "PollPolicy":
        """`watched` is absent from instances started before it existed: they keep the old behaviour (a wake
        polls at once)."""
        return cls(
            float(data["minimum"]), float(data["maximum"]), float(data["factor"]), float(data.get("watched", 0.0))
        )

    @classmethod
    def from_settings(cls) -> "PollPolicy":
        return cls(
            settings.get_float("POLL_INTERVAL_MIN_SECONDS"),
            settings.get_float("POLL_INTERVAL_MAX_SECONDS"),
            settings.get_float("POLL_BACKOFF_FACTOR"),
            max(0.0, settings.get_float("JOB_FRESHNESS_SECONDS")),
        )

    def next_wait(self, state: dict[str, Any], now: datetime) -> float:
        """Seconds until the next poll. Unwatched: the backoff's interval, counted from now (the last poll just
        answered). Watched: no more than one window, counted from the last poll (0 when that is over)."""
        interval = float(state["interval"])
        if not self._watched(state, now):
            return interval
        since = (now - datetime.fromisoformat(state["lastPoll"])).total_seconds() if "lastPoll" in state else interval
        return max(0.0, min(interval, self.watched) - since)

    def woken(self, state: dict[str, Any], now: datetime) -> bool:
        """A reader's wake arrived: the job is watched for the next WATCHED_WINDOWS windows. True when it should
        poll now: its last poll is a window old (or, without a window, always)."""
        if not self.watched:
            return True
        state["watchedUntil"] = (now + timedelta(seconds=self.watched * WATCHED_WINDOWS)).isoformat()
        return self.next_wait(state, now) == 0

    def _watched(self, state: dict[str, Any], now: datetime) -> bool:
        until = state.get("watchedUntil")
        return bool(self.watched) and until is not None and now < datetime.fromisoformat(until)


def mark_polled(state: dict[str, Any], now: datetime) -> None:
    """Note when the runner was last asked (the watched cadence counts from it)."""
    state["lastPoll"] = now.isoformat()
