"""Poll interval policy: pure, so the orchestrator (which is replayed) can use it deterministically.

Polls start short, double while nothing changes up to a cap, and drop back to the minimum after a change:
a job that is busy reporting is followed closely, a quiet 24-hour job costs about 1,440 polls a day at the
default 60 s cap instead of the old UI's 43,200.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.platform import settings


@dataclass(frozen=True)
class PollPolicy:
    minimum: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.minimum <= self.maximum) or self.factor < 1:
            raise ValueError("poll policy needs 0 < minimum <= maximum and factor >= 1")

    def next(self, current: float, changed: bool) -> float:
        if changed:
            return self.minimum
        return min(self.maximum, max(self.minimum, current * self.factor))

    def as_dict(self) -> dict[str, float]:
        return {"minimum": self.minimum, "maximum": self.maximum, "factor": self.factor}

    @classmethod
    def from_dict(cls, data: dict) -> "PollPolicy":
        return cls(float(data["minimum"]), float(data["maximum"]), float(data["factor"]))

    @classmethod
    def from_settings(cls) -> "PollPolicy":
        return cls(
            settings.get_float("POLL_INTERVAL_MIN_SECONDS"),
            settings.get_float("POLL_INTERVAL_MAX_SECONDS"),
            settings.get_float("POLL_BACKOFF_FACTOR"),
        )
