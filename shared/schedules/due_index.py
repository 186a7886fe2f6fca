"""The `ScheduleDue` table: which schedules are due when, so that a tick reads what is due, not what is registered.

PartitionKey = the UTC minute of a schedule's next fire (`YYYYMMDDHHMM`, a "bucket"), RowKey = the schedule's
uid. Each active schedule has one row, moved to its next bucket when a fire is handled and removed when it is
suspended, expires or is deleted. A tick reads the buckets from the last processed one (minus a safety
margin) up to now: entities read are proportional to the schedules due.

The row `("tick", "state")` remembers the last processed bucket. Once an hour (and when that row is missing)
the lower bound is dropped altogether, so an entry left behind by a crash is found however old it is.

The index is a hint, never the truth: the schedule's own record (the `Jobs` table) decides, and a row that
disagrees with it is repaired by the tick. That is why index writes may be batched and sent late.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform import storage
from shared.schedules.cron import UTC
from shared.schedules.policy import iso, parse_iso

DUE_TABLE = "ScheduleDue"
STATE_PK, STATE_RK = "tick", "state"
BUCKET_FORMAT = "%Y%m%d%H%M"
SWEEP_LOWER = "000000000000"  # the lower bound of a sweep: every bucket there is
SAFETY_MARGIN = timedelta(minutes=15)  # re-read this much before the last processed bucket (skew, retries)
STATE_WRITE_EVERY = timedelta(minutes=5)  # idle ticks advance the state row this often
TRANSACTION_ROWS = 100  # the table's limit for one transaction (all in one partition)


def bucket(when: datetime) -> str:
    return when.astimezone(UTC).strftime(BUCKET_FORMAT)


def bucket_time(value: str) -> datetime:
    return datetime.strptime(value, BUCKET_FORMAT).replace(tzinfo=UTC)


def due_table() -> TableClient:
    return storage.table(DUE_TABLE)


def index_row(uid: str, due_bucket: str, next_fire: str | None) -> dict[str, Any]:
    return {"PartitionKey": due_bucket, "RowKey": uid, "nextFire": row_fire(due_bucket, next_fire) or ""}


def put(uid: str, due_bucket: str | None, next_fire: str | None) -> None:
    if due_bucket:
        due_table().upsert_entity(index_row(uid, due_bucket, next_fire), mode=UpdateMode.REPLACE)


def drop(uid: str, due_bucket: str | None) -> None:
    if not due_bucket:
        return
    try:
        due_table().delete_entity(due_bucket, uid)
    except ResourceNotFoundError:
        pass


def _chunks(items: list, size: int = TRANSACTION_ROWS) -> Iterable[list]:
    return (items[i : i + size] for i in range(0, len(items), size))


def put_transactions(rows: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped into table transactions (one bucket each, <= 100 rows): what one bulk write sends."""
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_bucket.setdefault(row["PartitionKey"], []).append(row)
    return [chunk for bucket_rows in by_bucket.values() for chunk in _chunks(bucket_rows)]


def submit_puts(table: TableClient, rows: list[dict[str, Any]]) -> None:
    table.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}) for row in rows])


# ---- batched writes of one tick -----------------------------------------------------------------------------
@dataclass
class _Move:
    target: tuple[str, str | None] | None = None  # (bucket, nextFire) the row must end in; None: no row
    authoritative: bool = False  # the target came from a write of this tick, not from a stale row
    drops: set[str] = field(default_factory=set)  # buckets the row must leave


