"""Fresh when someone is watching, cheap when nobody is: a status read wakes the job's orchestration to poll.

The orchestration polls its runner on a backoff that grows to POLL_INTERVAL_MAX_SECONDS (60 s): a job that has
run a while would be seen ending up to a minute late. A read of a running job's status (`GET /api/jobs/{uid}`)
therefore raises the `wake` event, which the orchestration races against its poll timer, so it polls now; the
read itself answers from the table at once. At most one wake per JOB_FRESHNESS_SECONDS per job, however many
readers there are: the window is claimed with an ETag-guarded write of one row per job (`JobWakes`), so
readers on any number of instances agree. With nobody reading, nothing changes: the backoff alone decides.

A progress report in which the job says it completed or failed wakes its orchestration at once, unthrottled
(it happens once per job).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform import settings, storage

WAKE_TABLE = "JobWakes"
ROW = "wake"
WATCHED = (JobStatus.STARTING, JobStatus.RUNNING)

Wake = Callable[[str], None]


def window() -> timedelta:
    return timedelta(seconds=max(0.0, settings.get_float("JOB_FRESHNESS_SECONDS")))


def worth_waking(record: JobRecord) -> bool:
    """Only a job its orchestration is following: launched, not final, not being stopped."""
    return record.status in WATCHED and record.handle is not None and not record.stop_requested


def claim(uid: str, now: datetime, span: timedelta) -> bool:
    """True for the first reader of a job in each window (one conditional write), False for the others."""
    table = storage.table(WAKE_TABLE)
    row = {"PartitionKey": uid, "RowKey": ROW, "woken": now}
    try:
        table.create_entity(row)
        return True
    except ResourceExistsError:
        pass
    try:
        existing = table.get_entity(uid, ROW)
    except ResourceNotFoundError:
        return False  # removed between the two calls (the job finished): nothing to wake
    if now - existing["woken"] < span:
        return False
    try:
        table.update_entity(
            row, mode=UpdateMode.REPLACE, etag=existing.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
        return True
    except (ResourceModifiedError, ResourceNotFoundError):
        return False  # another reader took this window
    except HttpResponseError as error:
        if error.status_code == 412:
            return False
        raise


def on_read(record: JobRecord, now: datetime, wake: Wake | None) -> None:
    """Called by a status read: wake the orchestration if the job is followed and this window is unclaimed."""
    span = window()
    if wake is None or not span or not worth_waking(record):
        return
    if claim(record.uid, now, span):
        wake(record.uid)


def forget(uid: str) -> None:
    """The job has finished: its wake row is no longer needed."""
    try:
        storage.table(WAKE_TABLE).delete_entity(uid, ROW)
    except ResourceNotFoundError:
        pass
