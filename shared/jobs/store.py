"""Job state in Azure Table Storage, large text in Blob storage: the only module that knows the layout.

Tables (names prefixed by JOB_STORE_PREFIX):
- `Jobs`: one row per job, PartitionKey = uid, RowKey = "job". A status read is one point read.
- `JobIndex`: the listing index, PartitionKey = "jobs", RowKey = inverted creation time + uid, so a query
  returns newest first and pages with the table's own continuation token. Status is a property (never a key:
  keys are immutable and a status partition runs hot), kept in step on every status change.
- `Idempotency`: PartitionKey = hash of (caller, Idempotency-Key), the first job's uid; claimed with an insert
  (409 = already claimed), so two concurrent repeats cannot both start a job.

Concurrent writers (a progress PUT, a poll, a stop) go through `update()`, a read-modify-write loop guarded by
the row's ETag: a stale write gets 412 and is redone on the fresh row, so nobody's change is lost. A mutation
that changes nothing writes nothing.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, \
    ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.platform import clock, storage
from shared.jobs.status import JobStatus

log = logging.getLogger(__name__)

ROW = "job"
INDEX_PARTITION = "jobs"
INLINE_TEXT_LIMIT = 30_000  # characters: a table string property holds 32 Ki UTF-16 units
MAX_UPDATE_ATTEMPTS = 20
_MAX_TICKS = 10**15


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
    schedule: dict[str, Any] | None = None  # recurring jobs: schedule state (owned by shared.schedules.tick)
    extra: dict[str, Any] = field(default_factory=dict)  # room for extensions without a layout change
    etag: str | None = field(default=None, compare=False)

    # ---- (de)serialisation -------------------------------------------------------------------------
    _JSON = ("entity", "log", "reported_log", "handle", "schedule", "extra")
    _TIMES = ("created", "started", "ended")

    def to_entity(self) -> dict[str, Any]:
        row: dict[str, Any] = {"PartitionKey": self.uid, "RowKey": ROW}
        for f in fields(self):
            if f.name in ("uid", "etag"):
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
            if key not in names or key in ("uid", "etag"):
                continue
            if key in cls._JSON:
                value = json.loads(value) if isinstance(value, str) else value
            elif key == "status":
                value = JobStatus(value)
            values[key] = value
        record = cls(**values)
        metadata = getattr(row, "metadata", None) or {}
        record.etag = metadata.get("etag")
        return record


def _fits_inline(record: JobRecord) -> None:
    """Keep JSON properties under the table's string limit by moving big ones to blobs."""
    for name in ("entity", "schedule", "extra"):
        value = getattr(record, name)
        if value is not None and len(json.dumps(value)) > INLINE_TEXT_LIMIT:
            raise ValueError(f"{name} of job {record.uid} is too large for the table; store it as text first")
    while record.log and len(json.dumps(record.log)) > INLINE_TEXT_LIMIT:
        record.log = record.log[len(record.log) // 4 + 1:]
    while record.reported_log and len(json.dumps(record.reported_log)) > INLINE_TEXT_LIMIT:
        record.reported_log = record.reported_log[len(record.reported_log) // 4 + 1:]


def _index_key(created: datetime, uid: str) -> str:
    ticks = int(created.timestamp() * 1000)
    return f"{_MAX_TICKS - ticks:015d}-{uid}"


class JobStore:
    def __init__(self) -> None:
        self.jobs = storage.table("Jobs")
        self.index = storage.table("JobIndex")
        self.idempotency = storage.table("Idempotency")

    # ---- rows ----------------------------------------------------------------------------------------
    def create(self, record: JobRecord) -> JobRecord:
        record.created = record.created or clock.now()
        _fits_inline(record)
        meta = self.jobs.create_entity(record.to_entity())
        record.etag = meta.get("etag")
        self._index(record)
        return record

    def get(self, uid: str) -> JobRecord:
        try:
            return JobRecord.from_entity(self.jobs.get_entity(uid, ROW))
        except ResourceNotFoundError:
            raise JobNotFound(uid) from None

    def update(self, uid: str, mutate: Callable[[JobRecord], bool | None]) -> JobRecord:
        """Apply `mutate` to the current row and write it if it changed; redone on a concurrent write.

        `mutate` may be called several times (once per attempt) and must only change the record it is given;
        returning False skips the write.
        """
        for _ in range(MAX_UPDATE_ATTEMPTS):
            record = self.get(uid)
            before = record.to_entity()
            old_status = record.status
            if mutate(record) is False:
                return record
            _fits_inline(record)
            after = record.to_entity()
            if after == before:
                return record
            try:
                meta = self.jobs.update_entity(after, mode=UpdateMode.REPLACE, etag=record.etag,
                                               match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError) as error:
                if isinstance(error, ResourceNotFoundError):
                    raise JobNotFound(uid) from None
                continue
            except HttpResponseError as error:
                if error.status_code == 412:
                    continue
                raise
            record.etag = meta.get("etag")
            if record.status != old_status or before.get("label") != after.get("label"):
                self._index(record)
            return record
        raise RuntimeError(f"job {uid}: too many concurrent updates")

    def delete(self, uid: str) -> None:
        try:
            record = self.get(uid)
        except JobNotFound:
            return
        self.jobs.delete_entity(uid, ROW)
        if record.created:
            self.index.delete_entity(INDEX_PARTITION, _index_key(record.created, uid))

    # ---- listing ------------------------------------------------------------------------------------
    def _index(self, record: JobRecord) -> None:
        if record.created is None:
            return
        self.index.upsert_entity({
            "PartitionKey": INDEX_PARTITION, "RowKey": _index_key(record.created, record.uid),
            "uid": record.uid, "status": record.status.value, "label": record.label or "",
            "kind": record.kind, "created": record.created,
        }, mode=UpdateMode.REPLACE)

    def list(self, status: JobStatus | None, limit: int, token: str | None) -> tuple[list[dict], str | None]:
        """Newest first. Returns (index rows, continuation token or None)."""
        query = f"PartitionKey eq '{INDEX_PARTITION}'"
        if status is not None:
            query += f" and status eq '{status.value}'"
        marker = json.loads(base64.urlsafe_b64decode(token.encode())) if token else None
        pages = self.index.query_entities(query, results_per_page=limit,
                                          select=["uid", "status", "label", "kind", "created"]).by_page(
            continuation_token=marker)
        rows: list[dict] = []
        next_marker = None
        for page in pages:
            rows.extend(dict(row) for row in page)
            next_marker = pages.continuation_token
            if rows or not next_marker:  # a page may be empty and still carry a token: read on
                break
        encoded = base64.urlsafe_b64encode(json.dumps(next_marker).encode()).decode() if next_marker else None
        return rows, encoded

    # ---- idempotency --------------------------------------------------------------------------------
    def claim_idempotency(self, caller: str, key: str, uid: str, ttl: timedelta) -> str | None:
        """Claim (caller, key) for `uid`. Returns the uid of an earlier claim still within `ttl`, else None."""
        partition = hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()
        row = {"PartitionKey": partition, "RowKey": "", "uid": uid, "claimed": clock.now()}
        for _ in range(3):
            try:
                self.idempotency.create_entity(row)
                return None
            except ResourceExistsError:
                existing = self.idempotency.get_entity(partition, "")
                if clock.now() - existing["claimed"] < ttl:
                    return existing["uid"]
                try:  # expired: take it over, guarded by its ETag
                    self.idempotency.update_entity(row, mode=UpdateMode.REPLACE,
                                                   etag=existing.metadata["etag"],
                                                   match_condition=MatchConditions.IfNotModified)
                    return None
                except (ResourceModifiedError, ResourceNotFoundError, HttpResponseError):
                    continue
        raise RuntimeError("idempotency key is being claimed concurrently")

    def release_idempotency(self, caller: str, key: str) -> None:
        partition = hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()
        try:
            self.idempotency.delete_entity(partition, "")
        except ResourceNotFoundError:
            pass

    # ---- large text ---------------------------------------------------------------------------------
    def put_text(self, uid: str, name: str, text: str) -> str:
        """Store text in Blob storage; returns the reference kept in the row."""
        ref = f"jobs/{uid}/{name}"
        storage.container().upload_blob(ref, text.encode("utf-8"), overwrite=True)
        return ref

    def get_text(self, ref: str) -> str:
        return storage.container().download_blob(ref).readall().decode("utf-8")

    def delete_texts(self, refs: Iterable[str]) -> None:
        for ref in refs:
            try:
                storage.container().delete_blob(ref)
            except ResourceNotFoundError:
                pass

    # ---- health -------------------------------------------------------------------------------------
    def ping(self) -> None:
        self.jobs.query_entities("PartitionKey eq 'health'", results_per_page=1).by_page().__next__()


_store: JobStore | None = None
_store_key: tuple | None = None


def store() -> JobStore:
    """The process's store for the current settings (tests change the prefix per test)."""
    global _store, _store_key
    key = (storage.prefix(), storage._connection())
    if _store is None or _store_key != key:
        _store, _store_key = JobStore(), key
    return _store