class IndexBatch:
    """Index writes of one tick, sent at its end as table transactions (<= 100 rows, one bucket each).

    Per schedule it keeps where the row must be and which rows must go. A target from a write this tick made
    (claim/finalize) overrides one guessed from a stale row read earlier (the same uid can sit in two rows)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, _Move] = {}

    def move(
        self, uid: str, old: str | None, new: str | None, next_fire: str | None, *, authoritative: bool = True
    ) -> None:
        with self.lock:
            item = self.items.setdefault(uid, _Move())
            if old:
                item.drops.add(old)
            if authoritative or not item.authoritative:
                item.target = (new, next_fire) if new else None
                item.authoritative = item.authoritative or authoritative

    def drop(self, uid: str, due_bucket: str | None) -> None:
        self.move(uid, due_bucket, None, None)

    def flush(self) -> int:
        """Send everything; returns the number of transactions."""
        puts: list[dict[str, Any]] = []
        drops: dict[str, list[str]] = {}
        for uid, item in self.items.items():
            target, next_fire = item.target or (None, None)
            if target:
                puts.append(index_row(uid, target, next_fire))
            for old in item.drops - {target}:
                drops.setdefault(old, []).append(uid)
        table = due_table()
        sent = _send_puts(table, puts) + sum(_send_drops(table, b, uids) for b, uids in drops.items())
        self.items.clear()
        return sent


def _send_puts(table: TableClient, rows: list[dict[str, Any]]) -> int:
    transactions = put_transactions(rows)
    for chunk in transactions:
        if len(chunk) == 1:  # a one-row transaction costs more than the plain request
            table.upsert_entity(chunk[0], mode=UpdateMode.REPLACE)
        else:
            submit_puts(table, chunk)
    return len(transactions)


def _send_drops(table: TableClient, due_bucket: str, uids: list[str]) -> int:
    """A delete transaction that fails (a row is already gone) is redone row by row."""
    sent = 0
    for chunk in _chunks(uids):
        sent += 1
        if len(chunk) == 1:
            drop(chunk[0], due_bucket)
            continue
        try:
            table.submit_transaction([("delete", {"PartitionKey": due_bucket, "RowKey": uid}) for uid in chunk])
        except Exception:  # noqa: BLE001 - e.g. one row deleted meanwhile: fails the whole batch
            for uid in chunk:
                drop(uid, due_bucket)
    return sent


# ---- the tick-state row: which buckets a tick reads -----------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The buckets one tick reads, and the last processed bucket it started from (None: none recorded)."""

    lower: str
    upper: str
    sweep: bool  # lower bound dropped (hourly, or first tick)
    last: str | None


def window(now: datetime) -> Window:
    """One point read of the state row."""
    try:
        last = due_table().get_entity(STATE_PK, STATE_RK).get("lastBucket")
    except ResourceNotFoundError:
        last = None
    sweep = not last or now.minute == 0
    lower = SWEEP_LOWER if sweep else bucket(min(bucket_time(last), now) - SAFETY_MARGIN)
    return Window(lower=lower, upper=bucket(now), sweep=sweep, last=last)


@dataclass
class DueRows:
    rows: list[tuple[str, str]]  # (bucket, uid), oldest bucket first
    leftover: bool  # more rows than the limit: the rest waits for the next tick
    read: int  # index rows read (those not yet due included)
    not_yet: int = 0  # kept for the report's shape: rows not yet due are filtered out by the query itself


def due_query(span: Window, now: datetime | None) -> str:
    """The rows of the window's buckets; of the current bucket only those due by `now` (a row's nextFire is when
    it is due: with jitter, 10:00:40 is in bucket 1000 and not due at the 10:00:05 tick, so the query does not
    return it and the tick neither reads nor writes its schedule; the next tick reads the bucket again)."""
    query = f"PartitionKey ge '{span.lower}' and PartitionKey le '{span.upper}'"
    if now is not None:
        query += f" and (PartitionKey lt '{span.upper}' or nextFire le '{iso(now)}')"
    return query


def row_fire(due_bucket: str | None, next_fire: str | None) -> str | None:
    """The nextFire an index row carries: when it is due. That is the schedule's next fire, unless the row is in
    an earlier bucket (a BufferOne fire waiting: looked at again, or due at once): then the bucket's minute."""
    if not due_bucket or (next_fire and bucket(parse_iso(next_fire)) == due_bucket):
        return next_fire
    return iso(bucket_time(due_bucket))


def due_rows(span: Window, limit: int, now: datetime | None = None) -> DueRows:
    """The rows in the window that are due at `now`, oldest bucket first, at most `limit`."""
    rows: list[tuple[str, str]] = []
    read = 0
    query = due_table().query_entities(due_query(span, now), select=["PartitionKey", "RowKey"], results_per_page=1000)
    for row in query:
        if len(rows) >= limit:
            return DueRows(rows, True, read)
        read += 1
        rows.append((row["PartitionKey"], row["RowKey"]))
    return DueRows(rows, False, read)


def processed_until(span: Window, rows: list[tuple[str, str]], leftover: bool, failed: list[str]) -> str:
    """The last bucket this tick handled completely: before the first one left over or failed, so that the
    next tick reads it again."""
    done = span.upper
    if leftover:
        done = bucket(bucket_time(rows[-1][0]) - timedelta(minutes=1))
    if failed:
        done = min(done, bucket(bucket_time(min(failed)) - timedelta(minutes=1)))
    return done


def save_progress(span: Window, done: str, now: datetime, *, had_rows: bool) -> None:
    """An idle tick writes the state row only every few minutes: a lagging lastBucket only widens the next
    query's lower bound a little, and it saves a write per minute."""
    last = span.last
    if last and (
        done == last or not (had_rows or bucket_time(done) - bucket_time(last) >= STATE_WRITE_EVERY or done < last)
    ):
        return
    due_table().upsert_entity(
        {"PartitionKey": STATE_PK, "RowKey": STATE_RK, "lastBucket": done, "lastTick": iso(now)},
        mode=UpdateMode.REPLACE,
    )
