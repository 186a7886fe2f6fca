"""Writing an event and its deliveries, once, and asking for their delivery: what every event source shares.

Used by the job listener (events.py) and the schedule tick's call (schedule_events.py). The event id is
deterministic (a hash of the subject and the event's key), a delivery's row key is the event's and the
subscription's, and both rows are created with inserts: a source that runs twice gets 409 and writes nothing
more. Imports only platform, jobs-free pieces of this package, so the schedules may call it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.platform import clock
from shared.webhooks import dispatch, store
from shared.webhooks.models import PENDING, Subscription

MAX_PAYLOAD_CHARS = 30_000  # a table string property holds 32 Ki UTF-16 units


def event_id(subject: str, key: str) -> str:
    """The event's `webhook-id`: the same for every retry and for a source that runs twice."""
    return "msg_" + hashlib.sha256(f"{subject}|{key}".encode()).hexdigest()[:32]


def payload(event_type: str, when: str, data: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    """The body sent, `{type, timestamp, data}` (+ `details` for schedule events); a long log tail is shortened
    (oldest lines first) to fit a table row."""
    data = dict(data)
    extra = {"details": details} if details else {}

    def text() -> str:
        return json.dumps({"type": event_type, "timestamp": when, "data": data, **extra}, separators=(",", ":"))

    body = text()
    while len(body) > MAX_PAYLOAD_CHARS and data.get("log"):
        data["log"] = data["log"][len(data["log"]) // 4 + 1 :]
        body = text()
    return body


def record(
    subject: str,
    key: str,
    event_type: str,
    subs: list[Subscription],
    data: dict[str, Any],
    details: dict[str, Any] | None = None,
) -> list[str]:
    """Store the event `key` of `subject` (a job uid) once, and a delivery per subscription; returns the
    subscriptions that got a new delivery. An event stored before goes only to subscriptions older than it."""
    when = clock.iso(clock.now())
    values = {
        "id": event_id(subject, key),
        "type": event_type,
        "timestamp": when,
        "payload": payload(event_type, when, data, details),
    }
    if not store.add_event(subject, key, values):
        existing = store.get_event(subject, key) or {}
        when = existing.get("timestamp") or when
        subs = [s for s in subs if (s.created or "") <= when]
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
        if store.add_delivery(subject, f"{key}~{sub.id}", delivery):
            added.append(sub.id)
    return added


def deliver(subject: str, sub_ids: list[str]) -> None:
    for sub_id in dict.fromkeys(sub_ids):
        dispatch.enqueue(sub_id, subject)
