"""Fresh when someone is watching, cheap when nobody is: a status read wakes the job's orchestration to poll.

The orchestration polls its runner on a backoff that grows to POLL_INTERVAL_MAX_SECONDS (60 s): a job that has
run a while would be seen ending up to a minute late. A read of a running job's status (`GET /api/jobs/{uid}`)
therefore raises the `wake` event, which the orchestration races against its poll timer, so it polls now; the
read itself answers from the table at once. At most one wake per JOB_FRESHNESS_SECONDS per job, however many
readers there are: the window is claimed with an ETag-guarded write of one row per job (`JobWakes`), so
readers on any number of instances agree; each process also remembers the windows it saw taken, so the readers
of one job cost no table call between claims (a shortcut only: a window it does not know of is asked of the
table). With nobody reading, nothing changes: the backoff alone decides.

A wake is only a hint: the orchestration decides what it does with it (shared.jobs.polling): a reader's wake
makes the job *watched* for a few windows, in which it polls once per window (so its end is noticed between
reads, not only at them) and never more often, however many wakes arrive; a wake raised less than a window after
a poll only keeps it watched. A lost wake (the Durable extension drops events not consumed at continue-as-new)
loses nothing but time: the next poll of the backoff comes as usual, and the next read after the window wakes
again.

The job list (`GET /api/jobs`) wakes the running jobs it returns the same way, the first LIST_WAKES of a page
(a page holds up to 1,000), through the same claim: a list read every second costs at most one wake per window per
job, like any reader.

A wake that says the job *ended* is polled at once: a progress report in which the job says it completed or
failed (unthrottled: it happens once per job), and the exit notice a local runner's launcher sends when the job's
process exits (`{"exited": true}` on the job's own progress route, with the job's token; claimed on its own row,
so at most one per window per job, whatever a script sends).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform import settings, storage

WAKE_TABLE = "JobWakes"
ROW = "wake"
EXIT_ROW = "exit"  # exit notices take their windows apart from readers: a read just before an exit blocks nothing
WATCHED = (JobStatus.STARTING, JobStatus.RUNNING)
LIST_WAKES = 10  # running jobs of one list page that its read wakes (a claim may cost a table call)
SEEN_MAX = 10_000  # windows this process remembers as taken (a shortcut only: the table decides)

_seen: dict[tuple[str, str], datetime] = {}  # (uid, row) -> start of the window known to be taken
_seen_lock = threading.Lock()

Wake = Callable[[str], None]


def window() -> timedelta:
    return timedelta(seconds=max(0.0, settings.get_float("JOB_FRESHNESS_SECONDS")))


def worth_waking(record: JobRecord) -> bool:
    """Only a job its orchestration is following: launched, not final, not being stopped."""
    return record.status in WATCHED and record.handle is not None and not record.stop_requested


def claim(uid: str, now: datetime, span: timedelta, row_key: str = ROW) -> bool:
    """True for the first reader of a job in each window, False for the others. A window already taken costs one
    table read; taking one, a conditional write (a job's first window: a create)."""
    if _known_taken(uid, row_key, now, span):
        return False  # this process saw the window taken: no table call (the readers of one job mostly)
    table = storage.table(WAKE_TABLE)
    row = {"PartitionKey": uid, "RowKey": row_key, "woken": now}
    try:
        existing = table.get_entity(uid, row_key)
    except ResourceNotFoundError:
        return _remember(uid, row_key, now, _create(table, row))
    if now - existing["woken"] < span:
        _remember(uid, row_key, existing["woken"], True)
        return False
    try:
        table.update_entity(
            row, mode=UpdateMode.REPLACE, etag=existing.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
        return _remember(uid, row_key, now, True)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False  # another reader took this window
    except HttpResponseError as error:
        if error.status_code == 412:
            return False
        raise


def _known_taken(uid: str, row_key: str, now: datetime, span: timedelta) -> bool:
    with _seen_lock:
        taken = _seen.get((uid, row_key))
    return taken is not None and timedelta(0) <= now - taken < span


def _remember(uid: str, row_key: str, taken: datetime, claimed: bool) -> bool:
    """Note a window known to be taken (by this reader when `claimed`); returns `claimed`."""
    if claimed:
        with _seen_lock:
            if len(_seen) >= SEEN_MAX:
                _seen.clear()  # a shortcut only: forgetting costs one table read per job
            _seen[(uid, row_key)] = taken
    return claimed


def _create(table: Any, row: dict[str, Any]) -> bool:
    try:
        table.create_entity(row)
        return True
    except ResourceExistsError:
        return False  # another reader took the first window meanwhile


def on_read(record: JobRecord, now: datetime, wake: Wake | None) -> None:
    """Called by a status read: wake the orchestration if the job is followed and this window is unclaimed."""
    span = window()
    if wake is None or not span or not worth_waking(record):
        return
    if claim(record.uid, now, span):
        wake(record.uid)


def on_list(jobs: Iterable[dict[str, Any]], now: datetime, wake: Wake | None) -> int:
    """Called by a list read: wake the first LIST_WAKES running jobs of the page whose window is unclaimed. Only
    `running` ones (a listing row has no handle: a job still starting may be waiting to retry its start, which a
    wake must not hurry). Returns how many were woken."""
    span = window()
    if wake is None or not span:
        return 0
    running = [job["uid"] for job in jobs if job.get("status") == JobStatus.RUNNING.value][:LIST_WAKES]
    woken = 0
    for uid in running:
        if claim(uid, now, span):
            wake(uid)
            woken += 1
    return woken


def on_exit(record: JobRecord, now: datetime, wake: Wake | None) -> bool:
    """The job's launcher says its process exited: wake the orchestration to poll now (a wake that says the job
    ended), at most once per window. True when it was woken."""
    if wake is None or not worth_waking(record):
        return False
    span = window() or timedelta(seconds=1)  # freshness off still spares the runner a notice storm
    if not claim(record.uid, now, span, EXIT_ROW):
        return False
    wake(record.uid)
    return True


def forget(uid: str) -> None:
    """The job has finished: its wake rows are no longer needed."""
    for row_key in (ROW, EXIT_ROW):
        try:
            storage.table(WAKE_TABLE).delete_entity(uid, row_key)
        except ResourceNotFoundError:
            pass
