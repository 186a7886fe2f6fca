"""From a job's status change to events and deliveries: the job store's lifecycle listener (shared/platform/hooks.py).

The listener runs inside the job's own activity (or the API request that changed the status), so it only
enqueues: one query for the owner's subscriptions and, for what matches, an insert per event and per delivery
and the outbox row (store.py), then a start of the delivery orchestration that it does not wait for beyond the
local call (dispatch.py). Nothing is sent from here: a slow or failing receiver never slows the job.

Events and their `data`:
- `job.started`: with a job's first status change (the store announces no creation), before that change's own
  event; `job.running`, `job.completed`, `job.failed`, `job.removed`: the status the change stored;
- `schedule.run.started`: with the first status change of a run that a schedule started (`triggeredBy`
  `Schedule (<uid>)`).
`data` is the job's status body exactly as `GET /api/jobs/{uid}` shows it when the change is stored (the
service's own `status_body`): never an environment value or a token.

Who hears what: a subscription hears only of jobs its owner started (the starter's rule of shared/jobs/access.py;
a subscription made without an identity hears of jobs started without one); a job's own `notify` targets
(notify.py) hear of that job only. Ids are deterministic (the event
id is a hash of job and type, a delivery's row key is event and subscription), so a listener that runs twice,
or two processes that both saw one change, write each row once: the second insert gets 409 and is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from shared import service
from shared.jobs.record import JobRecord
from shared.jobs.status import JobStatus
from shared.platform import clock
from shared.schedules.history import schedule_uid_of
from shared.webhooks import enqueue, notify, schedule_events, store
from shared.webhooks.models import JOB_STARTED, RANKS, SCHEDULE_RUN_STARTED, STATUS_EVENTS

log = logging.getLogger(__name__)


_SENT: OrderedDict[tuple[str, str], None] = OrderedDict()  # (job, subscription) whose start events are written
_SENT_LIMIT = 10_000
_SENT_LOCK = threading.Lock()


def event_id(job_uid: str, event_type: str) -> str:
    """The event's `webhook-id`: the same for every retry and for a listener that runs twice."""
    return enqueue.event_id(job_uid, event_key(event_type))


def event_key(event_type: str) -> str:
    return f"{RANKS[event_type]}-{event_type}"


def event_types(record: JobRecord) -> list[str]:
    """The events a status change of `record` stands for, in their order (the store skips those already sent)."""
    types = []
    if record.kind == "job":
        types.append(JOB_STARTED)
        if schedule_uid_of(record.triggered_by):
            types.append(SCHEDULE_RUN_STARTED)
    status_event = STATUS_EVENTS.get(record.status.value)
    if status_event:
        types.append(status_event)
    return types


def job_facts(record: JobRecord) -> dict[str, Any]:
    """What subscription filters look at."""
    return {
        "uid": record.uid,
        "label": record.label,
        "runnerType": record.runner_type,
        "scheduleUid": schedule_uid_of(record.triggered_by),
    }


def on_status_change(record: JobRecord) -> None:
    if record.status == JobStatus.FAILED and schedule_uid_of(record.triggered_by):
        schedule_events.run_changed(record)  # the failure may just have suspended its schedule
    types = event_types(record)
    if not types:
        return
    subs = store.subscriptions_of(record.owner) + notify.targets(record)
    if not subs:
        return
    facts = job_facts(record)
    wanted = {t: [s for s in subs if s.wants(t, facts)] for t in types}
    started = clock.iso(record.started) or ""
    for first in (JOB_STARTED, SCHEDULE_RUN_STARTED):  # a subscription made since the job started missed its start
        if first in wanted:
            wanted[first] = [
                s for s in wanted[first] if (s.created or "") <= started and (record.uid, s.id) not in _SENT
            ]
    if not any(wanted.values()):
        return
    data = service.status_body(record)
    touched: list[str] = []
    for event_type in types:
        if wanted[event_type]:
            touched += enqueue.record(record.uid, event_key(event_type), event_type, wanted[event_type], data)
            if event_type in (JOB_STARTED, SCHEDULE_RUN_STARTED):
                _remember(record.uid, wanted[event_type])
    enqueue.deliver(record.uid, touched)


def _remember(uid: str, subs: list) -> None:
    """A job's start events are written with its first change; later changes in this process skip them (in
    another process the inserts find them taken: the table stays the judge)."""
    with _SENT_LOCK:
        for sub in subs:
            _SENT[(uid, sub.id)] = None
        while len(_SENT) > _SENT_LIMIT:
            _SENT.popitem(last=False)


class WebhookListener:
    """A `shared.platform.hooks` listener: every stored status change becomes events for the subscriptions."""

    def status_changed(self, record: JobRecord) -> None:
        on_status_change(record)

    def finished(self, record: JobRecord, result: str | None) -> None:
        return None


LISTENER = WebhookListener()
