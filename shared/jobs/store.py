"""Where jobs are kept: the `JobStore` interface, its Table/Blob implementation, and `store()`.

Every write of a job goes through a `JobStore`: `create`, `update` (read-modify-write) and `replace_if`
(a conditional write of a record read earlier). The store is also where the lifecycle listeners
(`shared.platform.hooks`) hear of a status change, so no writer can change a status without the DMSS write-back
and the schedule history hearing of it.

Table layout (names prefixed by JOB_STORE_PREFIX):
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
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from functools import partial
from typing import Callable, Iterable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.jobs.record import ROW, JobNotFound, JobRecord, fit_inline
from shared.jobs.status import JobStatus
from shared.platform import clock, hooks, storage

log = logging.getLogger(__name__)

INDEX_PARTITION = "jobs"
MAX_UPDATE_ATTEMPTS = 20
ANNOUNCING = "announcing"  # record.extra: a status change whose index row and listeners may not have it yet
ANNOUNCE_GRACE_SECONDS = 60  # a marker this old was left by a writer that died (announcing takes well under it)
_MAX_TICKS = 10**15

Mutation = Callable[[JobRecord], "bool | None"]


def _index_key(created: datetime, uid: str) -> str:
    ticks = int(created.timestamp() * 1000)
    return f"{_MAX_TICKS - ticks:015d}-{uid}"


class JobStore(ABC):
    """What the service needs of job storage; the one way a job row is written."""

    @abstractmethod
    def create(self, record: JobRecord) -> JobRecord:
        """Insert a new job (and its index entry)."""

    @abstractmethod
    def get(self, uid: str) -> JobRecord:
        """The stored job; raises JobNotFound."""

    @abstractmethod
    def update(self, uid: str, mutate: Mutation) -> JobRecord:
        """Apply `mutate` to the current row and write it if it changed; redone on a concurrent write.

        `mutate` may be called several times (once per attempt) and must only change the record it is given;
        returning False skips the write. A status change is announced (index row, listeners) after the write
        succeeded, at least once: see `announce_pending`."""

    @abstractmethod
    def replace_if(self, record: JobRecord) -> bool:
        """Write `record` only if its row is unchanged since it was read (`record.etag`). Returns False, writing
        nothing, when the row has changed meanwhile; the caller then goes through `update`."""

    @abstractmethod
    def delete(self, uid: str) -> None: ...

    @abstractmethod
    def list(
        self, status: JobStatus | None, limit: int, token: str | None, *, owner: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Newest first; only `owner`'s jobs when given ("" for jobs started without an identity). Returns
        (index rows, continuation token or None)."""

    @abstractmethod
    def claim_idempotency(
        self,
        caller: str,
        key: str,
        uid: str,
        ttl: timedelta,
        *,
        abandoned: Callable[[str, timedelta], bool] | None = None,
    ) -> str | None:
        """Claim (caller, key) for `uid`. Returns the uid of an earlier claim still within `ttl`, else None.

        `abandoned(earlier_uid, age)` may say that an earlier claim was left by a start that died before storing
        its job: that claim is then taken over as if it had expired."""

    @abstractmethod
    def scan(self, statuses: Iterable[JobStatus], newest: datetime, oldest: datetime) -> Iterator[dict]:
        """Index rows of jobs in `statuses` created between `oldest` and `newest` (newest first)."""

    @abstractmethod
    def release_idempotency(self, caller: str, key: str) -> None: ...

    @abstractmethod
    def put_text(self, uid: str, name: str, text: str) -> str:
        """Store large text apart from the row; returns the reference kept in the row."""

    @abstractmethod
    def get_text(self, ref: str) -> str: ...

    @abstractmethod
    def delete_texts(self, refs: Iterable[str]) -> None: ...

    @abstractmethod
    def ping(self) -> None:
        """Raise if storage is unreachable (health)."""

    @abstractmethod
    def announce_pending(self, record: JobRecord, grace_seconds: float | None = None) -> bool:
        """Announce `record`'s last status change again if the process that wrote it died before it had (its
        marker is older than `grace_seconds`, ANNOUNCE_GRACE_SECONDS by default). True if it did."""


