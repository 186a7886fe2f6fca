"""A job as stored: `JobRecord`, one row of the `Jobs` table, and how it becomes that row and back.

Pure: no I/O. `shared.jobs.store` reads and writes these records; `shared.jobs.transitions` changes their
status. JSON-valued fields are kept under the table's string limit by `fit_inline` (large entities go to
blobs before they get here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from shared.jobs.status import JobStatus

ROW = "job"
INLINE_TEXT_LIMIT = 30_000  # characters: a table string property holds 32 Ki UTF-16 units


class JobNotFound(LookupError):
    pass


@dataclass
class JobRecord:
    """One job as stored. `entity` is the job entity as submitted (with its unknown attributes)."""

    uid: str
    kind: str = "job"  # "job" | "recurring"
    status: JobStatus = JobStatus.NOT_STARTED
    entity: dict[str, Any] = field(default_factory=dict)
    entity_ref: str | None = None  # blob holding the entity when it is too large for the row
    runner_type: str = ""
    label: str | None = None
    triggered_by: str | None = None
    owner: str | None = None  # caller id of the starter (authorization)
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    message: str = ""
    percentage: float | None = None
    log: list[str] = field(default_factory=list)  # runner log tail
    reported_log: list[str] = field(default_factory=list)  # what the job PUT itself
    externally_reported: bool = False
    runner_state: str | None = None  # last state the runner reported (status changes only when this does)
    handle: dict[str, Any] | None = None
    time_limit_seconds: int | None = None
    stop_requested: bool = False
    result_ref: str | None = None
    log_ref: str | None = None
    secret_token: str | None = None  # DMSS job token: never leaves the store except to the runner/DMSS
    job_token: str | None = None  # the job's own progress credential (JOB_TOKEN), never shown
    dmss_address: str | None = None
    schedule: dict[str, Any] | None = None  # recurring jobs: schedule state (owned by shared.schedules.state)
    attempts: list[dict[str, Any]] | None = None  # jobs with a retry policy: one entry per attempt (`attempt_entry`)
    extra: dict[str, Any] = field(default_factory=dict)  # room for extensions without a layout change
    etag: str | None = field(default=None, compare=False)
    read_status: JobStatus | None = field(default=None, compare=False, repr=False)  # as read: for `replace_if`

    # ---- (de)serialisation -------------------------------------------------------------------------
    _JSON = ("entity", "log", "reported_log", "handle", "schedule", "extra", "attempts")
    _TIMES = ("created", "started", "ended")
    _NOT_STORED = ("uid", "etag", "read_status")

    def to_entity(self) -> dict[str, Any]:
        row: dict[str, Any] = {"PartitionKey": self.uid, "RowKey": ROW}
        for f in fields(self):
            if f.name in self._NOT_STORED:
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in self._JSON:
                value = json.dumps(value, separators=(",", ":"))
            elif isinstance(value, JobStatus):
                value = value.value
            row[f.name] = value
        return row

    @classmethod
    def from_entity(cls, row: dict[str, Any]) -> "JobRecord":
        values: dict[str, Any] = {"uid": row["PartitionKey"]}
        names = {f.name for f in fields(cls)}
        for key, value in row.items():
            if key not in names or key in cls._NOT_STORED:
                continue
            if key in cls._JSON:
                value = json.loads(value) if isinstance(value, str) else value
            elif key == "status":
                value = JobStatus(value)
            values[key] = value
        record = cls(**values)
        metadata = getattr(row, "metadata", None) or {}
        record.etag = metadata.get("etag")
        record.read_status = record.status
        return record


ATTEMPT_MESSAGE_CHARACTERS = 300  # an attempt entry stays small: 20 of them fit the row with room to spare


def attempt_entry(record: JobRecord, attempt: int) -> dict[str, Any] | None:
    """The entry of attempt `attempt` (1, 2, ...): {attempt, started, ended, status, exitCode, reason, message,
    logRef, resultRef, handle, retryIn}, the keys present once known. `handle` is the ended attempt's, kept for
    its cleanup; `retryIn` the wait before the next attempt, once one was decided."""
    for entry in record.attempts or []:
        if entry.get("attempt") == attempt:
            return entry
    return None


def current_attempt(record: JobRecord) -> int:
    """The attempt the job is on (running, or waiting to start): 1 for a job that has not been retried."""
    return int(record.attempts[-1]["attempt"]) if record.attempts else 1


def fit_inline(record: JobRecord) -> None:
    """Keep JSON properties under the table's string limit by moving big ones to blobs."""
    for name in ("entity", "schedule", "extra", "attempts"):
        value = getattr(record, name)
        if value is not None and len(json.dumps(value)) > INLINE_TEXT_LIMIT:
            raise ValueError(f"{name} of job {record.uid} is too large for the table; store it as text first")
    while record.log and len(json.dumps(record.log)) > INLINE_TEXT_LIMIT:
        record.log = record.log[len(record.log) // 4 + 1 :]
    while record.reported_log and len(json.dumps(record.reported_log)) > INLINE_TEXT_LIMIT:
        record.reported_log = record.reported_log[len(record.reported_log) // 4 + 1 :]
