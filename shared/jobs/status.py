"""Job status strings, exactly as the old DM-Job service and its clients spell them."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    REGISTERED = "registered"
    NOT_STARTED = "not started"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    COMPLETED = "completed"
    REMOVED = "removed"
    UNKNOWN = "unknown"

    def __str__(self) -> str:  # so f-strings and JSON give the wire value
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.REMOVED})


def parse_status(value: str) -> JobStatus:
    """Accept the wire strings (case-insensitive); raise ValueError naming the allowed ones otherwise."""
    normalised = value.strip().lower()
    for status in JobStatus:
        if status.value == normalised:
            return status
    allowed = ", ".join(s.value for s in JobStatus)
    raise ValueError(f"unknown job status {value!r}; expected one of: {allowed}")