def _marked(record: JobRecord, old_status: JobStatus | None) -> bool:
    """A status-changing write carries a marker until its index row and listeners have it: a host that dies
    between the write and them leaves the marker, and whoever reads the job next (its poll) announces again."""
    if old_status is None or record.status == old_status:
        return False
    record.extra[ANNOUNCING] = {"status": record.status.value, "at": clock.now().isoformat()}
    return True


def _unmarked(status: str, record: JobRecord) -> bool | None:
    if (record.extra.get(ANNOUNCING) or {}).get("status") != status:
        return False  # already cleared, or a later change's own marker
    del record.extra[ANNOUNCING]
    return None


def _stale(marker: object, now: datetime, grace: float) -> bool:
    try:
        at = datetime.fromisoformat(marker["at"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return True
    return (now - at).total_seconds() >= grace


MAX_TOKEN_CHARACTERS = 2048


def decode_token(token: str) -> dict[str, str]:
    """A listing continuation token as the table gave it; ValueError for anything else (it comes from callers)."""
    if len(token) > MAX_TOKEN_CHARACTERS:
        raise ValueError("continuation token too long")
    try:
        marker = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (RecursionError, UnicodeError, TypeError) as error:
        raise ValueError("malformed continuation token") from error
    # the table's own token names the next row: {"PartitionKey": ..., "RowKey": ...}
    if (
        not isinstance(marker, dict)
        or not marker
        or not set(marker) <= {"PartitionKey", "RowKey"}
        or not all(isinstance(v, str) for v in marker.values())
    ):
        raise ValueError("malformed continuation token")
    return marker


class TableJobStore(JobStore):
    def __init__(self) -> None:
        self.jobs = storage.table("Jobs")
        self.index = storage.table("JobIndex")
        self.idempotency = storage.table("Idempotency")

    # ---- rows ----------------------------------------------------------------------------------------
    def create(self, record: JobRecord) -> JobRecord:
        record.created = record.created or clock.now()
        fit_inline(record)
        meta = self.jobs.create_entity(record.to_entity())
        record.etag = meta.get("etag")
        self._index(record)
        return record

    def get(self, uid: str) -> JobRecord:
        try:
            return JobRecord.from_entity(self.jobs.get_entity(uid, ROW))
        except ResourceNotFoundError:
            raise JobNotFound(uid) from None

    def update(self, uid: str, mutate: Mutation) -> JobRecord:
        for _ in range(MAX_UPDATE_ATTEMPTS):
            record = self.get(uid)
            before = record.to_entity()
            old_status = record.status
            if mutate(record) is False:
                return record
            marked = _marked(record, old_status)
            fit_inline(record)
            after = record.to_entity()
            if after == before:
                return record
            try:
                meta = self.jobs.update_entity(
                    after, mode=UpdateMode.REPLACE, etag=record.etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError) as error:
                if isinstance(error, ResourceNotFoundError):
                    raise JobNotFound(uid) from None
                continue
            except HttpResponseError as error:
                if error.status_code == 412:
                    continue
                raise
            record.etag = meta.get("etag")
            record.read_status = record.status
            if marked:
                self._announce(record)
            elif before.get("label") != after.get("label"):
                self._index(record)
            return record
        raise RuntimeError(f"job {uid}: too many concurrent updates")

    def replace_if(self, record: JobRecord) -> bool:
        if not record.etag:
            return False
        marked = _marked(record, record.read_status)
        fit_inline(record)
        if not self._write_if_unchanged(record):
            if marked:
                del record.extra[ANNOUNCING]
            return False
        record.read_status = record.status
        if marked:
            self._announce(record)
        return True

    def _write_if_unchanged(self, record: JobRecord) -> bool:
        try:
            meta = self.jobs.update_entity(
                record.to_entity(),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except HttpResponseError as error:
            if error.status_code == 412:
                return False
            raise
        record.etag = meta.get("etag")
        return True

    # ---- announcing a status change ------------------------------------------------------------------
    def _announce(self, record: JobRecord) -> None:
        """The index row and the listeners hear of the change, then its marker goes: written on top of this
        very write when nobody has written since (the caller's record stays current), else through `update`."""
        self._index(record)
        hooks.status_changed(record)
        marker = record.extra.pop(ANNOUNCING, None) or {}
        if not self._write_if_unchanged(record):
            self.update(record.uid, partial(_unmarked, marker.get("status", record.status.value)))

    def announce_pending(self, record: JobRecord, grace_seconds: float | None = None) -> bool:
        marker = record.extra.get(ANNOUNCING)
        grace = ANNOUNCE_GRACE_SECONDS if grace_seconds is None else grace_seconds
        if not marker or not _stale(marker, clock.now(), grace):
            return False
        log.warning("job %s: announcing its change to %s again (its writer stopped first)", record.uid, record.status)
        self._announce(record)
        return True

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
        self.index.upsert_entity(
            {
                "PartitionKey": INDEX_PARTITION,
                "RowKey": _index_key(record.created, record.uid),
                "uid": record.uid,
                "status": record.status.value,
                "label": record.label or "",
                "kind": record.kind,
                "created": record.created,
                "owner": record.owner or "",
            },
            mode=UpdateMode.REPLACE,
        )

    def list(
        self, status: JobStatus | None, limit: int, token: str | None, *, owner: str | None = None
    ) -> tuple[list[dict], str | None]:
        query = f"PartitionKey eq '{INDEX_PARTITION}'"
        if status is not None:
            query += f" and status eq '{status.value}'"
        if owner is not None:  # an OData string literal: quotes doubled
            query += " and owner eq '{}'".format(owner.replace("'", "''"))
        marker = decode_token(token) if token else None
        pages = self.index.query_entities(
            query, results_per_page=limit, select=["uid", "status", "label", "kind", "created"]
        ).by_page(continuation_token=marker)
        rows: list[dict] = []
        next_marker = None
        for page in pages:
            rows.extend(dict(row) for row in page)
            next_marker = pages.continuation_token
            if rows or not next_marker:  # a page may be empty and still carry a token: read on
                break
        encoded = base64.urlsafe_b64encode(json.dumps(next_marker).encode()).decode() if next_marker else None
        return rows, encoded

    def scan(self, statuses: Iterable[JobStatus], newest: datetime, oldest: datetime) -> Iterator[dict]:
        # RowKeys are inverted creation times: newer jobs sort first, so the range is [newest, oldest]
        wanted = " or ".join(f"status eq '{status.value}'" for status in statuses)
        query = (
            f"PartitionKey eq '{INDEX_PARTITION}' and RowKey ge '{_index_key(newest, '')}' "
            f"and RowKey lt '{_index_key(oldest, '~')}' and ({wanted})"
        )
        for row in self.index.query_entities(query, results_per_page=1000, select=["uid", "status", "kind", "created"]):
            yield dict(row)

    # ---- idempotency --------------------------------------------------------------------------------
    def claim_idempotency(
        self,
        caller: str,
        key: str,
        uid: str,
        ttl: timedelta,
        *,
        abandoned: Callable[[str, timedelta], bool] | None = None,
    ) -> str | None:
        partition = hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()
        row = {"PartitionKey": partition, "RowKey": "", "uid": uid, "claimed": clock.now()}
        for _ in range(3):
            try:
                self.idempotency.create_entity(row)
                return None
            except ResourceExistsError:
                existing = self.idempotency.get_entity(partition, "")
                age = clock.now() - existing["claimed"]
                if age < ttl and not (abandoned is not None and abandoned(existing["uid"], age)):
                    return existing["uid"]
                try:  # expired or abandoned: take it over, guarded by its ETag
                    self.idempotency.update_entity(
                        row,
                        mode=UpdateMode.REPLACE,
                        etag=existing.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
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
        _store, _store_key = TableJobStore(), key
    return _store
