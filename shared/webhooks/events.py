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
a subscription made without an identity hears of jobs started without one). Ids are deterministic (the event
id is a hash of job and type, a delivery's row key is event and subscription), so a listener that runs twice,
or two processes that both saw one change, write each row once: the second insert gets 409 and is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from shared import service
from shared.jobs.record import JobRecord
from shared.platform import clock
from shared.schedules.history import schedule_uid_of
from shared.webhooks import dispatch, store
from shared.webhooks.models import (
    JOB_STARTED,
    PENDING,
    RANKS,
    SCHEDULE_RUN_STARTED,
    STATUS_EVENTS,
    Subscription,
)

log = logging.getLogger(__name__)

MAX_PAYLOAD_CHARS = 30_000  # a table string property holds 32 Ki UTF-16 units


def event_id(job_uid: str, event_type: str) -> str:
    """The event's `webhook-id`: the same for every retry and for a listener that runs twice."""
    return "msg_" + hashlib.sha256(f"{job_uid}|{event_type}".encode()).hexdigest()[:32]


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


def payload(event_type: str, when: str, data: dict[str, Any]) -> str:
    """The body sent, `{type, timestamp, data}`; a long log tail is shortened (oldest lines first) to fit a row."""
    data = dict(data)
    text = json.dumps({"type": event_type, "timestamp": when, "data": data}, separators=(",", ":"))
    while len(text) > MAX_PAYLOAD_CHARS and data.get("log"):
        data["log"] = data["log"][len(data["log"]) // 4 + 1 :]
        text = json.dumps({"type": event_type, "timestamp": when, "data": data}, separators=(",", ":"))
    return text


def _record_event(record: JobRecord, event_type: str, subs: list[Subscription], data: dict[str, Any]) -> list[str]:
    """Store the event (once) and its deliveries; returns the subscriptions that got a new delivery."""
    key, when = event_key(event_type), clock.iso(clock.now())
    values = {
        "id": event_id(record.uid, event_type),
        "type": event_type,
        "timestamp": when,
        "payload": payload(event_type, when, data),
    }
    if not store.add_event(record.uid, key, values):
        existing = store.get_event(record.uid, key) or {}
        when = existing.get("timestamp") or when
        subs = [s for s in subs if (s.created or "") <= when]  # not to a subscription made after the event
    added = []
    for sub in subs:
        delivery = {
            "subscription": sub.id,
            "ownerKey": store.owner_key(sub.owner),
            "eventId": values["id"],
            "eventKey": key,
            "type": event_type,
            "state": PENDING,
            "attempts": "[]",
            "attemptCount": 0,
            "created": clock.iso(clock.now()),
        }
        if store.add_delivery(record.uid, f"{key}~{sub.id}", delivery):
            added.append(sub.id)
    return added


def on_status_change(record: JobRecord) -> None:
    types = event_types(record)
    if not types:
        return
    subs = store.subscriptions_of(record.owner)
    if not subs:
        return
    facts = job_facts(record)
    wanted = {t: [s for s in subs if s.wants(t, facts)] for t in types}
    started = clock.iso(record.started) or ""
    for first in (JOB_STARTED, SCHEDULE_RUN_STARTED):  # a subscription made since the job started missed its start
        if first in wanted:
            wanted[first] = [s for s in wanted[first] if (s.created or "") <= started]
    if not any(wanted.values()):
        return
    data = service.status_body(record)
    touched: list[str] = []
    for event_type in types:
        if wanted[event_type]:
            touched += [s for s in _record_event(record, event_type, wanted[event_type], data) if s not in touched]
    for sub_id in touched:
        dispatch.enqueue(sub_id, record.uid)


class WebhookListener:
    """A `shared.platform.hooks` listener: every stored status change becomes events for the subscriptions."""

    def status_changed(self, record: JobRecord) -> None:
        on_status_change(record)

    def finished(self, record: JobRecord, result: str | None) -> None:
        return None


LISTENER = WebhookListener()
